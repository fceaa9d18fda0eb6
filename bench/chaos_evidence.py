"""The chaos evidence phase on a recorded history: how long ``judge`` takes, and what it says.

A nightly's history holds about a million operations and each fault needs the
operations of its own window (latencies across a delayed link, I/O failed during a
disk fault, operations a crashed client abandoned, ...). This replays the
evidence phase of a recorded run offline: the history (``history.jsonl``, or the
``.jsonl.gz`` attachment), its ``schedule.json`` and its inventory, judged with no
live evidence (the live probe only runs during a run), so every fault is decided
from the history alone.

    A=/tmp/nightly42/attachments
    .venv/bin/python bench/chaos_evidence.py $A/nemesis-42-history.jsonl.gz \
        $A/nemesis-42-schedule.json $A/inventory-lab.toml --device HA2 \
        [--json OUT.json] [--write]

``--json`` writes every fault's evidence (proved, text) so two versions of the harness
can be compared on the same recorded run (run it with ``PYTHONPATH`` pointing at the
other version's tree); ``--write`` replaces this benchmark's section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recording import machine, write_section

HEADING = "## Chaos evidence phase on a recorded nightly (`bench/chaos_evidence.py`)"


def _plain(history: Path, scratch: Path) -> Path:
    """The history as plain JSON lines (the streamed reader seeks in it)."""
    if history.suffix != ".gz":
        return history
    out = scratch / history.name.removesuffix(".gz")
    with gzip.open(history, "rb") as src, out.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("history", type=Path)
    ap.add_argument("schedule", type=Path)
    ap.add_argument("inventory", type=Path)
    ap.add_argument("--device", required=True)
    ap.add_argument("--json", type=Path, help="write every fault's evidence here")
    ap.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = ap.parse_args()

    import harness
    from harness.chaos.evidence import judge
    from harness.faults.nemesis import Schedule
    from harness.lab.inventory import load
    from harness.workload.history_stream import StreamedHistory

    inventory = load(args.inventory)
    device = inventory.device(args.device)
    schedule = Schedule.from_json(json.loads(args.schedule.read_text()))
    named = [(f"{s.spec.action} {s.spec.target} [{i}]", s) for i, s in enumerate(schedule.steps)]
    with tempfile.TemporaryDirectory(prefix="chaos-evidence-") as tmp:
        path = _plain(args.history, Path(tmp))
        t0 = time.perf_counter()
        history = StreamedHistory(path)
        t1 = time.perf_counter()
        found = judge(named, history, {}, inventory, device)
        t2 = time.perf_counter()
    proved = sum(e.proved for e in found)
    print(f"harness from {Path(harness.__file__).parent}")
    print(f"outline {t1 - t0:.1f} s, judge {t2 - t1:.1f} s: {len(found)} faults judged, "
          f"{proved} proved from the history alone")
    if args.json:
        args.json.write_text(json.dumps(
            [{"fault": e.name, "proved": e.proved, "text": e.text} for e in found], indent=1)
            + "\n", encoding="utf-8")
    if args.write:
        write_section(HEADING, "\n".join([
            HEADING, "",
            f"Machine: {machine()}.", "",
            f"History `{args.history.name}` ({len(named)} scheduled faults), judged offline "
            "with no live evidence (every fault from the history alone):", "",
            "| step | seconds |", "|---|---|",
            f"| outline (faults, replica states, paths) | {t1 - t0:.1f} |",
            f"| `judge` ({len(found)} faults, {proved} proved) | {t2 - t1:.1f} |", ""]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
