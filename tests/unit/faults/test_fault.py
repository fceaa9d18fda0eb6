"""The fault life cycle: journal before apply, idempotent heal, live registry, journal sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.faults import (
    FaultError,
    FaultJournal,
    HealError,
    JournalError,
    heal_journal,
    heal_live,
    live_faults,
)
from harness.faults.fault import CompositeFault
from tests.unit.faults.flag_fault import FlagFault


@pytest.fixture
def journal(tmp_path: Path) -> FaultJournal:
    return FaultJournal(tmp_path / "faults.jsonl")


def events(journal: FaultJournal) -> list[tuple[str, str]]:
    return [(r["event"], r["id"]) for r in journal.records()]


def test_inject_is_journaled_before_apply_and_healed_on_exit(
    tmp_path: Path, journal: FaultJournal
) -> None:
    flag = tmp_path / "broken"
    seen_at_apply: list[list[str]] = []

    class Watching(FlagFault):
        def apply(self) -> None:
            seen_at_apply.append([e for e, _ in events(journal)])
            super().apply()

    with Watching(flag, journal=journal) as fault:
        assert flag.exists() and fault.active and fault in live_faults()
    assert not flag.exists() and not fault.active and fault not in live_faults()
    assert seen_at_apply == [["inject"]]  # on disk before anything changed
    assert events(journal) == [("inject", fault.id), ("injected", fault.id), ("healed", fault.id)]
    record = journal.records()[0]
    assert record["kind"] == "test-flag" and record["undo"] == {"flag": str(flag)}
    assert journal.open_faults() == []


def test_heal_is_idempotent_and_inject_once(tmp_path: Path, journal: FaultJournal) -> None:
    fault = FlagFault(tmp_path / "f", journal=journal)
    fault.heal()  # never injected: nothing happens, nothing written
    assert journal.records() == []
    fault.inject()
    fault.heal()
    fault.heal()
    assert [e for e, _ in events(journal)].count("healed") == 1
    with pytest.raises(FaultError, match="already injected"):
        fault.inject()


def test_failed_apply_heals_what_was_half_done(tmp_path: Path, journal: FaultJournal) -> None:
    fault = FlagFault(tmp_path / "f", journal=journal)
    fault.fail_apply = True
    with pytest.raises(RuntimeError):
        fault.inject()
    assert not (tmp_path / "f").exists()
    assert journal.open_faults() == [] and live_faults() == []


def test_journal_sweep_heals_what_a_dead_process_left(
    tmp_path: Path, journal: FaultJournal
) -> None:
    flags = [tmp_path / f"f{i}" for i in range(3)]
    faults = [FlagFault(f, journal=journal).inject() for f in flags]
    faults[1].heal()
    # a crash between the inject record and applying: healing it must be harmless
    journal.append(
        "inject",
        "test-flag-crashed",
        kind="test-flag",
        target="x",
        params={},
        undo={"flag": str(tmp_path / "never")},
    )
    open_ids = [f.id for f in journal.open_faults()]
    assert open_ids == [faults[0].id, faults[2].id, "test-flag-crashed"]
    outcomes = heal_journal(journal)
    assert [o.id for o in outcomes] == list(reversed(open_ids))  # newest first
    assert all(o.healed for o in outcomes)
    assert not any(f.exists() for f in flags) and journal.open_faults() == []
    assert heal_journal(journal) == []  # idempotent: nothing left
    assert not any(f.active for f in faults) and live_faults() == []  # the objects know


def test_sweep_reports_unknown_kinds_and_failures_without_stopping(
    tmp_path: Path, journal: FaultJournal
) -> None:
    journal.append("inject", "x1", kind="no-such-kind", target="t", params={}, undo={})
    journal.append(
        "inject",
        "x2",
        kind="test-flag",
        target="t",
        params={},
        undo={"flag": str(tmp_path / "dir")},
    )
    (tmp_path / "dir").mkdir()  # unlink fails on a directory: this heal cannot succeed
    outcomes = heal_journal(journal, deadline_s=0.2)
    assert [(o.id, o.healed) for o in outcomes] == [("x2", False), ("x1", False)]
    assert "unknown fault kind" in outcomes[1].error
    assert {f.id for f in journal.open_faults()} == {"x1", "x2"}
    assert any(r["event"] == "heal_failed" for r in journal.records())


def test_heal_live_heals_newest_first(tmp_path: Path, journal: FaultJournal) -> None:
    order: list[str] = []

    class Ordered(FlagFault):
        @classmethod
        def heal_from(cls, undo: dict) -> None:
            order.append(Path(undo["flag"]).name)
            super().heal_from(undo)

    for name in ("a", "b", "c"):
        Ordered(tmp_path / name, journal=journal).inject()
    assert heal_live() == []
    assert order == ["c", "b", "a"] and live_faults() == []


def test_composite_heals_every_part_in_reverse(tmp_path: Path, journal: FaultJournal) -> None:
    parts = [
        FlagFault(tmp_path / "p1", journal=journal),
        FlagFault(tmp_path / "p2", journal=journal),
    ]
    with CompositeFault("both", parts, action="pair", journal=journal) as fault:
        assert (tmp_path / "p1").exists() and (tmp_path / "p2").exists()
        assert fault.name == "pair both"
    assert not (tmp_path / "p1").exists() and not (tmp_path / "p2").exists()
    assert len(journal.records()) == 3  # one fault, not three


def test_heal_error_names_the_journal(tmp_path: Path, journal: FaultJournal) -> None:
    fault = FlagFault(tmp_path / "d", journal=journal).inject()
    (tmp_path / "d").unlink()
    (tmp_path / "d").mkdir()
    with pytest.raises(HealError, match=r"splitbrain heal --journal .*faults.jsonl"):
        from harness.faults.fault import heal_with_retries

        heal_with_retries(FlagFault, fault.undo_record(), journal, fault.id, deadline_s=0.1)
    (tmp_path / "d").rmdir()
    fault.heal()


def test_torn_last_line_is_ignored_but_garbage_is_reported(journal: FaultJournal) -> None:
    journal.append("inject", "a", kind="test-flag", target="t", params={}, undo={})
    with journal.path.open("a") as f:
        f.write('{"event": "healed", "id": "a"')  # the crash cut this line short
    assert [f.id for f in journal.open_faults()] == ["a"]
    journal.path.write_text(json.dumps({"event": "inject", "id": "b"}) + "\nnot json\n")
    with pytest.raises(JournalError, match=r"faults.jsonl:2: not a JSON record"):
        journal.records()
