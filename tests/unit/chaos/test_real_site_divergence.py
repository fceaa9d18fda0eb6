"""On a real site (no replica image files) the divergence check reads each replica
through a path to its own storage host, and only once the site's replica states say
every replica is Synchronized."""

from __future__ import annotations

from types import SimpleNamespace

from harness.chaos.phases import RunPhases
from harness.lab.inventory import loads
from tests.unit.lab.test_inventory import BASE


def phases(states: dict[str, str]) -> tuple[RunPhases, SimpleNamespace]:
    device = loads(BASE).device("HA1")
    run = SimpleNamespace(device=device, run_problems=[], say=lambda _: None,
                          sut=SimpleNamespace(replica_states=lambda: {"HA1": states}))
    p = RunPhases.__new__(RunPhases)
    p.run = run
    return p, run


class Dev:
    block_size = 512
    num_blocks = 8


def test_replicas_are_read_through_their_own_paths_once_synchronized():
    p, run = phases({"Store1": "Synchronized", "Store2": "Synchronized"})
    readers = p._replicas_through_their_paths({"Node1->iscsi/Store1": Dev(),
                                               "Node1->iscsi/Store2": Dev()})
    assert sorted(readers) == ["HA1@Store1", "HA1@Store2"] and run.run_problems == []


def test_replicas_not_synchronized_are_not_compared_and_that_is_a_problem():
    p, run = phases({"Store1": "Synchronized", "Store2": "Synchronizing"})
    assert p._replicas_through_their_paths({"Node1->iscsi/Store1": Dev(),
                                            "Node1->iscsi/Store2": Dev()}) is None
    assert [pr.kind for pr in run.run_problems] == ["replicas_not_compared"]
