"""``splitbrain validate``: tables per category, the wizard's closing words, JSON results,
the exit code (non-zero on any Failed), and a bad option refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.checks.results import ResultsDir

pytestmark = pytest.mark.slow


def splitbrain(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "validate", *args],
                          capture_output=True, text=True, timeout=240,
                          env={**os.environ, **(env or {})})


def test_validate_the_lab_it_starts(tmp_path: Path):
    done = splitbrain("--include", "Storage,HA Storage", "--results", str(tmp_path / "r"),
                      env={"SPLITBRAIN_LAB_DIR": str(tmp_path / "lab")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\nStorage\n" in done.stdout and "\nHA Storage\n" in done.stdout
    assert "Validate SCSI-3 Persistent Reservation  " in done.stdout
    assert done.stdout.rstrip().endswith("Validation passed [Test Result: HadUnselectedTests]")
    records = ResultsDir(tmp_path / "r").read_all()
    assert len(records) == 18 and {r.result.value for r in records} == {"Success"}
    assert ResultsDir(tmp_path / "r").read_run().site == "lab"
    assert not (tmp_path / "lab").exists()  # the lab it started is down again


def test_json_and_a_failed_check_exit_non_zero(tgtd_target, tmp_path: Path):
    from tests.integration.validation.tgtd_site import tgtd_inventory

    inventory = tgtd_inventory(tmp_path / "tgtd.toml", tgtd_target)
    done = splitbrain("--inventory", str(inventory), "--json", "--include", "HA Storage",
                      "--results", str(tmp_path / "r"))
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["summary"].startswith("Validation failed")
    placement = next(r for r in doc["results"] if r["name"] == "Validate HA Replica Placement")
    assert placement["result"] == "Failed" and "single replica" in placement["reason"]


def test_an_unknown_test_name_is_refused_in_one_line():
    done = splitbrain("--include", "List Disk")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "no validation test or category named 'List Disk'" in done.stderr
