"""End to end on a real file: run the workload, tamper with chosen blocks behind its
back (delete, revert, corrupt, misplace, tear), and get exactly those blocks back."""

from __future__ import annotations

import asyncio
import time

import pytest
from tamper_blocks import tamper, writes_by_block

from harness.checks.integrity import check_devices, check_image
from harness.checks.register import check_reads
from harness.workload.device import FileDevice
from harness.workload.generator import WorkloadSpec
from harness.workload.history import History, HistoryHeader, load_history
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


def test_clean_run_then_exactly_the_tampered_blocks(tmp_path):
    image, history = run_workload(tmp_path)
    assert check_image(history, image).valid
    assert check_reads(history).valid
    chosen = tamper(image, history)

    async def check():
        dev = FileDevice(image, readonly=True)
        try:
            return await check_devices(history, {"disk": dev})
        finally:
            await dev.close()

    verdict = asyncio.run(check())
    got = sorted((p.offset // BS, p.kind, p.length) for p in verdict.problems)
    assert got == sorted((block, kind, BS) for kind, block in chosen.items())
    by_kind = {p.kind: p for p in verdict.problems}
    last = writes_by_block(history)[chosen["stale"]][-1]
    assert by_kind["stale"].records[0]["seq"] == last.seq
    assert "holds the stamp written for byte offset" in by_kind["misplaced"].message
    assert all(p.device == "disk" and p.records for p in verdict.problems)
    assert check_image(history, image).counts() == verdict.counts()


@pytest.mark.parametrize("pattern", ["random", "sequential"])
def test_shared_region_with_overlapping_writers_is_clean(tmp_path, pattern):
    image, history = run_workload(tmp_path, region_mode="shared", region_length=256 * 1024,
                                  pattern=pattern)
    assert check_image(history, image).valid
    assert check_reads(history).valid
