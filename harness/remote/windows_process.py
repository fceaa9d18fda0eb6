"""Process faults on a Windows host: kill, suspend (freeze) and resume by process name.

Windows has no SIGSTOP. A process is frozen the way debuggers and Sysinternals'
``pssuspend`` do it: ``NtSuspendProcess`` on a handle to it (``NtResumeProcess``
undoes it), through a small ``Add-Type`` P/Invoke class compiled by PowerShell
on the host. ``suspend`` can arm a one-shot scheduled heal task
(``harness.remote.scheduled_heal``) that resumes the same pids after a TTL, so a
frozen storage service always thaws. Kill is ``Stop-Process -Force``.

Each function returns the pids it acted on and raises ``PowerShellError`` when
no process has that name. Tested on reconstructed transcripts only
(tests/data/transcripts/windows/README.md).
"""

from __future__ import annotations

from typing import Any

from harness.remote import powershell as ps
from harness.remote import scheduled_heal
from harness.remote.nftables import check_tag

# Fixed text: declares [SplitbrainProcess]::Suspend(pid) / Resume(pid).
NT_PROCESS = """\
if (-not ('SplitbrainProcess' -as [type])) {
Add-Type -TypeDefinition @'
using System;
using System.Runtime.InteropServices;
public static class SplitbrainProcess {
    [DllImport("ntdll.dll")] static extern int NtSuspendProcess(IntPtr h);
    [DllImport("ntdll.dll")] static extern int NtResumeProcess(IntPtr h);
    [DllImport("kernel32.dll", SetLastError = true)]
    static extern IntPtr OpenProcess(uint access, bool inherit, int pid);
    [DllImport("kernel32.dll")] static extern bool CloseHandle(IntPtr h);
    const uint PROCESS_SUSPEND_RESUME = 0x0800;
    static int Call(int pid, bool suspend) {
        IntPtr h = OpenProcess(PROCESS_SUSPEND_RESUME, false, pid);
        if (h == IntPtr.Zero) { throw new System.ComponentModel.Win32Exception(); }
        try { return suspend ? NtSuspendProcess(h) : NtResumeProcess(h); }
        finally { CloseHandle(h); }
    }
    public static int Suspend(int pid) { return Call(pid, true); }
    public static int Resume(int pid) { return Call(pid, false); }
}
'@
}
"""


def _processes(name: str) -> str:
    return (f"$p = @(Get-Process | Where-Object {{ $_.ProcessName -eq {ps.literal(name)} }})\n"
            f"if ($p.Count -eq 0) {{ throw ('no process named ' + {ps.literal(name)}) }}")


def resume_body(pids: list[int]) -> str:
    """The heal: resume exactly these pids (gone ones are skipped)."""
    ids = ", ".join(str(ps.integer(p, low=1, high=2**31 - 1)) for p in pids)
    return (NT_PROCESS + f"foreach ($id in @({ids})) {{ try {{ [void][SplitbrainProcess]::"
            "Resume($id) } catch { } }")


def suspend(host: Any, name: str, *, tag: str | None = None,
            ttl_s: float | None = None) -> list[int]:
    """Suspend every process named ``name``; with ``ttl_s`` the host resumes them itself."""
    rows = host.powershell(_processes(name) + "\n$p | Select-Object Id",
                           operation=f"Get-Process {name!r}")
    pids = [int(r["Id"]) for r in rows]
    if ttl_s is not None and tag is not None:
        scheduled_heal.arm(host, check_tag(tag), ttl_s, resume_body(pids))
    host.powershell(NT_PROCESS + _processes(name) + "\nforeach ($q in $p) { "
                    "[pscustomobject]@{ Id = $q.Id; Status = [SplitbrainProcess]::Suspend($q.Id) "
                    "} }", operation=f"suspend process {name!r}",
                    hint="an elevated login is needed to suspend a service's process")
    return pids


def resume(host: Any, pids: list[int], *, tag: str | None = None) -> None:
    host.powershell(resume_body(pids), operation=f"resume pids {pids}")
    if tag is not None:
        scheduled_heal.disarm(host, check_tag(tag))


def threads_suspended(host: Any, pids: list[int]) -> bool:
    """Whether every thread of every pid is suspended (what a freeze must look like)."""
    ids = ", ".join(str(int(p)) for p in pids)
    rows = host.powershell(
        f"Get-Process -Id @({ids}) -ErrorAction SilentlyContinue | ForEach-Object {{ "
        "[pscustomobject]@{ Id = $_.Id; Running = @($_.Threads | Where-Object { "
        "[string]$_.WaitReason -ne 'Suspended' }).Count } }",
        operation=f"thread states of {pids}")
    return bool(rows) and all(int(r.get("Running", 1)) == 0 for r in rows)


def kill(host: Any, name: str) -> list[int]:
    rows = host.powershell(_processes(name) + "\n$p | Stop-Process -Force\n$p | Select-Object Id",
                           operation=f"Stop-Process {name!r}")
    return [int(r["Id"]) for r in rows]
