"""Wall time of ``splitbrain chaos --profile smoke`` on the bundled lab (issue 10's goal:
well under 5 minutes on a fresh clone), per scenario and in total, with the machine's
load; writes its section of bench/RESULTS.md.

Reproduce: ``.venv/bin/python bench/chaos_smoke.py [--seed N]`` (one full smoke run: a
few minutes; the lab is started and taken down by the command itself).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recording import cpu_s, machine, write_section

HEADING = "## Chaos smoke profile wall time (`bench/chaos_smoke.py`)"
REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=3)
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
            rows.append((r["name"], r["labels"].get("family", ""), r["result"],
                         float(r["numbers"].get("elapsed_s", 0.0))))
    load_end = os.getloadavg()[0]
    lines = [HEADING, "",
             f"Goal (issue 10): the smoke profile on the lab well under 5 minutes on a fresh "
             f"clone. {where}; load average {load_end:.1f} at the end.", "",
             f"One run, seed {args.seed}: **{wall:.0f} s wall** for {len(rows)} scenarios "
             f"(exit {done.returncode}), {cpu:.0f} CPU s in the command and its lab "
             "processes.", "",
             "| scenario | family | result | seconds |", "|---|---|---|---|"]
    lines += [f"| {n} | {f} | {w} | {s:.0f} |" for n, f, w, s in rows]
    lines += ["", "Reproduce: `.venv/bin/python bench/chaos_smoke.py --seed 3`."]
    write_section(HEADING, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
