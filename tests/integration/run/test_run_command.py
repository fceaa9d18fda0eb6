"""``splitbrain run`` end to end on the bundled lab: a short clean run passes and leaves
nothing behind; a replica corrupted behind the harness's back fails the run and is named;
SIGTERM mid-run heals and takes the lab down; a seed reproduces its fault schedule."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.chaos.runner import RunSettings, plan
from harness.chaos.schedule import FAULT_KINDS
from harness.cli.lab_command import lab_inventory
from harness.faults.journal import FaultJournal
from harness.lab.inventory import load
from harness.lab.loopback import LoopbackLab

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

REPO = Path(__file__).resolve().parents[3]


def splitbrain_run(cwd: Path, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", "run", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that name ``text`` (a lab's state directory)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(f"{pid}: {cmdline.decode(errors='replace')}")
    return found


def faults_in(history: Path) -> list[dict]:
    return [r for r in map(json.loads, history.read_text().splitlines()) if r["type"] == "fault"]


def test_a_seed_reproduces_its_fault_schedule() -> None:
    def schedule(seed: int, duration_s: float = 20.0) -> dict:
        return plan(load(lab_inventory()), RunSettings(seed, duration_s))[1].to_json()

    first = schedule(1234)
    assert first == schedule(1234)
    assert first["seed"] == 1234
    assert any(schedule(s)["steps"] != first["steps"] for s in (1, 2, 3))
    # a 20 s run deals every kind before any repeats: each HA pair fault shows up
    actions = {step["action"] for step in first["steps"]}
    assert actions == {"cut", "blackhole", "kill"}, first
    steps = first["steps"]
    for before, after in itertools.pairwise(steps):  # one at a time
        assert before["at_s"] + before["duration_s"] < after["at_s"]
    assert steps[-1]["at_s"] + steps[-1]["duration_s"] <= 20.0 - 0.5
    kill = next(s for s in steps if s["action"] == "kill")
    assert kill["target"] == "SWS-Store2"  # the secondary (priority 2) replica's node
    assert set(FAULT_KINDS) == {"path-cut", "sync-blackhole", "secondary-kill"}


def test_a_short_run_passes_and_leaves_no_process_or_fault_behind(tmp_path: Path) -> None:
    lab_dir, out = tmp_path / "lab", tmp_path / "out"
    done = splitbrain_run(tmp_path, "--seed", "5", "--duration", "5", "--max-faults", "2",
                          "--faults", "path-cut,sync-blackhole", "--state-dir", str(lab_dir),
                          "--output", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lab: started" in done.stdout and "RESULT     ok" in done.stdout
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["valid"] is True and verdict["problems"] == []
    checkers = {v["checker"] for v in verdict["verdicts"]}
    assert {"register", "timing", "integrity", "divergence", "run"} <= checkers
    integrity = next(v for v in verdict["verdicts"] if v["checker"] == "integrity")
    assert len(integrity["stats"]["devices"]) == 4  # read back through every path
    # both scheduled faults were injected and healed, and recorded in the history
    records = faults_in(out / "history.jsonl")
    starts = [r for r in records if r["f"] == "start"]
    assert len(starts) == 2 and len([r for r in records if r["f"] == "stop"]) == 2
    assert {r["kind"] for r in starts} == {"path-cut", "sync-blackhole"}
    assert FaultJournal(out / "faults.jsonl").open_faults() == []
    assert (out / "summary.txt").read_text().rstrip().splitlines()[-2].startswith("RESULT     ok")
    assert (out / "timeline.png").stat().st_size > 0 and (out / "timeline.svg").exists()
    # the lab this run started is gone: no state, no process
    assert not lab_dir.exists()
    assert processes_mentioning(str(lab_dir)) == []


@pytest.fixture
def running_lab(tmp_path: Path) -> Iterator[LoopbackLab]:
    lab = LoopbackLab(tmp_path / "lab")
    lab.up(load(lab_inventory()))
    try:
        yield lab
    finally:
        lab.down()


def test_a_replica_corrupted_behind_the_harness_fails_the_run(
    tmp_path: Path, running_lab: LoopbackLab
) -> None:
    image = running_lab.state.node_dir("SWS-Store2") / "data" / "HA2Partner.img"
    offset = 8 << 20
    with open(image, "r+b") as f:  # the secondary's disk rots under the target
        f.seek(offset)
        f.write(os.urandom(4096))
        f.flush()
        os.fsync(f.fileno())
    out = tmp_path / "out"
    done = splitbrain_run(tmp_path, "--seed", "9", "--duration", "2", "--faults", "none",
                          "--state-dir", str(running_lab.state.root), "--output", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "lab: reusing the lab already up" in done.stdout
    problem_lines = [line for line in done.stdout.splitlines() if line.startswith("PROBLEM")]
    assert problem_lines and any("divergence: diverged: replicas diverged" in line
                                 for line in problem_lines), done.stdout
    assert "RESULT     FAILED" in done.stdout
    verdict = json.loads((out / "verdict.json").read_text())
    diverged = [p for p in verdict["problems"] if p["kind"] == "diverged"]
    assert [(p["offset"], p["length"]) for p in diverged] == [(offset, 4096)]
    assert running_lab.running()  # a reused lab is left up


def start_run_and_wait_for_a_fault(tmp_path: Path, lab_dir: Path, out: Path
                                   ) -> subprocess.Popen:
    """A long run in the background, returned once its first fault is in place."""
    from tenacity import Retrying, stop_after_delay, wait_fixed

    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--seed", "5", "--duration", "30",
         "--faults", "sync-blackhole", "--state-dir", str(lab_dir), "--output", str(out)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        for attempt in Retrying(stop=stop_after_delay(60), wait=wait_fixed(0.2), reraise=True):
            with attempt:
                history = out / "history.jsonl"
                assert history.exists() and any(r["f"] == "start" for r in faults_in(history))
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return proc


def test_sigterm_mid_run_heals_and_takes_the_lab_down(tmp_path: Path) -> None:
    lab_dir, out = tmp_path / "lab", tmp_path / "out"
    proc = start_run_and_wait_for_a_fault(tmp_path, lab_dir, out)
    try:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, stdout + stderr
    assert "interrupted by SIGTERM" in stderr
    assert FaultJournal(out / "faults.jsonl").open_faults() == []
    assert not lab_dir.exists()
    assert processes_mentioning(str(lab_dir)) == []


def test_the_next_run_heals_and_takes_over_the_lab_of_a_killed_run(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    proc = start_run_and_wait_for_a_fault(tmp_path, lab_dir, tmp_path / "killed")
    proc.kill()  # SIGKILL: no teardown; the sync channel stays black-holed
    proc.communicate()
    try:
        journal = FaultJournal(lab_dir / "faults.jsonl")
        assert [f.target for f in journal.open_faults()] == ["sync/SWS-Store1/HA2"]
        out = tmp_path / "next"
        done = splitbrain_run(tmp_path, "--seed", "6", "--duration", "2", "--faults", "none",
                              "--state-dir", str(lab_dir), "--output", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "lab: taking over the lab" in done.stdout
        assert "healed 1 fault(s) left open" in done.stdout
        assert FaultJournal(out / "faults.jsonl").open_faults() == []
        assert not lab_dir.exists()  # taken over, so taken down
        assert processes_mentioning(str(lab_dir)) == []
    finally:
        if lab_dir.exists():
            LoopbackLab(lab_dir).down()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--inventory", str(REPO / "fixtures/inventories/example-site.toml")], "no [lab] table"),
        (["--faults", "path-cut,meteor"], "unknown fault kind meteor"),
        (["--duration", "0"], "--duration 0 must be positive"),
        (["--device", "HA9"], "no HA device 'HA9'"),
    ],
)
def test_bad_options_are_refused_in_one_line_before_any_lab_starts(
    tmp_path: Path, args: list[str], says: str
) -> None:
    lab_dir = tmp_path / "lab"
    done = splitbrain_run(tmp_path, "--state-dir", str(lab_dir), *args, timeout=60)
    assert done.returncode != 0
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and says in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not lab_dir.exists()
