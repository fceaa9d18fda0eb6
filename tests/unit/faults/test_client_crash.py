"""A client crash: inject abandons (the crash callback), heal restarts, once; another
process healing the journal has nothing to undo."""

from __future__ import annotations

from pathlib import Path

from harness.faults.client import ClientCrash
from harness.faults.journal import FaultJournal


def test_inject_crashes_heal_restarts_once_and_is_journaled(tmp_path: Path) -> None:
    calls: list[str] = []
    journal = FaultJournal(tmp_path / "j.jsonl")
    fault = ClientCrash("Demo1", crash=lambda: calls.append("crash"),
                        restart=lambda: calls.append("restart"), journal=journal)
    with fault:
        assert calls == ["crash"] and fault.active
        assert [f.id for f in journal.open_faults()] == [fault.id]
    assert calls == ["crash", "restart"] and not fault.active
    fault.heal()
    ClientCrash.heal_from(fault.undo_record())  # a second heal (another process): nothing
    assert calls == ["crash", "restart"] and journal.open_faults() == []
