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
