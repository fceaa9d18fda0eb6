"""The nightly nemesis plan: dense, every family, overlapping, seeded; shrinking candidates."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from harness.chaos.nightly import (
    as_scenario,
    candidates,
    nightly_plan,
    nightly_scenario,
    parse_weights,
    read_failed_run,
)
from harness.chaos.scenario import Scenario, ScenarioError, resolve
from harness.faults.nemesis import FaultSpec, Schedule, Step
from harness.lab.inventory import load

LAB = Path(__file__).resolve().parents[3] / "fixtures" / "inventories" / "lab.toml"


def test_same_seed_same_schedule_and_it_is_dense_and_varied() -> None:
    inv = load(LAB)
    dev, faults, a = nightly_plan(inv, seed=42, duration_s=600)
    _, _, b = nightly_plan(inv, seed=42, duration_s=600)
    _, _, c = nightly_plan(inv, seed=43, duration_s=600)
    assert a == b and a != c
    assert len(a.steps) > 600 / 8  # a fault every few seconds
    kinds = {k for s in a.steps for k, v in faults.by_kind.items() if s.spec in v}
    assert {"sync-link", "primary", "mpio", "double", "power-loss", "disk"} <= kinds
    # heartbeat strategy: no full partition unless asked for (--weights split-brain=1)
    assert not any(s.spec.target.startswith("heartbeat") for s in a.steps)
    overlapping = [(x, y) for x, y in itertools.combinations(a.steps, 2)
                   if x.at_s < y.at_s + y.duration_s and y.at_s < x.at_s + x.duration_s]
    assert overlapping and all(x.spec.target != y.spec.target for x, y in overlapping)
    assert nightly_scenario(dev, 600).split_brain == "allowed"  # the lab is heartbeat


def test_weights_and_bad_input() -> None:
    inv = load(LAB)
    _, faults, s = nightly_plan(inv, seed=1, duration_s=300,
                                weights=parse_weights("disk=1,mpio=0"))
    assert {st.spec for st in s.steps} <= set(faults.by_kind["disk"])
    for bad in ("meteor=1", "disk=-1", "disk=x"):
        with pytest.raises(ScenarioError, match="--weights"):
            parse_weights(bad)
    with pytest.raises(ScenarioError, match="must be positive"):
        nightly_plan(inv, seed=1, duration_s=0)


def test_shrink_candidates_and_the_scenario_file_a_test_can_run(tmp_path: Path) -> None:
    inv = load(LAB)
    steps = [Step(10.0 + i, 4.0, FaultSpec.of("cut", f"iscsi{1 + i % 2}/SWS-Store1"))
             for i in range(4)]
    cands = candidates(steps)
    assert cands[0] == steps[:2] and cands[1] == steps[2:]
    assert [len(c) for c in cands[2:6]] == [3, 3, 3, 3]
    assert all(s.duration_s == 2.0 for s in cands[-1])
    scenario = as_scenario(steps[1:2], nightly_scenario(inv.devices["HA1"], 600), "x")
    assert scenario.faults[0].at_s == 1.5 and scenario.duration_s == 7.5
    again = Scenario.from_json(json.loads(json.dumps(scenario.to_json())))
    _, schedule = resolve(again, inv, inv.devices["HA1"])
    assert schedule.steps[0].spec == steps[1].spec  # concrete selectors resolve to themselves
    (tmp_path / "schedule.json").write_text(json.dumps(Schedule(tuple(steps), 3).to_json()))
    (tmp_path / "scenario.json").write_text(json.dumps(scenario.to_json()))
    (tmp_path / "verdict.json").write_text(json.dumps({"run": {"result": "Success"}}))
    with pytest.raises(ScenarioError, match="did not fail"):
        read_failed_run(tmp_path)
    with pytest.raises(ScenarioError, match="not a chaos run directory"):
        read_failed_run(tmp_path / "nope")
