"""Cost of one SCSI command in the reference target's logical unit, without networking.

Runs ``LogicalUnit.execute`` in a loop on a sparse image in the page cache and
prints microseconds per command and commands per second for 4 KiB READ(10),
WRITE(10) in write-back mode, WRITE(10) in write-through mode (one fdatasync per
batch of concurrent writes, group commit) and, for contrast, INQUIRY (the general
path that builds a command object). The iSCSI layer's own cost comes on top.

    .venv/bin/python bench/lu_hot_path.py [--count 50000] [--queue-depth 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from harness.scsi import cdb as c
from harness.target.blockstore import ImageFile
from harness.target.device import LogicalUnit, ScsiTask
from harness.target.identity import LuIdentity
from harness.target.nexus import ItNexus

NEXUS = ItNexus("iqn.2026-11.org.splitbrain.bench:initiator,i,0x400000000001",
                "iqn.2026-11.org.splitbrain.bench:target,t,0x0001")
IMAGE_BYTES = 256 << 20


async def _serial(lu: LogicalUnit, tasks: list[ScsiTask], count: int) -> float:
    start = time.monotonic_ns()
    for i in range(count):
        await lu.execute(tasks[i % len(tasks)])
    return (time.monotonic_ns() - start) / 1e3 / count


async def _concurrent(lu: LogicalUnit, tasks: list[ScsiTask], count: int, depth: int) -> float:
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await lu.execute(tasks[i % len(tasks)])

    start = time.monotonic_ns()
    await asyncio.gather(*(worker() for _ in range(depth)))
    return (time.monotonic_ns() - start) / 1e3 / count


async def main(count: int, depth: int) -> None:
    with tempfile.TemporaryDirectory(prefix="splitbrain-bench-") as tmp:
        store = ImageFile.open(Path(tmp) / "lun.img", IMAGE_BYTES, write_through=False)
        lu = LogicalUnit(store, LuIdentity.derive("bench"))
        await lu.execute(ScsiTask(NEXUS, 0, c.TestUnitReady().encode()))  # power-on UA
        blocks = IMAGE_BYTES // 4096
        data = os.urandom(4096)
        await store.write(0, bytes(IMAGE_BYTES))  # page cache warm, file allocated
        lbas = [(i * 7919) % blocks * 8 for i in range(4096)]
        reads = [ScsiTask(NEXUS, 0, c.Read(lba=lba, blocks=8).encode(), b"", 4096)
                 for lba in lbas]
        writes = [ScsiTask(NEXUS, 0, c.Write(lba=lba, blocks=8).encode(), data)
                  for lba in lbas]
        inquiry = [ScsiTask(NEXUS, 0, c.Inquiry().encode(), b"", 96)]
        rows = [
            ("READ(10) 4 KiB", await _serial(lu, reads, count)),
            ("WRITE(10) 4 KiB, write-back", await _serial(lu, writes, count)),
            ("INQUIRY (general path)", await _serial(lu, inquiry, count)),
        ]
        store.write_through = True
        syncs = 0
        plain_sync = store._fdatasync

        def counted_sync() -> None:
            nonlocal syncs
            syncs += 1
            plain_sync()

        store._fdatasync = counted_sync  # type: ignore[method-assign]
        n = max(1000, count // 20)
        for qd in (1, depth):
            syncs = 0
            us = await _concurrent(lu, writes, n, qd)
            rows.append((f"WRITE(10) 4 KiB, write-through, QD {qd} "
                         f"({n / max(syncs, 1):.1f} writes per fdatasync)", us))
        lu.close()
    print("| command | us/command | commands/s |")
    print("|---|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.1f} | {1e6 / us:,.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50000)
    parser.add_argument("--queue-depth", type=int, default=32)
    args = parser.parse_args()
    try:
        import uvloop  # type: ignore[import-not-found]
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(args.count, args.queue_depth))
