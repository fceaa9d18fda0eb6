"""Safety of the agent: only devices marked for testing are written, and the agent's
history lands on the controller's timeline."""

from __future__ import annotations

import json

import pytest

from fixtures.sut import SutError, SystemUnderTest
from harness.lab.inventory import loads
from harness.remote.agent import AgentRun, ClockOffset, NotATestDevice, parse_records
from harness.remote.errors import OutputFormatError
from harness.workload.history import load_history
from tests.unit.lab.test_inventory import BASE

MARKED = BASE.replace('[devices.HA1]\npurpose = "quorum"',
                      '[devices.HA1]\npurpose = "quorum"\ntest = true\n'
                      'disks = { Node1 = "/dev/mapper/mpatha" }')
UNMARKED = BASE.replace('[devices.HA1]\npurpose = "quorum"',
                        '[devices.HA1]\npurpose = "quorum"\n'
                        'disks = { Node1 = "/dev/mapper/mpatha" }')


def test_a_write_aimed_at_a_device_not_marked_for_testing_is_refused(monkeypatch):
    import harness.remote as remote

    opened = []
    monkeypatch.setattr(remote, "open_host", lambda *a, **k: opened.append(a))
    sut = SystemUnderTest(loads(UNMARKED))
    with pytest.raises(NotATestDevice, match=r"HA1 .* is not marked as a test device"):
        sut.agent("Node1", "HA1")
    with pytest.raises(SutError, match="marks no test device"):
        sut.agent("Node1")
    assert opened == []  # refused before any connection
    agent = SystemUnderTest(loads(MARKED)).agent("Node1")
    assert (agent.device, agent.alias, agent.node) == ("/dev/mapper/mpatha", "HA1", "Node1")
    with pytest.raises(SutError, match="not a cluster node"):
        SystemUnderTest(loads(MARKED)).agent("Store1")


def test_agent_history_is_shifted_onto_the_controller_clock(tmp_path):
    header = {"type": "header", "version": 1, "seed": 1, "generation": 9, "block_size": 4096,
              "logical_block_size": 512, "num_blocks": 2048, "device": "n:/dev/x",
              "initial": "unknown", "start_ns": 5_000, "wall_clock": 0.0, "options": {}}
    lines = [header,
             {"type": "invoke", "op": 0, "process": 0, "f": "write", "lba": 8, "count": 8,
              "time": 6_000, "writer": 0, "seq": 0, "generation": 9},
             {"type": "ok", "op": 0, "time": 7_000, "latency": 1_000, "path": "n"}]
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"type": "inv'  # torn tail
    run = AgentRun("n", ClockOffset(offset_ns=4_000, uncertainty_ns=50, samples=3))
    run.records = parse_records(text, "n")
    path = run.write(tmp_path / "h.jsonl")
    history = load_history(path)
    assert history.header.start_ns == 1_000
    assert history.header.options["clock_uncertainty_ns"] == 50
    assert (history.writes[0].invoke_ns, history.writes[0].complete_ns) == (2_000, 3_000)
    with pytest.raises(OutputFormatError):
        parse_records('{"type": "ok"}\n', "n")
