"""The conformance floor a libiscsi run is held to (suites/protocol/libiscsi.py)."""

from __future__ import annotations

import json
from pathlib import Path

from suites.protocol.libiscsi import SuiteRun


def floor(tmp_path: Path, passed: int, tests: list[str]) -> Path:
    path = tmp_path / "floor.json"
    path.write_text(json.dumps({"passed": passed, "tests": tests}), encoding="utf-8")
    return path


def suite_run(**outcomes: str) -> SuiteRun:
    return SuiteRun(url="iscsi://127.0.0.1/t/0", outcomes=outcomes, seconds=1.0, returncode=0)


def test_a_run_at_the_floor_falls_short_of_nothing(tmp_path: Path) -> None:
    run = suite_run(a="passed", b="passed", c="failed", d="skipped")
    assert run.short_of_floor(floor(tmp_path, 2, ["a", "b"])) == ""


def test_a_test_that_never_reported_is_named(tmp_path: Path) -> None:
    run = suite_run(a="passed", b="passed", c="missing")
    assert run.short_of_floor(floor(tmp_path, 2, ["a", "b"])) == (
        "tests that never reported (hang or crash): ['c']")


def test_a_pass_count_below_the_floor_names_the_tests_no_longer_passing(tmp_path: Path) -> None:
    run = suite_run(a="passed", b="failed")
    assert run.short_of_floor(floor(tmp_path, 2, ["a", "b"])) == (
        "1 tests passed, the floor is 2; no longer passing: ['b']")
