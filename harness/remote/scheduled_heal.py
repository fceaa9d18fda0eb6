"""Node-side heal timers on Windows: a one-shot Task Scheduler task per fault.

The Windows counterpart of ``harness.remote.deadman``. Before a fault with a TTL
is injected (an adapter disabled, a firewall block, a stopped service), the host
gets a task ``\\splitbrain\\splitbrain-heal-<tag>-<hash>`` that runs once, as
SYSTEM, ``ttl_s`` seconds later. It runs the fault's heal script (enable that
adapter, remove the rules named ``splitbrain-<tag>-*``, start that service) and
then unregisters itself. The task starts when available: a host that was off at
the trigger time runs it as soon as it is back. A normal heal unregisters the task first. Tasks live
only under the ``\\splitbrain\\`` folder, so ``sweep`` removes all of ours and
nothing else.

Arming happens *before* the fault is applied, so a harness that dies at any
point leaves a site that heals itself. A timer that fires for a fault that was
never applied finds nothing to undo.
"""

from __future__ import annotations

from typing import Any, Protocol

from harness.remote import powershell as ps
from harness.remote.deadman import check_ttl, timer_name

TASK_PATH = "\\splitbrain\\"


class PowerShellRunner(Protocol):
    def powershell(self, body: str, *, operation: str, **kwargs: Any) -> list[Any]: ...


def heal_firewall_body(tag: str) -> str:
    prefix = ps.literal(f"splitbrain-{tag}-")
    return ("Get-NetFirewallRule -Group 'splitbrain' -ErrorAction SilentlyContinue | "
            f"Where-Object {{ $_.Name.StartsWith({prefix}) }} | Remove-NetFirewallRule")


def heal_adapter_body(name: str) -> str:
    return (f"Get-NetAdapter | Where-Object {{ $_.Name -eq {ps.literal(name)} }} | "
            "Enable-NetAdapter -Confirm:$false")


def heal_service_body(name: str) -> str:
    return f"Get-Service | Where-Object {{ $_.Name -eq {ps.literal(name)} }} | Start-Service"


def task_script(tag: str, heal_body: str) -> str:
    """What the task runs: the heal, then removing the task itself; errors do not stop it."""
    name = ps.literal(timer_name(tag))
    return (
        "$ErrorActionPreference = 'Continue'\n"
        f"{heal_body}\n"
        f"Unregister-ScheduledTask -TaskPath {ps.literal(TASK_PATH)} -TaskName {name} "
        "-Confirm:$false\n"
    )


def arm(host: PowerShellRunner, tag: str, ttl_s: float, heal_body: str) -> str:
    """Register the one-shot heal task for ``tag``; returns the task's name."""
    seconds = check_ttl(ttl_s)
    name = timer_name(tag)
    arguments = ps.command_line(task_script(tag, heal_body)).split(" ", 1)[1]
    host.powershell(
        f"$action = New-ScheduledTaskAction -Execute 'powershell.exe' "
        f"-Argument {ps.literal(arguments)}\n"
        f"$trigger = New-ScheduledTaskTrigger -Once -At ((Get-Date).AddSeconds({seconds}))\n"
        "$principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount "
        "-RunLevel Highest\n"
        # a host that was off or asleep at the trigger time still heals when it is back
        "$settings = New-ScheduledTaskSettingsSet -StartWhenAvailable\n"
        f"Register-ScheduledTask -TaskPath {ps.literal(TASK_PATH)} -TaskName "
        f"{ps.literal(name)} -Action $action -Trigger $trigger -Principal $principal "
        "-Settings $settings -Force | Out-Null",
        operation=f"Register-ScheduledTask {name}",
        hint="the ScheduledTasks module and an administrator login are needed")
    return name


def disarm(host: PowerShellRunner, tag: str) -> None:
    """Remove the heal task of ``tag`` if it is still pending (no-op otherwise)."""
    name = timer_name(tag)
    host.powershell(
        f"Get-ScheduledTask -TaskPath {ps.literal(TASK_PATH)} -ErrorAction SilentlyContinue | "
        f"Where-Object {{ $_.TaskName -eq {ps.literal(name)} }} | "
        "Unregister-ScheduledTask -Confirm:$false",
        operation=f"Unregister-ScheduledTask {name}")


def pending(host: PowerShellRunner) -> list[str]:
    """Names of our heal tasks still registered on the host."""
    rows = host.powershell(
        f"Get-ScheduledTask -TaskPath {ps.literal(TASK_PATH)} -ErrorAction SilentlyContinue | "
        "Select-Object TaskName, @{n='State';e={[string]$_.State}}",
        operation="Get-ScheduledTask \\splitbrain\\")
    return [str(r["TaskName"]) for r in rows if isinstance(r, dict) and "TaskName" in r]


def sweep(host: PowerShellRunner) -> int:
    """Remove every task under ``\\splitbrain\\``; returns how many."""
    rows = host.powershell(
        f"$t = @(Get-ScheduledTask -TaskPath {ps.literal(TASK_PATH)} -ErrorAction "
        "SilentlyContinue)\n$t | Unregister-ScheduledTask -Confirm:$false\n"
        "[pscustomobject]@{ Removed = $t.Count }",
        operation="Unregister-ScheduledTask \\splitbrain\\*")
    return int(rows[0]["Removed"]) if rows else 0
