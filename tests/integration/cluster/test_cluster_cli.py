"""``splitbrain cluster``: refuses what it cannot do in one line before touching anything, and
runs the live-migration family on a lab of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def splitbrain(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "cluster", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args,words", [
    (("move", "vm1", "Demo2"), "the lab's VMs live only inside a run"),
    (("live-migration", "--scenario", "nope"), "no live-migration scenario nope; scenarios: "),
    (("live-migration", "--moves", "0"), "at least one migration"),
])
def test_what_cannot_run_is_refused_in_one_line(args: tuple[str, ...], words: str,
                                                tmp_path: Path) -> None:
    done = splitbrain("--state-dir", str(tmp_path / "lab"), *args)
    assert done.returncode == 1 and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "lab").exists()  # no lab was started


@pytest.mark.slow
def test_live_migration_on_a_lab_of_its_own(tmp_path: Path) -> None:
    done = splitbrain("--state-dir", str(tmp_path / "lab"), "live-migration", "--scenario",
                      "alone", "--moves", "2", "--output", str(tmp_path / "results"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "live migration: alone: Success" in done.stdout
    records = list((tmp_path / "results" / "results").glob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["labels"]["family"] == "live-migration" and record["numbers"]["live"] == 2
    assert not (tmp_path / "lab").exists()  # the lab it started is down again
