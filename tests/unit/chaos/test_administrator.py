"""The administrator during a nightly: marks one side once every replica has stayed Not
synchronized for a while (a split brain the device detected), and only then."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from harness.chaos import phases
from harness.chaos.phases import RunPhases


def run_admin(states: dict[str, str], seconds: float) -> list[str]:
    marks: list[str] = []
    said: list[str] = []

    def administrator() -> str:
        marks.append("mark")
        return "marked HA2@SWS-Store1 synchronized"

    run = SimpleNamespace(settings=SimpleNamespace(administrator=administrator),
                          meta={}, say=said.append)
    fake = SimpleNamespace(run=run, started=0.0)
    watch = SimpleNamespace(last=states)

    async def body() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(RunPhases._administer(fake, watch), seconds)

    asyncio.run(body())
    assert len(run.meta.get("administrator", [])) == len(marks) == len(said)
    return marks


def test_marks_when_both_sides_stay_not_synchronized(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phases, "ADMIN_AFTER_S", 0.6)
    marks = run_admin({"SWS-Store1": "not synchronized", "SWS-Store2": "not synchronized"}, 2.5)
    assert marks == ["mark"]  # once, then it waits for the resync


def test_never_marks_while_one_side_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phases, "ADMIN_AFTER_S", 0.6)
    assert run_admin({"SWS-Store1": "synchronized", "SWS-Store2": "not synchronized"}, 2.0) == []


def _device():  # type: ignore[no-untyped-def]
    from pathlib import Path

    from harness.lab.inventory import load

    lab = Path(__file__).resolve().parents[3] / "fixtures" / "inventories" / "lab.toml"
    return load(lab).devices["HA2"]


def test_marks_the_replica_with_the_most_recent_data() -> None:
    from harness.chaos.scenario import newest_replica

    dev = _device()
    primary = dev.primary.host
    other = next(r.host for r in dev.replicas if r.host != primary)
    host, why = newest_replica(dev, {primary: {"generation": 3, "alone": True},
                                     other: {"generation": 5, "alone": True}})
    assert host == other and "the newest" in why
    assert f"{other} generation 5 (carried on alone)" in why


def test_a_tie_or_nothing_to_compare_goes_to_the_primary() -> None:
    from harness.chaos.scenario import newest_replica

    dev = _device()
    primary = dev.primary.host
    other = next(r.host for r in dev.replicas if r.host != primary)
    host, why = newest_replica(dev, {primary: {"generation": 4}, other: {"generation": 4}})
    assert host == primary and "tie, the primary" in why
    host, why = newest_replica(dev, {primary: None, other: None})
    assert host == primary and "could be read" in why
    host, why = newest_replica(dev, {primary: None, other: {"generation": 2}})
    assert host == other and f"unreadable: {primary}" in why


def test_acts_only_when_the_device_asks_for_an_administrator() -> None:
    from harness.chaos.scenario import administrator_asked

    assert administrator_asked({"a": {"needs_administrator": True, "generation": 1},
                                "b": {"needs_administrator": False, "generation": 1}})
    assert not administrator_asked({"a": {"needs_administrator": False},
                                    "b": {"needs_administrator": False}})
    assert administrator_asked({"a": {"generation": 1}, "b": None})  # an older device
    assert administrator_asked({"a": None, "b": None})  # nothing readable: as before


def test_a_mark_declined_is_not_recorded_and_watching_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phases, "ADMIN_AFTER_S", 0.6)
    said: list[str] = []
    calls: list[int] = []

    def administrator() -> str | None:
        calls.append(1)
        return None  # the device did not ask

    run = SimpleNamespace(settings=SimpleNamespace(administrator=administrator),
                          meta={}, say=said.append)
    fake = SimpleNamespace(run=run, started=0.0)
    watch = SimpleNamespace(last={"SWS-Store1": "not synchronized",
                                  "SWS-Store2": "not synchronized"})

    async def body() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(RunPhases._administer(fake, watch), 3.8)

    asyncio.run(body())
    assert len(calls) >= 2 and "administrator" not in run.meta and said == []
