"""Per-fault report: each honest number from a hand-made history, and its budget."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from harness.checks.faults_report import faults_verdict, per_fault_report, table_lines
from harness.checks.timing import measure
from harness.workload.history import FaultWindow

MS = 1_000_000
LAB = Path(__file__).resolve().parents[3] / "fixtures" / "inventories" / "lab.toml"


def op(s, t, path, *, outcome="ok", latency=2 * MS, error=None, f="read"):
    h = s.history
    oid = h.invoke(0, f, 0, 8, time_ns=t)
    if outcome is not None:
        h.complete(oid, outcome, invoke_ns=t, time_ns=t + latency, path=path, error=error)


def steady(s, start, stop, paths=("p0", "p1"), every=10 * MS):
    t = start
    while t < stop:
        op(s, t, paths[(t // every) % len(paths)])
        t += every


@pytest.fixture
def blackout(scenario):
    """Round robin over p0/p1; a sync black hole at 1 s stalls every I/O for 2.2 s.

    One read on p1 slips through 5 ms after the fault (what "first success on
    another path" used to call the failover), then nothing completes until 3.2 s;
    healed at 4 s, p0 carries I/O again 0.5 s later.
    """
    s = scenario
    steady(s, 0, 1000 * MS)
    s.history.fault_start("blackhole sync", time_ns=1000 * MS, kind="sync-blackhole",
                          target="sync/n1", paths=["p0"], budget="path_failover_s")
    op(s, 1001 * MS, "p1", latency=4 * MS)  # completes at 1.005 s
    op(s, 1010 * MS, "p0", latency=2190 * MS)  # hangs until 3.2 s
    op(s, 1020 * MS, "p1", latency=2180 * MS)  # hangs until 3.2 s
    steady(s, 3200 * MS, 4000 * MS, paths=("p1",))
    s.history.fault_stop("blackhole sync", time_ns=4000 * MS)
    steady(s, 4000 * MS, 4500 * MS, paths=("p1",))
    steady(s, 4500 * MS, 5000 * MS)
    return s


def report(s, budgets=None, **kw):
    (r,) = per_fault_report(s.path, budgets=budgets, **kw)
    return r


def test_a_blackout_is_reported_whole_not_as_the_first_success(blackout):
    r = report(blackout)
    assert r.longest_gap_s == pytest.approx(2.195, abs=1e-6)  # 1.005 s .. 3.2 s
    assert (r.gap_from_s, r.gap_to_s) == (pytest.approx(1.005), pytest.approx(3.2))
    # the old measure says "failover 5 ms": the reason this report exists
    assert measure(blackout.load()).faults[0].failover_s == pytest.approx(0.005)
    assert (r.kind, r.target, r.injected_s, r.healed_s) == ("sync-blackhole", "sync/n1",
                                                            1.0, 4.0)


def test_a_two_second_blackout_during_a_fault_is_two_seconds(scenario):
    steady(scenario, 0, 1000 * MS)
    scenario.fault("cut p0", 1500 * MS, 1600 * MS)
    steady(scenario, 3000 * MS, 4000 * MS)  # last completion 0.992 s, next 3.002 s
    r = report(scenario)
    assert r.longest_gap_s == pytest.approx(2.010)
    assert r.longest_op_s is None  # nothing was in flight: the device was idle, not slow


def test_gap_is_judged_by_the_faults_own_budget(blackout):
    assert report(blackout, {"path_failover_s": 2.5}).valid
    r = report(blackout, {"path_failover_s": 2.0, "io_pause_s": 25})
    (p,) = r.problems
    assert p.kind == "over_budget" and p.detail["budget_name"] == "path_failover_s"
    assert p.detail["value"] == pytest.approx(2.195)
    assert "2.195 s" in p.message and "blackhole sync" in p.message
    assert {rec["type"] for rec in p.records} == {"fault"}


def test_gap_falls_back_to_io_pause_when_the_fault_names_no_budget(scenario):
    steady(scenario, 0, 1000 * MS)
    scenario.fault("kill n2", 1000 * MS, 1100 * MS)
    steady(scenario, 2000 * MS, 3000 * MS)
    (p,) = report(scenario, {"io_pause_s": 0.5}).problems
    assert p.detail["budget_name"] == "io_pause_s"


def test_longest_operation_and_stalled_operations(blackout):
    r = report(blackout, {"stall_s": 1.0})
    assert r.longest_op_s == pytest.approx(2.190)
    assert r.stalled_ops == 2
    r = report(blackout, {"stall_s": 1.0, "stalled_ops_max": 1, "op_latency_s": 2.0})
    assert sorted(p.detail["budget_name"] for p in r.problems) == ["op_latency_s",
                                                                   "stalled_ops_max"]
    stall = next(p for p in r.problems if p.detail["budget_name"] == "stalled_ops_max")
    assert "2 operations took longer than stall_s = 1 s" in stall.message
    assert {rec["type"] for rec in stall.records} == {"fault", "invoke", "ok"}
    assert report(blackout, {"stall_s": 1.0, "stalled_ops_max": 2,
                             "op_latency_s": 2.5}).valid


def test_an_operation_that_never_completes_stalls_until_the_end(scenario):
    steady(scenario, 0, 1000 * MS)
    scenario.fault("freeze n1", 1000 * MS, 1500 * MS)
    op(scenario, 1100 * MS, "p0", outcome=None)  # never completes
    steady(scenario, 1200 * MS, 9000 * MS, paths=("p1",))
    r = report(scenario, {"stall_s": 1.0})
    assert r.stalled_ops == 1
    assert r.longest_op_s == pytest.approx(8.992 - 1.1)  # until the last record


def test_errors_returned_to_the_caller_are_counted_and_budgeted(blackout):
    s = blackout
    op(s, 2000 * MS, "p0", outcome="fail", error="EIO")
    op(s, 2100 * MS, "p1", outcome="info", latency=1500 * MS, error="timeout")
    op(s, 4800 * MS, "p0", outcome="fail", latency=1 * MS)  # after the window: not counted
    r = report(s, {"caller_errors_max": 0})
    assert r.caller_errors == 2
    (p,) = r.problems
    assert p.detail == {"measure": "caller_errors", "value": 2, "budget": 0.0,
                        "budget_name": "caller_errors_max", "fault": "blackhole sync"}
    assert "2 errors returned to the caller" in p.message
    assert [rec["type"] for rec in p.records].count("fail") == 1
    assert report(s, {"caller_errors_max": 2}).valid


def test_time_until_every_path_carries_io_again(blackout):
    r = report(blackout)
    assert r.paths_back_s == {"p0": pytest.approx(0.502), "p1": pytest.approx(0.002)}
    assert r.heal_to_all_paths_s == pytest.approx(0.502)
    (p,) = report(blackout, {"heal_to_all_paths_s": 0.4}).problems
    assert p.detail["measure"] == "heal_to_all_paths"


def test_a_path_that_never_comes_back_is_a_problem_without_a_budget(scenario):
    steady(scenario, 0, 1000 * MS)
    scenario.fault("cut p0", 1000 * MS, 1200 * MS)
    steady(scenario, 1000 * MS, 3000 * MS, paths=("p1",))
    (p,) = report(scenario).problems  # no budgets given: the default applies
    assert (p.kind, p.device) == ("path_not_restored", "p0")
    assert "no I/O succeeded again on p0" in p.message


def test_a_path_taken_again_by_a_later_fault_is_not_missing(scenario):
    steady(scenario, 0, 1000 * MS)
    scenario.history.fault_start("cut p0", time_ns=1000 * MS, paths=["p0"])
    scenario.history.fault_stop("cut p0", time_ns=1200 * MS)
    scenario.history.fault_start("cut p0 again", time_ns=1300 * MS, paths=["p0"])
    steady(scenario, 1000 * MS, 3000 * MS, paths=("p1",))
    scenario.history.fault_stop("cut p0 again", time_ns=3000 * MS)
    steady(scenario, 3000 * MS, 3100 * MS)
    first, second = per_fault_report(scenario.path)
    assert "p0" not in first.paths_back_s  # taken again before it was back: not measured
    assert first.paths_back_s == {"p1": pytest.approx(0.002)}
    assert second.paths_back_s["p0"] == pytest.approx(0.002)
    assert first.valid and second.valid


def test_time_until_synchronized(blackout):
    h = blackout.history
    h.replica_state("n1", "synchronized", time_ns=0)
    h.replica_state("n2", "synchronized", time_ns=0)
    h.replica_state("n2", "not synchronized", time_ns=1000 * MS)
    h.replica_state("n2", "synchronized", time_ns=4700 * MS)
    r = report(blackout, {"resync_s": 1})
    assert r.heal_to_synchronized_s == pytest.approx(0.7) and r.valid
    (p,) = report(blackout, {"resync_s": 0.5}).problems
    assert p.detail["measure"] == "heal_to_synchronized"


def test_replicas_that_never_resynchronize(blackout):
    blackout.history.replica_state("n2", "not synchronized", time_ns=1000 * MS)
    assert [p.kind for p in report(blackout, {"resync_s": 60}).problems] == [
        "not_resynchronized"]


def test_a_fault_never_healed_is_a_problem(scenario):
    steady(scenario, 0, 1000 * MS)
    scenario.fault("kill n1", 500 * MS, None)
    assert [p.kind for p in report(scenario).problems] == ["not_healed"]


def test_fault_windows_can_come_from_the_caller(blackout):
    window = FaultWindow(7, "from the journal", 3500 * MS, 3600 * MS, {"kind": "path-cut"})
    r = report(blackout, fault_windows=[window])
    assert (r.name, r.kind) == ("from the journal", "path-cut")
    assert r.longest_gap_s < 0.02


def test_streaming_in_small_chunks_gives_the_same_numbers(blackout):
    a = report(blackout, {"stall_s": 1.0}).to_json()
    b = report(blackout, {"stall_s": 1.0}, chunk=3).to_json()
    assert a == b


def test_verdict_and_table(blackout):
    reports = per_fault_report(blackout.path, budgets={"path_failover_s": 1})
    verdict = faults_verdict(reports)
    assert not verdict.valid and verdict.counts() == {"over_budget": 1}
    json.dumps(verdict.to_json())
    head, row = table_lines(reports)
    assert head.split()[:3] == ["fault", "at", "healed"]
    assert row.split()[:3] == ["blackhole", "sync", "1.000"] and "path_failover_s" in row


def lab_budgets() -> dict[str, float]:
    return tomllib.loads(LAB.read_text())["budgets"]["default"]


def test_lab_budgets_pass_a_correct_failover_and_fail_a_slow_one(scenario, make_scenario,
                                                                  tmp_path):
    """The lab's own behaviour (measured in its chaos smoke runs: a sync black hole stops
    I/O for ~2.0 s, the cut path is back 2 s after the heal, no caller errors) passes;
    the same fault with a 9 s stall fails."""
    def run(s, stall_ms):
        steady(s, 0, 1000 * MS)
        s.history.fault_start("blackhole sync", time_ns=1000 * MS, paths=["p0"],
                              budget="path_failover_s")
        op(s, 1000 * MS, "p1", latency=stall_ms * MS)
        steady(s, (1000 + stall_ms) * MS, 3000 * MS + stall_ms * MS, paths=("p1",))
        s.history.fault_stop("blackhole sync", time_ns=3000 * MS + stall_ms * MS)
        steady(s, 3000 * MS + stall_ms * MS, 5000 * MS + stall_ms * MS, paths=("p1",))
        steady(s, 5000 * MS + stall_ms * MS, 6000 * MS + stall_ms * MS)
        return report(s, lab_budgets())

    good = run(scenario, 2000)
    assert good.valid, [p.message for p in good.problems]
    (tmp_path / "slow").mkdir()
    from scenario_history import Scenario

    slow = run(Scenario(tmp_path / "slow"), 9000)
    assert [p.detail.get("budget_name") for p in slow.problems] == ["path_failover_s",
                                                                     "op_latency_s"]


def test_splitbrain_check_prints_the_per_fault_table(blackout, capsys):
    from harness.cli import main

    assert main(["check", str(blackout.path), "--inventory", str(LAB)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("blackhole"))
    assert row.split()[2:6] == ["1.000", "4.000", "2.195", "2.190"] and row.endswith("ok")
    assert main(["check", str(blackout.path), "--inventory", str(LAB),
                 "--budget", "path_failover_s=1"]) == 1
    out = capsys.readouterr().out
    assert "over budget: blackhole sync: no I/O completed for 2.195 s" in out
    assert "path_failover_s" in next(line for line in out.splitlines()
                                     if line.strip().startswith("blackhole"))


def test_an_unknown_budget_name_is_refused_in_one_line(blackout, capsys):
    from harness.cli import main

    assert main(["check", str(blackout.path), "--budget", "path_failover=1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown budget 'path_failover'" in err
    assert main(["check", str(blackout.path), "--budget", "failover=1"]) == 1  # the old name
    assert "path_failover_s" in capsys.readouterr().out


def test_what_a_crashed_client_abandoned_is_no_error_returned_to_a_caller(blackout):
    """Operations a crashed client abandoned (``Workload.crash``) are recorded info, but no
    caller saw them: they are not counted, in the fault's report or the whole run's."""
    from harness.checks.stream_check import stream_history
    from harness.workload.history import ABANDONED

    s = blackout
    op(s, 2000 * MS, "p0", outcome="fail", error="EIO")
    for t in (2100, 2200, 2300):
        op(s, t * MS, "p1", outcome="info", latency=1 * MS, error=ABANDONED, f="write")
    r = report(s, {"caller_errors_max": 0})
    assert r.caller_errors == 1
    (p,) = r.problems
    assert "1 errors returned to the caller" in p.message
    whole = stream_history(s.path, {"caller_errors_max": 0}).timing
    assert whole.stats["caller_errors"] == 1
    assert measure(s.load()).caller_errors == 1


def cut_then_node_fault(scenario, node: str) -> tuple[str, str, object]:
    """Store1's path cut and healed at 1.2 s, then a power loss of ``node`` from 1.3 s to
    3 s; Store1's path carries I/O again only at 3 s. The first fault's report."""
    a, b = "Demo1->iscsi1/Store1", "Demo1->iscsi1/Store2"
    steady(scenario, 0, 1000 * MS, paths=(a, b))
    scenario.history.fault_start("cut iscsi1/Store1", time_ns=1000 * MS, paths=[a])
    scenario.history.fault_stop("cut iscsi1/Store1", time_ns=1200 * MS)
    scenario.history.fault_start(f"power-loss {node}", time_ns=1300 * MS, paths=[],
                                 action="power-loss", target=node)
    steady(scenario, 1000 * MS, 3000 * MS, paths=(b,))
    scenario.history.fault_stop(f"power-loss {node}", time_ns=3000 * MS)
    steady(scenario, 3000 * MS, 3100 * MS, paths=(a, b))
    first, _ = per_fault_report(scenario.path)
    return a, b, first


def test_a_path_whose_node_a_later_fault_takes_is_not_missing(scenario):
    """Nightly 42: SWS-Store1 lost power 2 s after an episode healed, then was killed;
    its paths came back 27 s after that heal, but a later fault on their node had taken
    them again first."""
    a, b, first = cut_then_node_fault(scenario, "Store1")
    assert a not in first.paths_back_s  # its node was taken before it was back
    assert first.paths_back_s == {b: pytest.approx(0.002)}


def test_a_later_fault_on_another_node_does_not_excuse_a_path(scenario):
    a, _, first = cut_then_node_fault(scenario, "Store2")
    assert first.paths_back_s[a] == pytest.approx(1.802)
