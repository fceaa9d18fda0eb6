"""The one schedule generator: seeded, dense or sparse, overlapping only on other targets."""

from __future__ import annotations

import itertools
import json

import pytest

from harness.chaos.schedule import ChaosPlanError, Density, draw_schedule
from harness.faults import FaultError, FaultSpec, Schedule

BY_KIND = {
    "sync": [FaultSpec.of("blackhole", "sync/SWS-Store1/HA2")],
    "path": [FaultSpec.of("cut", "iscsi1/SWS-Store1"), FaultSpec.of("cut", "iscsi2/SWS-Store2")],
    "delay": [FaultSpec.of("delay", "heartbeat", delay_ms=50.0)],
    "kill": [FaultSpec.of("kill", "SWS-Store2")],
}
DENSE = Density(fault_s=(1.0, 5.0), gap_s=(0.5, 3.0), relative=False, overlap=0.6)


def test_same_seed_same_schedule_other_seed_other_schedule() -> None:
    a = draw_schedule(BY_KIND, list(BY_KIND), seed=7, duration_s=300, density=DENSE)
    b = draw_schedule(BY_KIND, list(BY_KIND), seed=7, duration_s=300, density=DENSE)
    c = draw_schedule(BY_KIND, list(BY_KIND), seed=8, duration_s=300, density=DENSE)
    assert a == b and a.to_json() == b.to_json()
    assert a != c
    assert a.seed == 7 and len(a.steps) > 50  # dense: a fault every few seconds


def test_sparse_schedule_is_one_fault_at_a_time_and_heals_before_the_end() -> None:
    s = draw_schedule(BY_KIND, list(BY_KIND), seed=3, duration_s=20)
    for prev, nxt in itertools.pairwise(s.steps):
        assert prev.at_s + prev.duration_s < nxt.at_s
    assert s.duration_s <= 20 - 0.5
    # every kind is dealt before any repeats
    assert len({next(k for k, v in BY_KIND.items() if st.spec in v) for st in s.steps[:3]}) == 3


def test_dense_schedule_overlaps_faults_but_never_on_one_target() -> None:
    s = draw_schedule(BY_KIND, list(BY_KIND), seed=5, duration_s=600, density=DENSE)
    overlapping = 0
    for a, b in itertools.combinations(s.steps, 2):
        if a.at_s < b.at_s + b.duration_s and b.at_s < a.at_s + a.duration_s:
            overlapping += 1
            assert a.spec.target != b.spec.target, (a, b)
    assert overlapping > 10  # compound faults happen
    assert s.duration_s <= 600 - DENSE.tail_s


def test_weights_choose_how_often_each_kind_comes() -> None:
    s = draw_schedule(BY_KIND, list(BY_KIND), seed=1, duration_s=600, density=DENSE,
                      weights={"kill": 1.0, "sync": 9.0})
    actions = [st.spec.action for st in s.steps]
    assert set(actions) == {"kill", "blackhole"}
    assert actions.count("blackhole") > 3 * actions.count("kill")


def test_nonsense_is_refused() -> None:
    with pytest.raises(ChaosPlanError, match="none of the fault kinds"):
        draw_schedule({}, ["sync"], seed=1, duration_s=10)
    with pytest.raises(ChaosPlanError, match="bad ranges"):
        draw_schedule(BY_KIND, ["sync"], seed=1, duration_s=10, density=Density(fault_s=(5, 1)))


def test_a_saved_schedule_reads_back_and_garbage_is_refused_in_one_line() -> None:
    s = draw_schedule(BY_KIND, list(BY_KIND), seed=9, duration_s=120, density=DENSE)
    assert Schedule.from_json(json.loads(json.dumps(s.to_json()))) == s
    for bad in ({"steps": [{"at_s": "soon"}]}, [], {"seed": 1}):
        with pytest.raises(FaultError, match="not a fault schedule") as err:
            Schedule.from_json(bad)
        assert "\n" not in str(err.value)
