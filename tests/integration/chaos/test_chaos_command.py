"""``splitbrain chaos`` end to end on the lab: the smoke profile runs every scenario once and
each writes its result; bad input is refused in one line before any lab starts; the nightly
replays its schedule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from harness.chaos.scenarios import SCENARIOS
from harness.checks.results import ResultsDir, ResultWord

REPO = Path(__file__).resolve().parents[3]

# Scenarios that find a defect of the bundled HA device that is not fixed yet (docs/chaos.md):
# they must fail with this diagnosis until the fix lands, then pass. Empty this as fixes land.
KNOWN_DEFECTS: dict[str, tuple[str, ...]] = {}

# Availability findings: the device stalled, answered an error or resynchronized late, but
# lost nothing. The lab device still shows some of these intermittently (docs/chaos.md, open
# findings: a 58 s stall after a sync black hole, seed 7, once in three runs). In this test
# they are reported as warnings, not failures: the test proves the harness (every scenario
# run, its fault proved, its record complete), and a data problem still fails it.
# Scenarios whose availability finding the device has fixed: strict again, any problem fails
# (disk-eio-secondary: a read on the failing disk once returned MEDIUM ERROR to the caller).
STRICT = {"disk-eio-secondary"}
AVAILABILITY = {"over_budget", "not_synchronized", "not_resynchronized", "path_not_restored",
                "path_unusable", "no_recovery", "timing_disagrees"}


def problem_kinds(out: Path, record) -> set[str]:  # type: ignore[no-untyped-def]
    """Every checker's problem kinds of one scenario, from its attached verdict.json."""
    (verdict,) = [a for a in record.attachments if a.name.endswith("verdict.json")]
    data = json.loads((out / verdict.path).read_text())
    return {p["kind"] for v in data.get("verdicts", []) for p in v.get("problems", [])}


def splitbrain(cwd: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    """Run ``splitbrain chaos``; if it overruns, its lab (own sessions) is taken down too."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        return subprocess.run([sys.executable, "-m", "harness", "chaos", *args], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        if "--state-dir" in args:
            lab = args[args.index("--state-dir") + 1]
            if Path(lab).exists():  # the killed run's nodes and proxy outlive it
                subprocess.run([sys.executable, "-m", "harness", "lab", "down",
                                "--state-dir", lab], cwd=cwd, env=env, timeout=120,
                               capture_output=True)
        raise


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_smoke_profile_runs_every_scenario_once_and_records_each(tmp_path: Path) -> None:
    out, lab = tmp_path / "results", tmp_path / "lab"
    done = splitbrain(tmp_path, "--profile", "smoke", "--seed", "7", "--state-dir", str(lab),
                      "--output", str(out), timeout=1780)
    records = {r.name: r for r in ResultsDir(out).read_all()}
    assert set(records) == {s.name for s in SCENARIOS}, done.stdout + done.stderr
    unexpected = []
    for name, r in records.items():
        assert r.kind == "chaos" and r.category == "Chaos" and r.labels["seed"] == "7"
        if r.result is ResultWord.NOT_APPLICABLE:
            assert "needs" in r.reason  # the lab has no device for it
            continue
        assert any(a.media_type == "image/png" for a in r.attachments), name
        assert any("history.jsonl" in a.name for a in r.attachments), name
        assert "failed injection" not in r.reason and "steady state" not in r.reason, r.reason
        if name in KNOWN_DEFECTS and r.result is ResultWord.FAILED:
            assert any(d in r.reason for d in KNOWN_DEFECTS[name]), r.reason
        elif r.result is ResultWord.FAILED:
            kinds = problem_kinds(out, r)
            if kinds and kinds <= AVAILABILITY and name not in STRICT:
                warnings.warn(f"chaos smoke, device availability finding: {name}: {r.reason}",
                              stacklevel=1)
            else:
                unexpected.append(f"{name}: {r.reason} ({', '.join(sorted(kinds))})")
    assert not unexpected, "\n".join(unexpected)
    failed = any(r.result is ResultWord.FAILED for r in records.values())
    assert done.returncode == (1 if failed else 0), done.stdout + done.stderr
    assert (out / "run.json").exists() and not lab.exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--scenario", "meteor-strike"], "unknown scenario 'meteor-strike'"),
        (["--profile", "nightly", "--duration", "0"], "--duration 0 must be positive"),
        (["--replay", "garbage.json"], "cannot read a schedule"),
        (["--replay", "bad-schedule.json"], "not a fault schedule"),
        (["--scenario", "split-brain-node-majority"], "needs an HA pair with strategy"),
        (["--inventory", str(REPO / "fixtures/inventories/example-site.toml")],
         "is not destructive = true"),
        (["--shrink", "no-such-run"], "is not a chaos run directory"),
    ],
)
def test_bad_input_is_refused_in_one_line_before_anything_starts(
    tmp_path: Path, args: list[str], says: str
) -> None:
    (tmp_path / "garbage.json").write_text("{not json")
    (tmp_path / "bad-schedule.json").write_text(json.dumps({"steps": [{"at_s": "soon"}]}))
    lab = tmp_path / "lab"
    done = splitbrain(tmp_path, "--state-dir", str(lab), "--output", str(tmp_path / "o"),
                      *args, timeout=60)
    assert done.returncode != 0
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and says in errors[0], done.stderr
    assert not lab.exists() and not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_nightly_prints_saves_and_replays_its_schedule(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    first = splitbrain(tmp_path, "--profile", "nightly", "--duration", "12", "--seed", "11",
                       "--state-dir", str(lab), "--output", str(tmp_path / "a"), timeout=500)
    saved = tmp_path / "a" / "runs" / "nemesis" / "schedule.json"
    schedule = json.loads(saved.read_text())
    assert schedule["seed"] == 11 and len(schedule["steps"]) >= 2, first.stdout
    assert "fault plan: at" in first.stdout  # printed
    records = ResultsDir(tmp_path / "a").read_all()
    assert [r.name for r in records] == ["nemesis"] and records[0].labels["seed"] == "11"
    again = splitbrain(tmp_path, "--replay", str(saved), "--duration", "12", "--seed", "11",
                       "--state-dir", str(lab), "--output", str(tmp_path / "b"), timeout=500)
    replayed = json.loads((tmp_path / "b" / "runs" / "nemesis" / "schedule.json").read_text())
    assert replayed == schedule, again.stdout + again.stderr
    assert not lab.exists()
