"""Timing checker: pauses, failover and heal times from a hand-made history."""

from __future__ import annotations

import json

import pytest

from harness.checks.timing import check_timing, measure
from harness.workload.errors import WorkloadConfigError

MS = 1_000_000


def op(s, t, path, *, outcome="ok", latency=2 * MS, error=None):
    h = s.history
    oid = h.invoke(0, "read", 0, 8, time_ns=t)
    h.complete(oid, outcome, invoke_ns=t, time_ns=t + latency, path=path, error=error)


@pytest.fixture
def failover(scenario):
    """I/O every 10 ms over p0 and p1; p0 is cut at 1 s (I/O stalls 300 ms), healed at 2 s."""
    s = scenario
    t = 0
    while t < 1000 * MS:
        op(s, t, "p0" if (t // (10 * MS)) % 2 else "p1")
        t += 10 * MS
    s.history.fault_start("cut p0", time_ns=1000 * MS, paths=["p0"])
    op(s, 1000 * MS, "p0", outcome="info", latency=500 * MS, error="timeout")
    t = 1300 * MS  # multipath gives up on p0: first I/O on p1 lands 302 ms after the cut
    while t < 2000 * MS:
        op(s, t, "p1")
        t += 10 * MS
    s.history.fault_stop("cut p0", time_ns=2000 * MS)
    t = 2000 * MS
    while t < 2500 * MS:
        op(s, t, "p1" if t < 2150 * MS or (t // (10 * MS)) % 2 else "p0")
        t += 10 * MS
    return s


def test_measures(failover):
    report = measure(failover.load(), bin_s=0.5)
    assert report.longest_pause_s == pytest.approx(0.310)
    assert report.longest_pause_faults == ["cut p0"]
    (ft,) = report.faults
    assert ft.failover_s == pytest.approx(0.302) and ft.failover_path == "p1"
    assert ft.heal_per_path_s == {"p0": pytest.approx(0.162), "p1": pytest.approx(0.002)}
    assert ft.heal_to_all_paths_s == pytest.approx(0.162)
    assert report.caller_errors == 1
    assert [b.ok for b in report.bins][:2] == [50, 50]
    assert report.bins[2].errors == 0 and report.bins[3].errors == 1


def test_within_budget_is_valid(failover):
    verdict = check_timing(failover.load(), {"io_pause": 1.0, "failover": 0.5,
                                             "heal_to_all_paths": 0.5, "caller_errors": 1})
    assert verdict.valid, verdict.problems
    json.dumps(verdict.to_json())


def test_over_budget_names_the_measure_and_fault(failover):
    verdict = check_timing(failover.load(), {"io_pause": 0.1, "failover": 0.2,
                                             "heal_to_all_paths": 0.1, "caller_errors": 0})
    got = sorted(p.detail["measure"] for p in verdict.problems)
    assert got == ["caller_errors", "failover", "heal_to_all_paths", "io_pause"]
    fo = next(p for p in verdict.problems if p.detail["measure"] == "failover")
    assert "cut p0" in fo.message and fo.detail["value"] == pytest.approx(0.302)
    assert {r["type"] for r in fo.records} == {"fault"}


def test_path_that_never_returns_is_reported(scenario):
    op(scenario, 0, "p0")
    op(scenario, 5 * MS, "p1")
    scenario.history.fault_start("cut p0", time_ns=10 * MS, paths=["p0"])
    op(scenario, 20 * MS, "p1")
    scenario.history.fault_stop("cut p0", time_ns=30 * MS)
    op(scenario, 40 * MS, "p1")
    verdict = check_timing(scenario.load(), {"heal_to_all_paths": 10})
    assert [(p.kind, p.device) for p in verdict.problems] == [("path_not_restored", "p0")]


def test_fault_with_no_recovery(scenario):
    op(scenario, 0, "p0")
    scenario.history.fault_start("kill node1", time_ns=10 * MS)
    op(scenario, 20 * MS, "p0", outcome="fail", error="connection refused")
    verdict = check_timing(scenario.load(), {})
    assert [p.kind for p in verdict.problems] == ["no_recovery"]


def test_unknown_budget_name_is_a_user_error(scenario):
    with pytest.raises(WorkloadConfigError, match="unknown timing budget"):
        check_timing(scenario.load(), {"failover_time": 1})


def test_heal_to_synchronized_from_replica_states(failover):
    h = failover.history
    h.replica_state("node1", "synchronized", time_ns=0)
    h.replica_state("node2", "synchronized", time_ns=0)
    h.replica_state("node2", "not synchronized", time_ns=1000 * MS)
    h.replica_state("node2", "synchronizing", time_ns=2100 * MS)
    h.replica_state("node2", "synchronized", time_ns=2400 * MS)
    (ft,) = measure(failover.load()).faults
    assert ft.heal_to_synchronized_s == pytest.approx(0.4)
    verdict = check_timing(failover.load(), {"heal_to_synchronized": 0.3})
    assert [p.detail["measure"] for p in verdict.problems] == ["heal_to_synchronized"]
    assert check_timing(failover.load(), {"heal_to_synchronized": 0.5}).valid


def test_replicas_that_never_resynchronize(failover):
    h = failover.history
    h.replica_state("node1", "synchronized", time_ns=0)
    h.replica_state("node2", "not synchronized", time_ns=1000 * MS)
    verdict = check_timing(failover.load(), {"heal_to_synchronized": 10})
    assert [p.kind for p in verdict.problems] == ["not_resynchronized"]


def test_inventory_budget_names_and_per_fault_budget(scenario):
    op(scenario, 0, "p0")
    scenario.history.fault_start("kill node1", time_ns=10 * MS, budget="node_failover_s")
    op(scenario, 500 * MS, "p1")
    inventory = {"path_failover_s": 0.1, "node_failover_s": 1.0, "io_pause_s": 25,
                 "resync_s": 120, "live_migration_s": 30}
    assert check_timing(scenario.load(), inventory).valid
    verdict = check_timing(scenario.load(), {**inventory, "node_failover_s": 0.2})
    assert [(p.kind, p.detail["measure"]) for p in verdict.problems] == [
        ("over_budget", "node_failover_s")]
    assert check_timing(scenario.load(), {"io_pause_s": 0.1}).problems[0].detail[
        "measure"] == "io_pause"
