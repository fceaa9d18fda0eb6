"""Live migration's wire protocol in one process: pre-copy passes, pause, last copy, resume."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from harness.cluster import migration as mig
from harness.cluster.errors import ClusterConfigError, MigrationFailed
from harness.cluster.memory import GuestMemory
from harness.cluster.migration import MigrationReport, migrate_in, migrate_out

MIB = 1 << 20


async def run_migration(source: GuestMemory, dest: GuestMemory, *, pass_limit: int,
                        stop_pages: int, rate: float | None,
                        tamper: bool = False) -> tuple[MigrationReport, dict[str, Any]]:
    events: dict[str, Any] = {"resumed_here": 0}

    async def resume(state: dict[str, Any]) -> dict[str, Any]:
        events["state"] = state
        return {"resume_ns": time.monotonic_ns(), "announce": "Not Applicable: test"}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        events["answer"] = await migrate_in(reader, writer, dest, accept=lambda h: None,
                                            resume=resume)
        writer.close()

    async def pause() -> dict[str, Any]:
        await source.pause_guest()
        if tamper:  # a page changes behind the dirty log's back: the copy is now wrong
            source.data[0] ^= 0xFF
        return {"pause_ns": time.monotonic_ns()}

    async def resume_here() -> None:
        events["resumed_here"] += 1
        source.run_guest()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    source.run_guest()
    report = MigrationReport("vm", "live", "a", "b", time.monotonic_ns(), 0, 0, 0,
                             memory_bytes=source.size)
    try:
        await migrate_out(source, ("127.0.0.1", port), hello={"vm": "vm"}, pause_vm=pause,
                          resume_here=resume_here, pass_limit=pass_limit,
                          stop_pages=stop_pages, link_rate_bps=rate, report=report)
    finally:
        server.close()
        await source.pause_guest()
    return report, events


def test_memory_arrives_whole_and_the_pause_is_short_when_the_guest_is_quiet() -> None:
    src, dst = GuestMemory(4 * MIB, dirty_rate=500), GuestMemory(4 * MIB)
    report, events = asyncio.run(run_migration(src, dst, pass_limit=5, stop_pages=64,
                                               rate=None))
    assert dst.data == src.data and events["answer"]["resume_ns"] == report.resume_ns
    assert report.passes[0].pages == 1024  # pass 1 copies everything
    assert report.resume_ns >= report.pause_ns > report.started_ns


def test_a_guest_dirtying_faster_than_the_link_hits_the_pass_limit() -> None:
    # 4 MiB over a 8 MiB/s link: each pass takes ~0.5 s, the guest dirties 2000 pages/s
    src, dst = GuestMemory(4 * MIB, dirty_rate=2000), GuestMemory(4 * MIB)
    report, _ = asyncio.run(run_migration(src, dst, pass_limit=3, stop_pages=8,
                                          rate=8 * MIB))
    assert [p.number for p in report.passes] == [1, 2, 3]
    assert report.final_pages > 8 and dst.data == src.data


def test_a_wrong_copy_is_caught_and_the_vm_resumes_on_the_source() -> None:
    src, dst = GuestMemory(1 * MIB, dirty_rate=100), GuestMemory(1 * MIB)
    with pytest.raises(MigrationFailed, match=r"digest differs.*keeps running on a"):
        asyncio.run(run_migration(src, dst, pass_limit=2, stop_pages=64, rate=None,
                                  tamper=True))


def test_an_unreachable_destination_leaves_the_vm_running() -> None:
    async def go() -> None:
        mem = GuestMemory(MIB)
        report = MigrationReport("vm", "live", "a", "b", 0, 0, 0, 0)

        async def never() -> dict[str, Any]:
            raise AssertionError("must not pause")

        async def nothing() -> None:
            raise AssertionError("was never paused")

        await migrate_out(mem, ("127.0.0.1", 1), hello={}, pause_vm=never, resume_here=nothing,
                          pass_limit=5, stop_pages=64, link_rate_bps=None, report=report,
                          timeout_s=2.0)

    with pytest.raises(MigrationFailed, match="keeps running on a"):
        asyncio.run(go())


def test_memory_sizes_must_be_whole_pages() -> None:
    with pytest.raises(ClusterConfigError, match="multiple"):
        GuestMemory(5000)
    assert mig.HYPER_V_PASS_LIMIT == 5
