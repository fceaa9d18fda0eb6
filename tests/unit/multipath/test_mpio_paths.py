"""The path state machine, its event log and per-path statistics."""

from __future__ import annotations

import itertools

import pytest

from harness.initiator.mpio.status import (
    PathEventLog,
    PathState,
    PathStateError,
    PathStatistics,
    PathStatus,
    transition_allowed,
)


def _path(name="p0", **kw):
    return PathStatus(name=name, log=PathEventLog(), **kw)


def test_a_new_path_is_connecting_and_logs_its_login():
    p = _path()
    assert p.state == PathState.RECONNECTING
    event = p.move(PathState.ACTIVE, "logged in")
    assert event is not None and event.old == PathState.RECONNECTING
    assert [e.reason for e in p.log] == ["logged in"]


def test_the_failover_cycle_is_logged_in_order_with_monotonic_stamps():
    p = _path()
    p.move(PathState.ACTIVE, "logged in")
    p.move(PathState.FAILED, "connection reset")
    p.move(PathState.RECONNECTING, "reconnect attempt 1")
    p.move(PathState.FAILED, "login refused")
    p.move(PathState.RECONNECTING, "reconnect attempt 2")
    p.move(PathState.ACTIVE, "logged in again")
    events = list(p.log)
    assert [e.new for e in events] == [
        PathState.ACTIVE, PathState.FAILED, PathState.RECONNECTING,
        PathState.FAILED, PathState.RECONNECTING, PathState.ACTIVE,
    ]
    assert all(a.ns <= b.ns for a, b in itertools.pairwise(events))
    assert p.last_error == "login refused"
    assert events[1].to_dict()["new"] == "failed"


def test_a_move_to_the_same_state_is_not_an_event():
    p = _path()
    p.move(PathState.ACTIVE, "up")
    assert p.move(PathState.ACTIVE, "still up") is None
    assert len(p.log) == 1


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (PathState.ACTIVE, PathState.RECONNECTING),
        (PathState.FAILED, PathState.ACTIVE),
        (PathState.REMOVED, PathState.ACTIVE),
        (PathState.REMOVED, PathState.FAILED),
    ],
)
def test_forbidden_transitions_raise(old, new):
    assert not transition_allowed(old, new)
    p = _path()
    p.state = old
    with pytest.raises(PathStateError, match=f"{old.value} -> {new.value}"):
        p.move(new, "test")


def test_removed_is_terminal_and_reachable_from_everywhere():
    for state in PathState:
        if state is not PathState.REMOVED:
            assert transition_allowed(state, PathState.REMOVED)
        assert not transition_allowed(PathState.REMOVED, state)


def test_designation_moves_a_healthy_path_but_not_a_failed_one():
    p = _path()
    p.move(PathState.ACTIVE, "up")
    p.designate(PathState.STANDBY)
    assert p.state == PathState.STANDBY
    p.move(PathState.FAILED, "down")
    p.designate(PathState.ACTIVE)
    assert p.state == PathState.FAILED and p.designation == PathState.ACTIVE
    with pytest.raises(PathStateError):
        p.designate(PathState.FAILED)


def test_listeners_see_every_event_until_they_unsubscribe():
    log = PathEventLog()
    seen = []
    unsubscribe = log.subscribe(seen.append)
    a = PathStatus(name="a", log=log)
    b = PathStatus(name="b", log=log)
    a.move(PathState.ACTIVE, "up")
    b.move(PathState.ACTIVE, "up")
    unsubscribe()
    a.move(PathState.FAILED, "down")
    assert [e.path for e in seen] == ["a", "b"]
    assert [e.path for e in log.for_path("a")] == ["a", "a"]
    assert len(log.since(seen[1].ns)) >= 2


def test_statistics_count_ops_bytes_errors_and_latency():
    s = PathStatistics()
    s.started(4096)
    s.started(512)
    s.started(0)
    assert (s.outstanding, s.bytes_in_flight) == (3, 4608)
    s.finished("write", 4096, 1_000, ok=True, inflight_bytes=4096)
    s.finished("read", 512, 3_000, ok=True, inflight_bytes=512)
    s.finished("other", 0, 9_000, ok=False, inflight_bytes=0)
    assert (s.outstanding, s.bytes_in_flight) == (0, 0)
    assert (s.ops, s.reads, s.writes, s.errors) == (2, 1, 1, 1)
    assert (s.bytes_read, s.bytes_written) == (512, 4096)
    assert s.latency_max_ns == 3_000 and s.latency_mean_ns == 2_000
    assert s.to_dict()["latency_mean_ns"] == 2_000
