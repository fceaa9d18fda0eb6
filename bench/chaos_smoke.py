"""Wall time of ``splitbrain chaos --profile smoke`` on the bundled lab (issue 10's goal:
under 5 minutes on a fresh clone), per scenario and per phase, with the machine's load;
writes its section of bench/RESULTS.md.

Each scenario's verdict.json holds the wall seconds of its phases (``phases_s``: MPIO
login, steady state, workload, settle, checks, evidence...); the bench adds them up over
the run, so a change that moves time from one phase to another shows where it went. The
record (timeline plot, attachments) is written in a worker process while the next
scenario runs, so it is not a phase of its own; what is left of the wall time (lab
bring-up and teardown, the last records) is "outside scenarios".

Reproduce: ``.venv/bin/python bench/chaos_smoke.py [--seed N] [--label TEXT]`` (one full
smoke run: a few minutes; the lab is started and taken down by the command itself).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recording import cpu_s, machine, write_section

HEADING = "## Chaos smoke profile wall time (`bench/chaos_smoke.py`)"
REPO = Path(__file__).resolve().parents[1]
# the same bench before the cuts (commit 03252ae), for comparison
BEFORE = ("Before (03252ae): 306 s on a quiet machine, 503 s at load 10.7 (seed 3). Per "
          "scenario then: the paths read the whole 256 MiB device back (7-9 s), the timeline "
          "plot ran between scenarios (3-7 s), and the two split-brain scenarios waited out "
          "their deadlines for paths and resync that a held split brain never brings (about "
          "25 s each).")


def phases_of(out: Path) -> dict[str, dict[str, float]]:
    """scenario -> phase -> seconds, from each run's verdict.json."""
    found = {}
    for verdict in sorted((out / "runs").glob("*/verdict.json")):
        run = json.loads(verdict.read_text()).get("run", {})
        found[verdict.parent.name] = {k: float(v) for k, v in
                                      (run.get("phases_s") or {}).items()}
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--label", default="", help="what this run measures (e.g. a commit)")
    args = ap.parse_args()
    where = machine()
    with tempfile.TemporaryDirectory(prefix="chaos-smoke-bench-") as tmp:
        out = Path(tmp) / "results"
        t0, c0 = time.monotonic(), cpu_s()
        done = subprocess.run(
            [sys.executable, "-m", "harness", "chaos", "--profile", "smoke", "--seed",
             str(args.seed), "--state-dir", str(Path(tmp) / "lab"), "--output", str(out)],
            cwd=REPO, capture_output=True, text=True, check=False,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        wall, cpu = time.monotonic() - t0, cpu_s() - c0
        rows = []
        for rec in sorted((out / "results").glob("*.json")):
            r = json.loads(rec.read_text())
            rows.append((r["name"], r["labels"].get("family", ""), r["result"]))
        phases = phases_of(out)
    load_end = os.getloadavg()[0]
    total: dict[str, float] = defaultdict(float)
    for per in phases.values():
        for k, v in per.items():
            total[k] += v
    in_scenarios = sum(total.values())
    lines = [HEADING, "",
             f"Goal (issue 10): the smoke profile on the lab under 5 minutes on a fresh "
             f"clone. {where}; load average {load_end:.1f} at the end.", "",
             f"One run, seed {args.seed}{f' ({args.label})' if args.label else ''}: "
             f"**{wall:.0f} s wall** for {len(rows)} scenarios (exit {done.returncode}), "
             f"{cpu:.0f} CPU s in the command and its lab processes.", "",
             "Where the time went, added up over the scenarios (wall seconds):", "",
             "| phase | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in sorted(total.items(), key=lambda kv: -kv[1])
              if v >= 0.05]
    lines += [f"| outside scenarios (lab up and down, last records) | "
              f"{max(0.0, wall - in_scenarios):.1f} |", "",
              "| scenario | family | result | seconds | longest phases |", "|---|---|---|---|---|"]
    for name, family, word in rows:
        per = phases.get(name, {})
        top = sorted(per.items(), key=lambda kv: -kv[1])[:3]
        lines.append(f"| {name} | {family} | {word} | {sum(per.values()):.0f} | "
                     + ", ".join(f"{k} {v:.1f}" for k, v in top if v >= 0.05) + " |")
    lines += ["", BEFORE, "", "Reproduce: `.venv/bin/python bench/chaos_smoke.py --seed 3`."]
    write_section(HEADING, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
