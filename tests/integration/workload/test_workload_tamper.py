"""End to end on a real file: run the workload, tamper with chosen blocks behind its
back (delete, revert, corrupt, misplace, tear), and get exactly those blocks back."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from harness.checks.integrity import check_devices, check_image
from harness.checks.register import check_reads
from harness.workload.device import FileDevice
from harness.workload.generator import WorkloadSpec
from harness.workload.history import History, HistoryHeader, load_history
from harness.workload.stamp import WriteId, encode_write
from harness.workload.writers import Workload

BS = 4096
SIZE = 8 << 20


def run_workload(tmp_path, **spec_kw):
    image = tmp_path / "disk.img"
    hist = tmp_path / "history.jsonl"

    async def body():
        dev = FileDevice(image, size=SIZE)
        header = HistoryHeader(seed=11, generation=0xC0FFEE, block_size=BS,
                               logical_block_size=dev.block_size, num_blocks=dev.num_blocks,
                               device=str(image), initial="zero", start_ns=time.monotonic_ns())
        try:
            with History(hist, header) as history:
                spec = WorkloadSpec(seed=11, writers=4, queue_depth=1, duration=None,
                                    ops_per_writer=250, read_ratio=0.2,
                                    block_sizes=(4096, 16384), **spec_kw)
                result = await Workload(dev, spec, history).run()
        finally:
            await dev.close()
        return result

    result = asyncio.run(asyncio.wait_for(body(), 120))
    assert result.ok == result.ops == 1000
    return image, load_history(hist)


def final_writes(history):
    """block -> list of ok writes covering it, in completion order (qd 1: no overlap)."""
    out: dict[int, list] = {}
    for w in sorted(history.writes, key=lambda o: o.complete_ns):
        for b in range(w.lba * 512 // BS, (w.lba + w.count) * 512 // BS):
            out.setdefault(b, []).append(w)
    return out


def block_bytes(history, w, block):
    off = w.lba * 512
    data = encode_write(off, w.count * 512, WriteId(history.header.generation, w.writer, w.seq),
                        seed=history.header.seed, timestamp=w.invoke_ns)
    rel = block * BS - off
    return data[rel:rel + BS]


def test_clean_run_then_exactly_the_tampered_blocks(tmp_path):
    image, history = run_workload(tmp_path)
    assert check_image(history, image).valid
    assert check_reads(history).valid
    writes = final_writes(history)
    once = sorted(b for b, ws in writes.items() if len(ws) == 1)
    twice = sorted(b for b, ws in writes.items() if len(ws) >= 2)
    lost, corrupt, victim, torn = once[3], once[40], once[80], once[120]
    stale = twice[5]
    source = once[200]
    # the final content really is the last write (regenerated from the history alone)
    with open(image, "rb") as fh:
        fh.seek(stale * BS)
        assert fh.read(BS) == block_bytes(history, writes[stale][-1], stale)
    with open(image, "r+b") as fh:
        def put(block, data):
            fh.seek(block * BS)
            fh.write(data)

        def get(block):
            fh.seek(block * BS)
            return fh.read(BS)

        put(lost, bytes(BS))                                          # deleted
        put(stale, block_bytes(history, writes[stale][-2], stale))    # reverted
        bad = bytearray(get(corrupt))
        bad[777] ^= 0x10
        put(corrupt, bytes(bad))                                      # bit flip
        put(victim, get(source))                                      # misdirected
        half = bytearray(get(torn))
        half[2048:] = bytes(2048)
        put(torn, bytes(half))                                        # torn
        os.fsync(fh.fileno())

    async def check():
        dev = FileDevice(image, readonly=True)
        try:
            return await check_devices(history, {"disk": dev})
        finally:
            await dev.close()

    verdict = asyncio.run(check())
    got = sorted((p.offset // BS, p.kind, p.length) for p in verdict.problems)
    assert got == sorted([(lost, "lost", BS), (stale, "stale", BS), (corrupt, "corrupt", BS),
                          (victim, "misplaced", BS), (torn, "torn", BS)])
    by_kind = {p.kind: p for p in verdict.problems}
    assert by_kind["stale"].records[0]["seq"] == writes[stale][-1].seq
    assert f"byte offset {source * BS}" in by_kind["misplaced"].message
    assert all(p.device == "disk" and p.records for p in verdict.problems)
    assert check_image(history, image).counts() == verdict.counts()


@pytest.mark.parametrize("pattern", ["random", "sequential"])
def test_shared_region_with_overlapping_writers_is_clean(tmp_path, pattern):
    image, history = run_workload(tmp_path, region_mode="shared", region_length=256 * 1024,
                                  pattern=pattern)
    assert check_image(history, image).valid
    assert check_reads(history).valid
