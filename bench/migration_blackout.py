"""Live migration blackout and total time vs memory size, dirty rate and pass limit.

Two parts:

- *pre-copy on the wire* (``harness.cluster.migration`` in one process, no
  storage): a guest of M MiB dirtying D pages/s migrates over a link capped at
  ``--link-mib`` MiB/s (the copy rate, in pages/s = link / 4 KiB), with a pass
  limit P. Blackout is pause to resume: the last dirty pages and the digest
  check; it grows as D approaches the copy rate, because each pass then leaves
  almost as many pages dirty as it copied and the pass limit ends pre-copy with
  a large remainder;
- *the lab cluster* (full stack): a VM with its stamped workload live-migrates
  between Demo1 and Demo2 of the loopback lab, plus one quick migration; here
  the blackout also holds the drain of the VM's I/O in flight and the resume on
  the destination's storage sessions.

``--write`` replaces this benchmark's section of bench/RESULTS.md. Short runs
(about a minute in all).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.recording import machine, write_section
from harness.cluster.memory import GuestMemory
from harness.cluster.migration import MigrationReport, migrate_in, migrate_out

HEADING = "## Live migration blackout vs memory, dirty rate and pass limit " \
          "(`bench/migration_blackout.py`)"
MIB = 1 << 20


async def wire_run(memory_mib: int, dirty_rate: float, pass_limit: int,
                   link_bps: float) -> MigrationReport:
    src, dst = GuestMemory(memory_mib * MIB, dirty_rate=dirty_rate), GuestMemory(memory_mib * MIB)

    async def resume(state: dict[str, Any]) -> dict[str, Any]:
        return {"resume_ns": time.monotonic_ns()}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await migrate_in(reader, writer, dst, accept=lambda h: None, resume=resume)
        writer.close()

    async def pause() -> dict[str, Any]:
        await src.pause_guest()
        return {"pause_ns": time.monotonic_ns()}

    async def resume_here() -> None:
        src.run_guest()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    src.run_guest()
    report = MigrationReport("bench", "live", "a", "b", time.monotonic_ns(), 0, 0, 0,
                             memory_bytes=src.size)
    try:
        await migrate_out(src, ("127.0.0.1", server.sockets[0].getsockname()[1]), hello={},
                          pause_vm=pause, resume_here=resume_here, pass_limit=pass_limit,
                          stop_pages=64, link_rate_bps=link_bps, report=report)
    finally:
        server.close()
        await src.pause_guest()
    report.finished_ns = time.monotonic_ns()
    assert dst.data == src.data
    return report


def wire_row(r: MigrationReport, dirty: float, limit: int, copy_pages_s: float) -> str:
    return (f"| {r.memory_bytes // MIB} | {dirty:.0f} ({dirty / copy_pages_s:.0%}) | {limit} | "
            f"{len(r.passes)} | {r.final_pages} | {r.blackout_s * 1e3:.1f} | {r.total_s:.2f} |")


def lab_part(moves: int) -> list[str]:
    from fixtures.settings import LAB_INVENTORY
    from fixtures.sut import SystemUnderTest
    from harness.cluster.lab_cluster import LabCluster, VmSpec
    from harness.lab.inventory import load
    from harness.lab.loopback import LoopbackLab

    rows = []
    with tempfile.TemporaryDirectory(prefix="migration-bench-") as work:
        inventory = load(LAB_INVENTORY)
        lab = LoopbackLab(Path(work) / "lab")
        lab.up(inventory)
        try:
            cluster = LabCluster(SystemUnderTest(inventory, lab), Path(work) / "cluster")
            cluster.start()
            try:
                cluster.add_vm(VmSpec("bench", memory_mib=32, dirty_rate=2000,
                                      workload={"writers": 2, "queue_depth": 2, "rate": 300.0}),
                               "Demo1")
                time.sleep(1)
                for i in range(moves):
                    r = cluster.move("bench", "Demo2" if i % 2 == 0 else "Demo1", "live")
                    rows.append(f"| live | {r.source} -> {r.destination} | {len(r.passes)} | "
                                f"{r.blackout_s * 1e3:.0f} | {r.total_s:.2f} |")
                owner = cluster.owner("bench")
                r = cluster.move("bench", "Demo1" if owner == "Demo2" else "Demo2", "quick")
                rows.append(f"| quick | {r.source} -> {r.destination} | - | "
                            f"{r.blackout_s * 1e3:.0f} | {r.total_s:.2f} |")
            finally:
                cluster.stop()
        finally:
            lab.down()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--link-mib", type=float, default=32.0, help="copy rate cap, MiB/s")
    parser.add_argument("--lab-moves", type=int, default=6)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    link = args.link_mib * MIB
    copy_pages_s = link / 4096
    header = ("| memory MiB | dirty pages/s (of copy rate) | pass limit | passes | last pages "
              "| blackout ms | total s |\n|---:|---:|---:|---:|---:|---:|---:|")
    rows: list[str] = []
    runs = [(m, 2000.0, 5) for m in (16, 32, 64)]
    runs += [(16, d, 5) for d in (0.0, 2000.0, 4000.0, 6000.0, 7500.0, 9000.0)]
    runs += [(16, 6000.0, p) for p in (1, 2, 10)]
    for m, d, p in runs:
        r = asyncio.run(wire_run(m, d, p, link))
        rows.append(wire_row(r, d, p, copy_pages_s))
        print(rows[-1], flush=True)
    lab_rows = lab_part(args.lab_moves)
    for row in lab_rows:
        print(row, flush=True)
    text = f"""{HEADING}

Part 1, pre-copy on the wire (`harness.cluster.migration`, both ends in one process over
loopback TCP, no storage): the link is capped at {args.link_mib:.0f} MiB/s, a copy
rate of {copy_pages_s:.0f} pages/s; pre-copy stops when at most 64 pages are dirty or at the
pass limit. Blackout = pause to resume (last pages, digest check on both ends). Part 2, the
lab cluster: a 32 MiB VM dirtying 2000 pages/s with its stamped workload (2 writers x QD 2,
300 ops/s) on the CSV, migrated between Demo1 and Demo2 with no link cap; its blackout also
holds the drain of the I/O in flight and the resume on the destination's sessions; the quick
migration's downtime holds saving and restoring the whole memory through a state file.
Reproduce: `python bench/migration_blackout.py --write`.

Machine: {machine()}.

{header}
{chr(10).join(rows)}

| lab migration | move | passes | blackout ms | total s |
|---|---|---:|---:|---:|
{chr(10).join(lab_rows)}

How to read it: while the guest dirties memory well below the copy rate, pre-copy
converges in a few passes and leaves tens of pages, so the blackout stays at milliseconds
whatever the memory size (total time grows with memory: pass 1 copies all of it). As the
dirty rate approaches the copy rate, each pass leaves nearly as many pages dirty as it
copied; pre-copy ends at the pass limit with hundreds to thousands of pages left, and the
blackout grows with them (the last copy runs at the link's rate). Above the copy rate no
pass limit helps. A lower pass limit shortens the total time and lengthens the blackout.
"""
    if args.write:
        write_section(HEADING, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
