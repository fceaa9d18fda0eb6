"""Result records round-trip through a results directory and refuse damage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.checks.results import (
    CheckResult,
    Evidence,
    ResultsDir,
    ResultsError,
    ResultWord,
    RunInfo,
    inventory_digest,
    worst,
)


def _record(**kw) -> CheckResult:
    base = dict(kind="validation", category="Storage", name="Validate Disk Arbitration",
                description="one node reserves, the other is refused",
                result=ResultWord.FAILED, reason="Demo2 could write while Demo1 held it")
    base.update(kw)
    return CheckResult(**base)


def test_record_and_run_round_trip(tmp_path: Path) -> None:
    rd = ResultsDir(tmp_path)
    att = rd.attach("history.jsonl.gz", b"\x1f\x8b data", "application/gzip")
    rec = _record(evidence=[Evidence("CDB", "5f 01 ...")], attachments=[att],
                  numbers={"max_ms": 3.5}, labels={"seed": "7"})
    rd.write(rec)
    rd.write_run(RunInfo(site="lab", command="splitbrain validate", started=1.0, seed=7))
    (got,) = rd.read_all()
    assert got == rec
    assert (tmp_path / att.path).read_bytes() == b"\x1f\x8b data"
    run = rd.read_run()
    assert run is not None and run.site == "lab" and run.seed == 7


def test_worst_orders_like_the_wizard() -> None:
    W = ResultWord
    assert worst([W.SUCCESS, W.WARNING, W.NOT_APPLICABLE]) is W.WARNING
    assert worst([W.CANCELED, W.FAILED]) is W.FAILED
    assert worst([W.SUCCESS, W.CANCELED]) is W.CANCELED
    assert worst([]) is W.NOT_APPLICABLE


def test_damaged_record_names_its_file(tmp_path: Path) -> None:
    rd = ResultsDir(tmp_path)
    p = rd.write(_record())
    p.write_text(p.read_text()[:40])
    with pytest.raises(ResultsError, match=p.name):
        rd.read_all()


def test_wrong_schema_and_bad_word_are_refused(tmp_path: Path) -> None:
    rd = ResultsDir(tmp_path)
    p = rd.write(_record())
    d = json.loads(p.read_text())
    d["result"] = "Passed"
    p.write_text(json.dumps(d))
    with pytest.raises(ResultsError, match="damaged"):
        rd.read_all()
    with pytest.raises(ResultsError, match="kind"):
        _record(kind="other")


def test_inventory_digest_is_sha256_of_the_file(tmp_path: Path) -> None:
    f = tmp_path / "site.toml"
    f.write_text("[site]\nname='x'\n")
    assert inventory_digest(f) == inventory_digest(f)
    f.write_text("[site]\nname='y'\n")
    assert inventory_digest(f).startswith("sha256:") and len(inventory_digest(f)) == 71
