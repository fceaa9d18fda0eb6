"""The Windows workload agent's PowerShell answers, on reconstructed transcripts
(tests/data/transcripts/README.md); its C# stamp is checked with Mono in
tests/integration/remote/test_windows_agent_mono.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.remote.agent import AgentError, AgentRun, ClockOffset, DeviceInUse
from harness.remote.errors import UnsafeArgument
from harness.remote.windows_agent import SOURCE, WindowsNodeAgent, disk_number
from harness.workload.history import load_history

TRANSCRIPTS = Path(__file__).parents[2] / "data" / "transcripts" / "agent"

class Answers:
    """A WindowsHost stand-in answering each pipeline from a transcript."""

    def __init__(self, disk: str) -> None:
        self.disk, self.bodies = disk, []

    def powershell(self, body: str, *, operation: str, **kw):
        self.bodies.append(body)
        if "Test-Path" in body:
            return [{"Present": True}]
        name = {"Get-Disk": self.disk, "agent run": "agent-run"}
        for marker, transcript in name.items():
            if marker in operation:
                doc = json.loads((TRANSCRIPTS / f"{transcript}.json").read_text())
                return json.loads(doc["stdout"])
        if operation == "agent clock":
            return [{"Ns": 90_000_000_000}]
        raise AssertionError(f"no transcript for {operation}")


def test_offline_raw_test_lun_is_written_and_its_history_joins_the_timeline(tmp_path):
    host = Answers("agent-get-disk-test-lun")
    agent = WindowsNodeAgent(host, "Demo1", "PhysicalDrive3", alias="HA3")
    use = agent.refuse_if_in_use()
    assert (use.size, use.logical_block_size, use.reason) == (1 << 30, 512, None)
    records = agent.run(generation=0x1234, seed=5, ops=3)
    run = AgentRun("Demo1", ClockOffset(offset_ns=89_000_000_000, uncertainty_ns=1_000, samples=5))
    run.records = records
    history = load_history(run.write(tmp_path / "h.jsonl"))
    assert [o.outcome for o in history.writes] == ["ok", "ok", "info"]
    assert history.header.start_ns == 1_000_000_000
    call = next(b for b in host.bodies if "[SplitbrainAgent]::Run(" in b)
    assert "'\\\\.\\PhysicalDrive3'" in call and "Add-Type -Path" in call


def test_a_clustered_disk_with_partitions_is_refused_before_anything_is_written():
    host = Answers("agent-get-disk-csv")
    agent = WindowsNodeAgent(host, "Demo1", "PhysicalDrive2")
    with pytest.raises(DeviceInUse, match="clustered"):
        agent.refuse_if_in_use()
    with pytest.raises(DeviceInUse):
        agent.run(generation=1, ops=1)
    assert not any("::Run(" in b for b in host.bodies)


def test_disk_names_and_source_flags():
    assert disk_number("PhysicalDrive12") == 12 and disk_number("\\\\.\\PhysicalDrive0") == 0
    with pytest.raises(AgentError, match="PhysicalDriveN"):
        disk_number("C:")
    source = SOURCE.read_text()
    assert "FILE_FLAG_NO_BUFFERING = 0x20000000" in source
    assert "FILE_FLAG_WRITE_THROUGH = 0x80000000" in source and "VirtualAlloc" in source
    with pytest.raises(UnsafeArgument):
        WindowsNodeAgent(Answers("agent-get-disk-test-lun"), "Demo1", "PhysicalDrive3").run(
            generation=-1, ops=1)
