"""Evidence from the site's hosts: their logs over the run, secrets redacted.

After a run the harness collects, from every host of the inventory it can reach:

- Linux: ``journalctl --since @<start> --no-pager`` (when systemd runs), the
  kernel's recent messages (``dmesg``), and the last lines of each file in
  ``[storage] logs`` (the target daemon's own log) on storage hosts;
- Windows: the System event log since the start (``Get-WinEvent``), and on
  cluster nodes the cluster log of that span (``Get-ClusterLog -TimeSpan``),
  read back as text.

Before anything is written, the shared redactor (``harness.redact``) masks every
secret the inventory references and the environment holds (ssh passwords,
StarWind and BMC credentials), and ``password=...``-style assignments; bearer
tokens are masked here too. A host that cannot be reached gives a one-line note instead of a log.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import SplitbrainError
from harness.redact import MASK, Redactor

_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
TAIL_LINES = 2000

LINUX_SCRIPT = (
    'if command -v journalctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then '
    'echo "== journalctl --since @$1"; journalctl --since "@$1" --no-pager -o short-iso '
    "2>&1 | tail -n 20000; fi; "
    'echo "== dmesg"; dmesg 2>&1 | tail -n 500; shift; '
    'for f in "$@"; do echo "== $f"; tail -n 2000 -- "$f" 2>&1; done; exit 0'
)


def windows_script(minutes: int, cluster: bool) -> str:
    body = (
        f"$since = (Get-Date).AddMinutes(-{int(minutes)})\n"
        "$system = Get-WinEvent -FilterHashtable @{ LogName = 'System'; StartTime = $since } "
        "-ErrorAction SilentlyContinue | Select-Object "
        "@{n='Time';e={$_.TimeCreated.ToString('o')}}, Id, ProviderName, LevelDisplayName, "
        "Message | Out-String -Width 300\n"
        "[pscustomobject]@{ Name = 'System'; Text = $system }\n")
    if cluster:
        body += (
            "$dir = Join-Path $env:TEMP 'splitbrain-cluster-log'\n"
            "New-Item -ItemType Directory -Force -Path $dir | Out-Null\n"
            f"Get-ClusterLog -Node $env:COMPUTERNAME -Destination $dir -TimeSpan {int(minutes)} "
            "-UseLocalTime | Out-Null\n"
            "Get-ChildItem $dir -Filter '*.log' | ForEach-Object { "
            "[pscustomobject]@{ Name = 'Cluster'; Text = (Get-Content -Raw $_.FullName) } }\n"
            "Remove-Item -Recurse -Force $dir\n")
    return body


def redactor_for(inventory: Any) -> Redactor:
    """The shared redactor (``harness.redact``), with every secret the inventory names."""
    text = Path(inventory.path).read_text() if Path(inventory.path).is_file() else ""
    return Redactor.for_inventory(text).merged(Redactor.from_environment())


def redact(text: str, redactor: Redactor) -> str:
    return _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", redactor.text(text))


@dataclass(frozen=True)
class HostLog:
    host: str
    name: str  # "journal", "System", "Cluster", or "unreachable"
    text: str


def collect(inventory: Any, since_wall: float, *, opener: Callable[[Any, str], Any],
            hosts: Iterable[str] | None = None) -> list[HostLog]:
    """Every reachable host's logs since ``since_wall`` (unix seconds), redacted."""
    secrets = redactor_for(inventory)
    minutes = max(1, int((time.time() - since_wall) // 60) + 1)
    out: list[HostLog] = []
    for name in hosts if hosts is not None else list(inventory.hosts):
        host = inventory.host(name)
        if host.access is None:
            continue
        try:
            with opener(inventory, name) as driver:
                if getattr(host.access, "os", "linux") == "windows":
                    rows = driver.powershell(
                        windows_script(minutes, host.has_role("cluster-node")),
                        operation="collect event and cluster logs", timeout=300)
                    out += [HostLog(name, str(r.get("Name")), redact(str(r.get("Text") or ""),
                                                                     secrets)) for r in rows]
                else:
                    files = list(inventory.storage.logs) if host.has_role("storage") else []
                    result = driver.run_argv(["sh", "-c", LINUX_SCRIPT, "splitbrain-logs",
                                              str(int(since_wall)), *files], check=False,
                                             timeout=300)
                    out.append(HostLog(name, "journal", redact(result.stdout + result.stderr,
                                                               secrets)))
        except SplitbrainError as exc:
            out.append(HostLog(name, "unreachable", redact(f"no logs: {exc}", secrets)))
    return out


def attach(results: Any, logs: Iterable[HostLog]) -> list[Any]:
    """Store each log in a ``ResultsDir`` (``harness.checks.results``) as text/plain."""
    return [results.attach(f"logs/{log.host}-{log.name}.txt", log.text, "text/plain")
            for log in logs]


def collect_into(results: Any, inventory: Any, since_wall: float,
                 say: Callable[[str], None] = lambda _: None) -> list[Any]:
    """Collect every host's logs of a real site into ``results`` (a ``ResultsDir``)."""
    from harness.remote import open_host

    logs = collect(inventory, since_wall, opener=lambda inv, h: open_host(inv.host(h)))
    attached = attach(results, logs)
    unreachable = [entry.host for entry in logs if entry.name == "unreachable"]
    say(f"evidence: {len(attached)} host log(s) in {results.path}/attachments/logs-*"
        + (f"; no logs from {', '.join(unreachable)}" if unreachable else ""))
    return attached
