"""On a real site, a scenario whose fault kinds the site's drivers cannot inject (the
lab-only flap, oneway, delay, disk faults, power loss) is Not Applicable with one
line naming the kind, decided before it starts; on the lab every scenario runs."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from fixtures.settings import INVENTORIES
from harness.chaos.scenario import not_injectable
from harness.chaos.scenarios import SCENARIOS, by_name
from harness.checks.results import ResultsDir, ResultWord
from harness.cli.chaos_command import Session
from harness.faults.lab_faults import LabFaults
from harness.faults.remote_faults import RemoteFaults
from harness.lab.inventory import load
from harness.report.console import Console

LAB_ONLY = {"flap", "oneway", "delay", "disk-eio", "disk-nospace", "disk-slow", "power-loss"}


def site_faults() -> RemoteFaults:
    return RemoteFaults(load(INVENTORIES / "example-site.toml"))


def test_scenarios_with_lab_only_kinds_are_named_and_the_rest_are_kept():
    faults = site_faults()
    for scenario in SCENARIOS:
        kinds = {t.action for t in scenario.faults}
        reason = not_injectable(scenario, faults)
        if kinds & LAB_ONLY:
            assert reason is not None, scenario.name
            assert "\n" not in reason and "cannot inject" in reason
            assert all(k in reason.split(" (")[0] for k in sorted(kinds & LAB_ONLY))
        else:
            assert reason is None, f"{scenario.name}: {reason}"
    assert not_injectable(by_name("sync-flapping"), faults).startswith(
        "this site's drivers cannot inject flap (only the lab can)")


def test_every_kind_a_real_site_claims_is_one_its_build_maps():
    faults = site_faults()
    with pytest.raises(Exception, match="has no fault 'flap'"):
        faults.build(SimpleNamespace(action="flap", target="sync", kwargs={}))
    assert LAB_ONLY.isdisjoint(faults.ACTIONS)


def test_the_labs_injector_runs_every_scenario(tmp_path):
    assert all(not_injectable(s, LabFaults(tmp_path)) is None for s in SCENARIOS)


def session(tmp_path: Path) -> Session:
    args = argparse.Namespace(budget_profile="default", capture=False)
    s = Session(args, None, 7, None, tmp_path / "out")
    s.console = Console(io.StringIO(), tty=False)
    return s


def test_the_chaos_command_records_not_applicable_before_the_scenario_starts(
        tmp_path, monkeypatch):
    inventory = load(INVENTORIES / "example-site.toml")
    sut = SimpleNamespace(inventory=inventory, lab=None, faults=RemoteFaults(inventory))
    started: list[str] = []

    class Started(Exception):
        pass

    def run_scenario(sut, scenario, **_):
        started.append(scenario.name)
        raise Started

    monkeypatch.setattr("harness.chaos.scenario.run_scenario", run_scenario)
    results = ResultsDir(tmp_path / "out")
    s = session(tmp_path)
    s._scenario(sut, by_name("sync-delay"), results)
    [result] = results.read_all()
    assert started == [] and s.failed == 0
    assert result.result is ResultWord.NOT_APPLICABLE
    assert result.reason.startswith("this site's drivers cannot inject delay")
    with pytest.raises(Started):  # a kind the site injects is started
        s._scenario(sut, by_name("sync-reset"), results)
    assert started == ["sync-reset"]


def real_site(kind: str) -> SimpleNamespace:
    import dataclasses

    from harness.remote.replicas.readers import READERS

    inv = load(INVENTORIES / "example-site.toml")
    object.__setattr__(inv, "storage", dataclasses.replace(inv.storage, kind=kind))
    return SimpleNamespace(inventory=inv, lab=None, faults=RemoteFaults(inv),
                           replicas=READERS[kind](inv))


def test_a_split_brain_nobody_can_undo_is_not_played_on_a_real_site():
    """A scenario that allows a split brain leaves the device Not synchronized until an
    administrator marks a side: where the site's storage reader cannot mark (StarWind,
    DRBD, LIO here) it is Not Applicable, in one line; the bundled target's can."""
    from harness.chaos.scenario import real_site_cannot_play

    allowed = [s for s in SCENARIOS if s.split_brain == "allowed"]
    assert allowed
    for kind in ("starwind", "drbd", "lio"):
        reason = real_site_cannot_play(allowed[0], real_site(kind))
        assert reason is not None and "cannot be marked synchronized" in reason, kind
        assert kind in reason and "\n" not in reason
        assert real_site_cannot_play(by_name("sync-blackhole"), real_site(kind)) is None
    assert real_site_cannot_play(allowed[0], real_site("bundled")) is None
    assert "cannot inject flap" in real_site_cannot_play(by_name("sync-flapping"),
                                                         real_site("bundled"))
