"""Scenario records written by a worker process while the next scenario runs: every record
lands, in order, with its attachments, also when no worker can be started."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.checks.results import CheckResult, ResultsDir, ResultWord
from harness.report import scenario_record
from harness.report.scenario_record import BackgroundRecorder


def scenario_run(tmp_path: Path, name: str) -> tuple[CheckResult, Path]:
    out = tmp_path / "runs" / name
    out.mkdir(parents=True)
    (out / "schedule.json").write_text(json.dumps({"seed": 7, "steps": []}))
    (out / "verdict.json").write_text(json.dumps({"valid": True}))
    result = CheckResult(kind="chaos", category="Chaos", name=name, description="d",
                         result=ResultWord.SUCCESS, labels={"seed": "7", "family": "mpio"})
    return result, out


def written(results: ResultsDir) -> dict[str, list[str]]:
    return {r.name: sorted(a.name for a in r.attachments) for r in results.read_all()}


def test_the_worker_writes_every_record_with_its_attachments(tmp_path: Path) -> None:
    results = ResultsDir(tmp_path / "results")
    recorder = BackgroundRecorder()
    for name in ("one", "two"):
        result, out = scenario_run(tmp_path, name)
        recorder.submit(results, result, out)
    assert recorder._pool is not None  # a worker process took them
    paths = recorder.finish()
    assert recorder._pool is None  # and is gone afterwards
    assert len(paths) == 2 and all(p.exists() for p in paths)  # one per record, in order
    assert ["-one-" in p.name for p in paths] == [True, False]
    assert written(results) == {n: [f"{n}-7-schedule.json", f"{n}-7-verdict.json"]
                                for n in ("one", "two")}


def test_without_a_worker_the_records_are_written_here(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def no_worker(*args: object, **kwargs: object) -> None:
        raise OSError("no process for you")

    monkeypatch.setattr(scenario_record, "ProcessPoolExecutor", no_worker)
    results = ResultsDir(tmp_path / "results")
    recorder = BackgroundRecorder()
    result, out = scenario_run(tmp_path, "alone")
    recorder.submit(results, result, out)
    assert len(recorder.finish()) == 1
    assert written(results) == {"alone": ["alone-7-schedule.json", "alone-7-verdict.json"]}
