"""Availability under overlapping faults: episodes and the windows beyond redundancy.

Two replicas, HA2@n1 (paths p1/n1) and HA2@n2 (p2/n2). Errors returned to the caller
while every replica is impaired by injected faults are expected, counted apart; the same
errors while one replica could serve, after the window and its settle, or with a replica
the device dropped by itself, still fail."""

from __future__ import annotations

import pytest

from harness.checks.episodes import beyond_redundancy, episodes
from harness.checks.faults_report import fault_judgement, faults_verdict
from harness.checks.stream_check import stream_history
from harness.workload.history_stream import outline

MS = 1_000_000
S = 1000 * MS
P1, P2 = "Demo1->iscsi1/n1", "Demo1->iscsi1/n2"
BUDGETS = {"path_failover_s": 4.0, "node_failover_s": 10.0, "io_pause_s": 10.0,
           "op_latency_s": 8.0, "stall_s": 2.0, "caller_errors_max": 0.0,
           "heal_to_all_paths_s": 15.0, "resync_s": 60.0}


def op(s, t, path, *, outcome="ok", latency=2 * MS, f="read"):
    oid = s.history.invoke(0, f, 0, 8, time_ns=t)
    s.history.complete(oid, outcome, invoke_ns=t, time_ns=t + latency, path=path,
                       error=None if outcome == "ok" else "MEDIUM ERROR")


