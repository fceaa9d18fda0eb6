"""A split brain the device holds ends the run's waits at once, and only that: the paths
never come back and the replicas never resync until an administrator marks a side, so
waiting out the deadlines proves nothing; the problem is still reported."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from harness.chaos import runner as runner_module
from harness.chaos.observers import HeldFor
from harness.chaos.runner import ChaosRun
from harness.chaos.scenario import holds_split_brain

HELD = {"state": "Not synchronized", "last_plan": "split brain: SWS-Store1 (generation 3) and "
        "SWS-Store2 (generation 3) both carried on alone; both stay Not synchronized until an "
        "administrator marks one synchronized"}
NEITHER = {"state": "Not synchronized",
           "last_plan": "neither replica is synchronized: mark one as synchronized"}
RESYNCING = {"state": "Not synchronized", "last_plan": "SWS-Store1 is newer (generation 4 > 3)"}


def test_only_every_replica_waiting_for_a_mark_is_a_held_split_brain() -> None:
    assert holds_split_brain([HELD, HELD])
    assert holds_split_brain([HELD, NEITHER])
    assert not holds_split_brain([HELD, RESYNCING])  # one side resyncs: it converges
    assert not holds_split_brain([HELD, {**HELD, "state": "Synchronized"}])
    assert not holds_split_brain([HELD, None])  # a node that does not answer: unknown
    assert not holds_split_brain([])


def test_held_for_needs_the_condition_without_a_break() -> None:
    held = HeldFor(0.2)
    assert not held(True)
    time.sleep(0.25)
    assert not held(False)  # a break starts it over
    assert not held(True)
    time.sleep(0.25)
    assert held(True)


class Watch:
    def __init__(self, states: dict[str, str]) -> None:
        self.last = states

    def synchronized(self) -> bool:
        return all(s == "synchronized" for s in self.last.values())


def fake_run(held: bool | None, administrator: object = None) -> SimpleNamespace:
    settings = SimpleNamespace(held=None if held is None else (lambda: held),
                               administrator=administrator, settle_s=1.5)
    run = SimpleNamespace(settings=settings, run_problems=[], meta={},
                          device=SimpleNamespace(alias="HA2"), resync_deadline=lambda: 1.5,
                          settle_deadline=lambda: 1.5)
    run.held = lambda: ChaosRun.held(run)
    return run


@pytest.mark.parametrize("held", [True, False, None])
def test_the_settle_ends_early_only_on_a_held_split_brain(
    held: bool | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "HELD_S", 0.3)
    run = fake_run(held)
    watch = Watch({"SWS-Store1": "not synchronized", "SWS-Store2": "not synchronized"})
    assert ChaosRun.wait_synchronized(run, watch) is None
    (problem,) = run.run_problems
    assert problem.kind == "not_synchronized"  # reported either way
    if held:
        assert problem.detail["split_brain_held"]  # ended by the hold, not the deadline
        assert "split brain" in problem.message and "administrator" in problem.message
    else:
        assert "split_brain_held" not in problem.detail  # the deadline ended it


def test_with_an_administrator_the_settle_waits_for_the_mark() -> None:
    run = fake_run(True, administrator=lambda: "marked")
    watch = Watch({"SWS-Store1": "not synchronized", "SWS-Store2": "not synchronized"})
    assert ChaosRun.wait_synchronized(run, watch) is None
    assert "split_brain_held" not in run.run_problems[0].detail


def test_synchronized_replicas_are_never_held() -> None:
    run = fake_run(True)
    watch = Watch({"SWS-Store1": "synchronized", "SWS-Store2": "synchronized"})
    waited = ChaosRun.wait_synchronized(run, watch)
    assert waited is not None and not run.run_problems
