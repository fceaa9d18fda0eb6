"""The workload agent on a Windows cluster node: raw ``\\\\.\\PhysicalDriveN``, unbuffered.

The Windows counterpart of ``harness.remote.agent.NodeAgent``, with the same
surface (``check``, ``refuse_if_in_use``, ``clock``, ``run``, ``read``,
``block_device``; the refusal, the clock relation and the read-back are the shared
``DiskAgent``'s). The writer is C# (``windows_agent.cs``): it opens the disk
with ``FILE_FLAG_NO_BUFFERING | FILE_FLAG_WRITE_THROUGH``, writes from
sector-aligned ``VirtualAlloc`` buffers, stamps every sector exactly as
``harness.workload.stamp`` does, and returns the history as JSON lines (one
writer, queue depth 1). The source is uploaded once per call sequence to
``C:\\ProgramData\\splitbrain\\agent-<hash>.cs`` in chunks (a command line is
limited to 8000 characters) and compiled by ``Add-Type`` in each PowerShell call.

Before anything is written, ``check`` reads ``Get-Disk`` and refuses a boot or
system disk, a clustered disk (in a cluster role or a CSV), a read-only disk,
an online disk, and any disk with partitions.

The PowerShell answers it parses are **reconstructed** transcripts
(tests/data/transcripts/agent/agent-*.json); the C# compiles with Mono's
``mcs`` and its stamp is checked against the Python checkers there, but its
Win32 calls have never run on Windows.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.remote import powershell as ps
from harness.remote.agent import AgentError, DiskAgent
from harness.remote.agent import parse_records as parse_agent_records

SOURCE = Path(__file__).with_name("windows_agent.cs")
CHUNK = 1500  # base64 characters per upload call (the command line limit is 8000)
_DISK = re.compile(r"^(?:\\\\\.\\)?PhysicalDrive(\d+)$", re.IGNORECASE)


def disk_number(disk: str) -> int:
    m = _DISK.match(disk)
    if not m:
        raise AgentError(f"Windows disk {disk!r} is not PhysicalDriveN (see Get-Disk)")
    return int(m.group(1))


@dataclass(frozen=True)
class WindowsDiskUse:
    """What ``Get-Disk`` says about the disk, and its geometry."""

    number: int
    friendly_name: str
    is_offline: bool
    is_read_only: bool
    is_clustered: bool
    is_boot: bool
    is_system: bool
    partitions: int
    size: int
    logical_block_size: int

    @property
    def reason(self) -> str | None:
        if self.is_boot or self.is_system:
            return "it is a boot or system disk"
        if self.is_clustered:
            return "it is clustered (in a cluster role or a Cluster Shared Volume)"
        if self.partitions:
            return f"it holds {self.partitions} partition(s)"
        if self.is_read_only:
            return "it is read-only"
        if not self.is_offline:
            return "it is online (set it offline: Set-Disk -IsOffline $true)"
        return None


class WindowsNodeAgent(DiskAgent):
    """The agent on a Windows cluster node's disk, through a ``WindowsHost``."""

    def __init__(self, driver: Any, node: str, device: str, *, alias: str = "") -> None:
        self.driver, self.node, self.device = driver, node, device
        self.number = disk_number(device)
        self.path = f"\\\\.\\PhysicalDrive{self.number}"
        self.alias = alias or device
        source = SOURCE.read_text()
        self.remote_source = ("C:\\ProgramData\\splitbrain\\agent-"
                              f"{hashlib.sha256(source.encode()).hexdigest()[:12]}.cs")
        self._shipped = False

    def ship(self) -> None:
        """Upload the C# source (skipped when the host already has this version)."""
        if self._shipped:
            return
        target = ps.literal(self.remote_source)
        part = ps.literal(self.remote_source + ".part")
        rows = self.driver.powershell(
            f"[pscustomobject]@{{ Present = (Test-Path -LiteralPath {target}) }}",
            operation="agent source present")
        if not (rows and rows[0].get("Present")):
            data = base64.b64encode(SOURCE.read_bytes()).decode()
            self.driver.powershell(
                "New-Item -ItemType Directory -Force -Path 'C:\\ProgramData\\splitbrain' | "
                f"Out-Null\n[IO.File]::WriteAllText({part}, '')",
                operation="agent upload start")
            for i in range(0, len(data), CHUNK):
                self.driver.powershell(
                    f"[IO.File]::AppendAllText({part}, {ps.literal(data[i:i + CHUNK])})",
                    operation="agent upload")
            self.driver.powershell(
                f"$b = [IO.File]::ReadAllText({part})\n"
                f"[IO.File]::WriteAllBytes({target}, [Convert]::FromBase64String($b))\n"
                f"Remove-Item -LiteralPath {part}",
                operation="agent upload finish")
        self._shipped = True

    def _compiled(self, call: str) -> str:
        return (f"if (-not ('SplitbrainAgent' -as [type])) {{ Add-Type -Path "
                f"{ps.literal(self.remote_source)} }}\n{call}")

    def check(self) -> WindowsDiskUse:
        self.ship()
        rows = self.driver.powershell(self._compiled(
            f"$d = Get-Disk -Number {self.number}\n"
            f"$g = [SplitbrainAgent]::Geometry({ps.literal(self.path)})\n"
            "[pscustomobject]@{ Number = $d.Number; FriendlyName = $d.FriendlyName; "
            "IsOffline = [bool]$d.IsOffline; IsReadOnly = [bool]$d.IsReadOnly; "
            "IsClustered = [bool]$d.IsClustered; IsBoot = [bool]$d.IsBoot; "
            "IsSystem = [bool]$d.IsSystem; Partitions = [int]$d.NumberOfPartitions; "
            "Size = [long]$g[0]; LogicalBlockSize = [long]$g[1] }"),
            operation=f"Get-Disk {self.number}")
        if not rows:
            raise AgentError(f"Get-Disk -Number {self.number} on {self.node} returned nothing")
        r = rows[0]
        return WindowsDiskUse(int(r["Number"]), str(r.get("FriendlyName") or ""),
                              bool(r["IsOffline"]), bool(r["IsReadOnly"]),
                              bool(r["IsClustered"]), bool(r["IsBoot"]), bool(r["IsSystem"]),
                              int(r["Partitions"]), int(r["Size"]), int(r["LogicalBlockSize"]))

    def node_clock_ns(self) -> int:
        rows = self.driver.powershell(
            "[pscustomobject]@{ Ns = [long]([Diagnostics.Stopwatch]::GetTimestamp() * "
            "(1e9 / [Diagnostics.Stopwatch]::Frequency)) }", operation="agent clock")
        try:
            return int(rows[0]["Ns"])
        except (IndexError, KeyError, TypeError, ValueError):
            raise AgentError(f"{self.node} printed no clock: {rows!r:.80}") from None

    def run(self, *, generation: int, seed: int = 0, block_size: int = 4096,
            ops: int | None = None, duration_s: float | None = None, region_offset: int = 0,
            region_length: int = 0, timeout: float | None = None,
            writers: int = 1) -> list[dict[str, Any]]:
        if writers != 1:
            raise AgentError("the Windows agent runs one writer (queue depth 1)")
        self.refuse_if_in_use()  # again, right before writing
        rows = self.driver.powershell(self._compiled(
            f"[pscustomobject]@{{ Lines = [SplitbrainAgent]::Run({ps.literal(self.path)}, "
            f"{ps.literal(self.node)}, {ps.integer(seed)}, "
            f"{ps.integer(generation, high=2**32 - 1)}, {ps.integer(block_size)}, "
            f"{ps.integer(ops or 0)}, {float(duration_s or 0)!r}, "
            f"{ps.integer(region_offset, high=2**62)}, "
            f"{ps.integer(region_length, high=2**62)}) }}"),
            operation=f"agent run on PhysicalDrive{self.number}", timeout=timeout)
        return parse_agent_records(str(rows[0]["Lines"]) if rows else "", self.node)

    def read(self, offset: int, length: int) -> bytes:
        rows = self.driver.powershell(self._compiled(
            f"[pscustomobject]@{{ Data = [SplitbrainAgent]::Read({ps.literal(self.path)}, "
            f"{ps.integer(offset, high=2**62)}, {ps.integer(length)}) }}"),
            operation="agent read")
        return base64.b64decode(str(rows[0]["Data"]))