def io(s, start, stop, paths=(P1, P2), *, outcome="ok", every=10 * MS):
    t = start
    while t < stop:
        op(s, t, paths[(t // every) % len(paths)], outcome=outcome)
        t += every


def fault(s, name, action, target, start, stop, *, budget="node_failover_s", **attrs):
    s.history.fault_start(name, time_ns=start, action=action, target=target, budget=budget,
                          **attrs)
    s.history.fault_stop(name, time_ns=stop)


def state(s, host, st, t):
    s.history.replica_state(f"HA2@{host}", st, time_ns=t)


def in_sync_for_a_second(s):
    """Both replicas Synchronized from the start, I/O on both paths for one second."""
    state(s, "n1", "synchronized", 0)
    state(s, "n2", "synchronized", 0)
    io(s, 0, 1 * S)


@pytest.fixture
def both_impaired(scenario):
    """n1 killed 1-3 s, n2's disk fails 1.5-2.5 s: no replica can serve 1.5-3.5 s (n1
    back at 3 s but Synchronized only at 3.5 s); MEDIUM ERRORs 1.6-2.4 s."""
    s = scenario
    in_sync_for_a_second(s)
    fault(s, "kill n1 [0]", "kill", "n1", 1 * S, 3 * S, paths=[P1])
    state(s, "n1", "down", 1 * S + 5 * MS)
    io(s, 1 * S, 1500 * MS, paths=(P2,))
    fault(s, "disk-eio n2 [1]", "disk-eio", "n2", 1500 * MS, 2500 * MS)
    io(s, 1600 * MS, 2400 * MS, paths=(P2,), outcome="fail")
    state(s, "n2", "not synchronized", 2500 * MS)
    state(s, "n1", "not synchronized", 3 * S)
    state(s, "n1", "synchronized", 3500 * MS)
    state(s, "n2", "synchronized", 3600 * MS)
    io(s, 3500 * MS, 6 * S)
    return s


def judged(s, budgets=BUDGETS):
    j = fault_judgement(s.path, budgets=budgets)
    return j, faults_verdict(j.reports, j)


def test_errors_while_every_replica_is_impaired_are_expected_not_problems(both_impaired):
    j, v = judged(both_impaired)
    (w,) = j.windows
    assert (w.start_ns, w.end_ns) == (1500 * MS, 3500 * MS)
    assert w.caller_errors == 80
    assert v.valid, [p.message for p in v.problems]
    assert v.stats["expected_caller_errors"] == 80
    assert v.stats["beyond_redundancy"][0]["causes"][:2] == ["kill n1 [0]", "disk-eio n2 [1]"]
    raw = {r.name: r for r in j.reports}  # each fault's own numbers stay, in the stats
    assert raw["disk-eio n2 [1]"].caller_errors == 0
    assert raw["disk-eio n2 [1]"].expected_caller_errors == 80
    whole = stream_history(both_impaired.path, BUDGETS).timing
    assert whole.valid and whole.stats["expected_caller_errors"] == 80


def test_the_same_errors_while_one_replica_could_serve_fail(scenario):
    s = scenario
    in_sync_for_a_second(s)
    fault(s, "kill n1 [0]", "kill", "n1", 1 * S, 3 * S, paths=[P1])
    io(s, 1600 * MS, 2400 * MS, paths=(P2,), outcome="fail")  # n2 had no fault at all
    state(s, "n1", "synchronized", 3200 * MS)
    io(s, 3 * S, 5 * S)
    j, v = judged(s)
    assert j.windows == []
    assert [p.detail["measure"] for p in v.problems] == ["caller_errors"]
    assert "80 errors returned to the caller" in v.problems[0].message
    assert not stream_history(s.path, BUDGETS).timing.valid


def test_a_replica_the_device_dropped_by_itself_opens_no_window(scenario):
    """n1 is killed; n2 goes Not synchronized with no fault injected on it: the outage is
    the device's to explain, not a fault beyond redundancy."""
    s = scenario
    in_sync_for_a_second(s)
    fault(s, "kill n1 [0]", "kill", "n1", 1 * S, 3 * S, paths=[P1])
    state(s, "n1", "down", 1 * S + 5 * MS)
    state(s, "n2", "not synchronized", 1200 * MS)
    io(s, 1300 * MS, 2900 * MS, paths=(P2,), outcome="fail")
    state(s, "n1", "synchronized", 3200 * MS)
    state(s, "n2", "synchronized", 3300 * MS)
    io(s, 3300 * MS, 5 * S)
    j, v = judged(s)
    assert j.windows == []
    assert not v.valid and v.problems[0].detail["measure"] == "caller_errors"


def test_a_sync_link_fault_alone_never_opens_a_window(scenario):
    s = scenario
    in_sync_for_a_second(s)
    fault(s, "cut sync/n1/HA2 [0]", "cut", "sync/n1/HA2", 1 * S, 3 * S,
          budget="path_failover_s")
    state(s, "n1", "not synchronized", 1100 * MS)  # the device stopped both: a defect
    state(s, "n2", "not synchronized", 1100 * MS)
    io(s, 1200 * MS, 2800 * MS, outcome="fail")
    state(s, "n1", "synchronized", 3100 * MS)
    state(s, "n2", "synchronized", 3100 * MS)
    io(s, 3100 * MS, 5 * S)
    j, v = judged(s)
    assert j.windows == [] and not v.valid


def test_a_sync_loss_explains_the_partner_only_when_a_node_fault_closes_the_set(scenario):
    """The sync link is cut (n2 correctly stops: it cannot mirror), then n1 is killed: no
    replica can serve. The window opens with the kill, the injected fault on the last
    usable replica."""
    s = scenario
    in_sync_for_a_second(s)
    fault(s, "cut sync/n1/HA2 [0]", "cut", "sync/n1/HA2", 1 * S, 2 * S,
          budget="path_failover_s")
    state(s, "n2", "not synchronized", 1100 * MS)
    io(s, 1 * S, 1500 * MS, paths=(P1,))
    fault(s, "kill n1 [1]", "kill", "n1", 1500 * MS, 3 * S, paths=[P1])
    state(s, "n1", "down", 1500 * MS)
    io(s, 1600 * MS, 2900 * MS, paths=(P2,), outcome="fail")
    state(s, "n1", "synchronized", 3100 * MS)
    state(s, "n2", "synchronized", 3200 * MS)
    io(s, 3200 * MS, 5 * S)
    j, v = judged(s)
    (w,) = j.windows
    assert w.start_ns == 1500 * MS and w.end_ns == 3100 * MS
    assert v.valid, [p.message for p in v.problems]


def test_errors_after_the_window_and_its_settle_fail(both_impaired):
    s = both_impaired
    op(s, 3500 * MS + 10 * S + 200 * MS, P2, outcome="fail")  # past the 10 s settle
    io(s, 14 * S, 15 * S)
    s.history.fault_start("cut iscsi1/n2 [2]", time_ns=13600 * MS, action="cut",
                          target="iscsi1/n2", budget="path_failover_s", paths=[P2])
    s.history.fault_stop("cut iscsi1/n2 [2]", time_ns=13800 * MS)
    _, v = judged(s)
    assert [p.detail["measure"] for p in v.problems] == ["caller_errors"]
    assert "1 errors returned" in v.problems[0].message
    whole = stream_history(s.path, BUDGETS).timing
    assert whole.stats["caller_errors"] == 1 and whole.stats["expected_caller_errors"] == 80


def test_a_window_lasts_at_most_the_resync_budget_past_the_heal(scenario):
    """n1 comes back and never resynchronizes: its outage is excused only for resync_s."""
    s = scenario
    in_sync_for_a_second(s)
    fault(s, "kill n1 [0]", "kill", "n1", 1 * S, 2 * S, paths=[P1])
    state(s, "n1", "not synchronized", 2 * S)
    fault(s, "power-loss n2 [1]", "power-loss", "n2", 3 * S, 4 * S, paths=[P2])
    state(s, "n2", "down", 3 * S)
    state(s, "n2", "not synchronized", 4 * S)
    io(s, 30 * S, 31 * S, outcome="fail")
    out = outline(s.path)
    (w,) = beyond_redundancy(out.faults, out.replicas, 5.0, 40 * S)
    assert (w.start_ns, w.end_ns) == (3 * S, 7 * S)  # n1's 2 s + 5 s of resync budget
    whole = stream_history(s.path, {**BUDGETS, "resync_s": 5.0}).timing
    assert whole.stats["expected_caller_errors"] == 0
    assert "caller_errors" in [p.detail["measure"] for p in whole.problems]


def test_a_hung_disk_impairs_a_slow_one_does_not(scenario):
    s = scenario
    fault(s, "disk-slow n2 [0]", "disk-slow", "n2", 1 * S, 2 * S, params={"delay_ms": 50.0})
    fault(s, "disk-slow n2 [1]", "disk-slow", "n2", 3 * S, 4 * S,
          params={"delay_ms": 600000.0})
    fault(s, "freeze n1 [2]", "freeze", "n1", 1 * S, 5 * S)
    state(s, "n1", "synchronized", 0)
    state(s, "n2", "synchronized", 0)
    io(s, 0, 6 * S)
    out = outline(s.path)
    (w,) = beyond_redundancy(out.faults, out.replicas, 60.0, 6 * S)
    assert (w.start_ns, w.end_ns) == (3 * S, 4 * S)


def overlapping(s, resumed):
    in_sync_for_a_second(s)
    fault(s, "cut iscsi1/n2 [0]", "cut", "iscsi1/n2", 1 * S, 3 * S,
          budget="path_failover_s", paths=[P2])
    fault(s, "freeze n1 [1]", "freeze", "n1", 2 * S, 7 * S, paths=[P1])
    io(s, 1 * S, 2 * S, paths=(P1,))
    io(s, resumed, resumed + 2 * S)  # nothing completes from 2 s: n2 was usable, judged


def test_overlapping_faults_are_one_episode_judged_by_its_largest_budget(make_scenario):
    """A path cut (4 s budget) overlaps a freeze of n1 (10 s): the 6 s pause the freeze
    caused is not charged to the cut; a pause over 10 s is still a problem."""
    s = make_scenario()
    overlapping(s, 8 * S)
    j, v = judged(s)
    assert j.windows == []
    assert [len(e.faults) for e in episodes(outline(s.path).faults)] == [2]
    assert v.valid, [p.message for p in v.problems]
    (e,) = j.episodes
    assert e.budgets["node_failover_s"] == 10.0
    assert e.longest_gap_s == pytest.approx(6, abs=0.02)
    cut = next(r for r in j.reports if r.name.startswith("cut"))
    assert cut.longest_gap_s == pytest.approx(6, abs=0.02)  # its own number, not judged
    assert len(v.stats["faults"]) == 2 and len(v.stats["episodes"]) == 1


def test_an_episode_over_its_largest_budget_is_a_problem(tmp_path):
    from scenario_history import Scenario

    s = Scenario(tmp_path)
    overlapping(s, 13 * S)
    _, v = judged(s)
    assert [p.detail["budget_name"] for p in v.problems] == ["node_failover_s"]
    assert v.problems[0].message.startswith("over budget: episode 0 (2 faults: cut iscsi1/n2")
    assert "no I/O completed for 11.0" in v.problems[0].message


def test_paths_back_are_measured_from_the_episodes_end(scenario):
    s = scenario
    in_sync_for_a_second(s)
    fault(s, "cut iscsi1/n2 [0]", "cut", "iscsi1/n2", 1 * S, 2 * S,
          budget="path_failover_s", paths=[P2])
    for k in range(6):  # faults on n1 follow each other: one episode until 13 s
        fault(s, f"freeze n1 [{k + 1}]", "freeze", "n1", (2 + 2 * k) * S + 500 * MS,
              (3 + 2 * k) * S + 500 * MS, paths=[P1])
    io(s, 1 * S, 19 * S, paths=(P1,))
    io(s, 19 * S, 20 * S)  # n2's path back 17 s after its own heal, 5.5 s after the end
    j, v = judged(s)
    cut = next(r for r in j.reports if r.name.startswith("cut"))
    assert cut.heal_to_all_paths_s == pytest.approx(17, abs=0.02)
    (e,) = j.episodes
    assert e.heal_to_all_paths_s == pytest.approx(5.5, abs=0.02)
    assert v.valid, [p.message for p in v.problems]


def test_the_last_usable_replica_stopped_by_a_sync_fault_opens_no_window(scenario):
    """n1 is down; the sync link is then cut and n2, the last usable replica, stops: no
    injected fault on n2 closed the set, so its outage is judged (it should carry on)."""
    s = scenario
    in_sync_for_a_second(s)
    fault(s, "kill n1 [0]", "kill", "n1", 1 * S, 4 * S, paths=[P1])
    state(s, "n1", "down", 1 * S)
    io(s, 1 * S, 2 * S, paths=(P2,))
    fault(s, "cut sync/n1/HA2 [1]", "cut", "sync/n1/HA2", 2 * S, 3 * S,
          budget="path_failover_s")
    state(s, "n2", "not synchronized", 2100 * MS)
    io(s, 2200 * MS, 3 * S, paths=(P2,), outcome="fail")
    state(s, "n2", "synchronized", 3100 * MS)
    state(s, "n1", "synchronized", 4100 * MS)
    io(s, 3100 * MS, 6 * S)
    j, v = judged(s)
    assert j.windows == []
    assert [p.detail["measure"] for p in v.problems] == ["caller_errors"]


def test_the_loaded_history_path_judges_the_same_way(both_impaired):
    """``compose.check_run`` (a loaded history, small runs) excuses the same errors."""
    import asyncio

    from harness.checks.compose import check_run
    from harness.workload.history import load_history

    s = both_impaired
    run = asyncio.run(check_run(load_history(s.path), budget=BUDGETS, history_path=s.path))
    assert run.verdict("timing").valid and run.verdict("faults").valid
    assert run.verdict("timing").stats["expected_caller_errors"] == 80
    op(s, 20 * S, P2, outcome="fail")  # one error with both replicas up: judged
    run = asyncio.run(check_run(load_history(s.path), budget=BUDGETS, history_path=s.path))
    assert run.verdict("timing").stats["caller_errors"] == 1
    assert not run.verdict("timing").valid
