"""Benchmark: the harness's initiator (``Session``) against libiscsi's iscsi-perf, on tgtd.

One tgtd target with a 64 MiB LUN on loopback. The load is 4 KiB random reads at
queue depth 32 for ``--seconds`` per round: 32 coroutines each looping
``Session.read(lba, 8)`` on one session (uvloop when installed), and
``iscsi-perf -r -m 32 -b 8`` against the same LUN. Rounds alternate (ours,
iscsi-perf, ours, ...) so a noisy neighbour on the shared cores hits both alike;
the median of the rounds is reported with the ratio initiator/iscsi-perf (goal:
>= 0.5). ``--profile FILE`` runs one extra initiator round under pyinstrument
and writes its HTML report.

    .venv/bin/python bench/initiator_vs_iscsi_perf.py [--rounds 3] [--seconds 10] [--write]

``--write`` replaces this benchmark's section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fixtures.tgtd import TgtdTarget, start_tgtd  # noqa: E402
from harness.initiator.session import Session  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Initiator vs iscsi-perf on tgtd (`bench/initiator_vs_iscsi_perf.py`)"
_AVERAGE = re.compile(r"iops average (\d+)")
DEPTH, BLOCKS = 32, 8


def event_loop_runner() -> tuple[str, Callable[[Any], Any]]:
    try:
        import uvloop
    except ImportError:
        return "asyncio", asyncio.run
    return f"uvloop {uvloop.__version__}", uvloop.run


def iscsi_perf(url: str, seconds: int) -> int:
    """Average IOPS of one iscsi-perf random-read run."""
    proc = subprocess.run(
        ["iscsi-perf", "-i", "iqn.2026-11.org.splitbrain.bench:iscsi-perf", "-m", str(DEPTH),
         "-b", str(BLOCKS), "-r", "-t", str(seconds), url],
        capture_output=True, text=True, timeout=seconds + 60, check=False)
    found = _AVERAGE.findall(proc.stdout)
    if not found:
        raise RuntimeError(f"iscsi-perf against {url} printed no average: "
                           f"{(proc.stdout + proc.stderr)[-400:]}")
    return int(found[-1])


async def initiator_round(target: TgtdTarget, seconds: float, seed: int) -> int:
    """IOPS of 4 KiB random reads at queue depth 32 through one Session."""
    async with Session(target.host, target.port, target.iqn, lun=target.lun,
                       initiator_name="iqn.2026-11.org.splitbrain.bench:initiator") as session:
        capacity = await session.read_capacity()
        slots = capacity.num_blocks // BLOCKS
        done = 0
        stop_at = time.monotonic_ns() + int(seconds * 1e9)

        async def worker(rng: random.Random) -> None:
            nonlocal done
            read, randbelow, clock = session.read, rng.randrange, time.monotonic_ns
            while clock() < stop_at:
                await read(randbelow(slots) * BLOCKS, BLOCKS)
                done += 1

        start = time.monotonic_ns()
        await asyncio.gather(*(worker(random.Random(seed + i)) for i in range(DEPTH)))
        elapsed = time.monotonic_ns() - start
    return round(done * 1e9 / elapsed)


def machine() -> str:
    load = os.getloadavg()[0]
    return (f"{platform.node()}: {os.cpu_count()} cores ({platform.machine()}), Linux "
            f"{platform.release()}, Python {platform.python_version()}, load average "
            f"{load:.1f} at the start (the cores are shared with other work)")


def measure(rounds: int, seconds: int, profile: Path | None) -> dict[str, list[int]]:
    loop_name, runner = event_loop_runner()
    results: dict[str, list[int]] = {"initiator": [], "iscsi-perf": [], "loop": [loop_name]}  # type: ignore[dict-item]
    daemon = start_tgtd()
    try:
        target = daemon.new_target(name="bench")
        for index in range(rounds):
            results["initiator"].append(runner(initiator_round(target, seconds, index * 97)))
            results["iscsi-perf"].append(iscsi_perf(target.url(), seconds))
            print(f"round {index + 1}: initiator {results['initiator'][-1]} IOPS, "
                  f"iscsi-perf {results['iscsi-perf'][-1]} IOPS", flush=True)
        if profile is not None:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
            runner(initiator_round(target, seconds, 1))
            profiler.stop()
            profile.write_text(profiler.output_html())
            print(profiler.output_text(unicode=False, color=False, show_all=False)[:6000])
    finally:
        daemon.stop()
    return results


def section(results: dict[str, list[Any]], seconds: int, setting: str) -> str:
    ours = statistics.median(results["initiator"])
    theirs = statistics.median(results["iscsi-perf"])
    return "\n".join([
        SECTION, "",
        "Goal (issue 2): the harness's initiator drives at least 0.5x the IOPS of libiscsi's "
        "iscsi-perf. 4 KiB random reads, queue depth 32, one 64 MiB file-backed tgtd LUN on "
        f"loopback, {len(results['initiator'])} alternating rounds of {seconds} s; median IOPS.",
        f"Measured {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on {setting}.", "",
        "| initiator | IOPS (median) | rounds |", "|---|---|---|",
        f"| harness `Session.read` ({results['loop'][0]}, 32 coroutines, one session) | "
        f"{ours:.0f} | {', '.join(map(str, results['initiator']))} |",
        f"| libiscsi iscsi-perf 0.1 (`-r -m 32 -b 8`) | {theirs:.0f} | "
        f"{', '.join(map(str, results['iscsi-perf']))} |",
        "", f"Ratio initiator / iscsi-perf: **{ours / theirs:.2f}** (goal >= 0.5).", "",
        "Both initiators share the two cores with tgtd, which is single-threaded for one "
        "session, so the ceiling is tgtd's; the initiator's own cost per command is what the "
        "pyinstrument profile (`--profile out.html`) shows. Reproduce: "
        "`.venv/bin/python bench/initiator_vs_iscsi_perf.py --rounds 3 --seconds 10`.", "",
    ])


def write_section(text: str) -> None:
    current = RESULTS.read_text() if RESULTS.exists() else ""
    if SECTION in current:
        head, _, rest = current.partition(SECTION)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1 :] if nxt >= 0 else ""
        current = head + text + ("\n" + tail if tail else "")
    else:
        current = current.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(current)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--profile", type=Path, help="also profile one initiator round (HTML)")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    missing = [t for t in ("iscsi-perf", "tgtd", "tgtadm") if shutil.which(t) is None]
    if missing:
        print(f"needs {', '.join(missing)}: install Debian packages libiscsi-bin and tgt",
              file=sys.stderr)
        return 2
    setting = machine()
    results = measure(args.rounds, args.seconds, args.profile)
    text = section(results, args.seconds, setting)
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
