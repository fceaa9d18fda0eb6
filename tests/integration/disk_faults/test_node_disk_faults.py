"""Disk faults served by a real reference target node, seen through the harness initiator.

Each fault is injected with ``POST /v1/faults/disk`` and must break exactly the
I/O it names (the right sense, the right LBAs only); ``DELETE`` must restore it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from harness.initiator.errors import CheckCondition
from harness.initiator.session import Session
from harness.peers.reference_target import ReferenceTarget
from harness.scsi.sense import AdditionalSense, Asc, SenseKey
from harness.target.management import ManagementError

BLOCK = 512
LUN_BLOCKS = 64 * 1024 * 1024 // BLOCK


def pattern(lba: int, blocks: int) -> bytes:
    """Block ``n`` holds its own LBA repeated, so a misplaced block is visible."""
    return b"".join((lba + i).to_bytes(8, "big") * (BLOCK // 8) for i in range(blocks))


def run(node: ReferenceTarget, scenario: Callable[[Session], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        host, port = node.portals[0]
        async with Session(host, port, node.iqn, lun=node.lun) as session:
            return await scenario(session)

    return asyncio.run(main())


async def refused(io: Awaitable[Any]) -> tuple[SenseKey, AdditionalSense | None]:
    with pytest.raises(CheckCondition) as caught:
        await io
    sense = caught.value.sense
    assert sense is not None
    codes = (Asc.UNRECOVERED_READ_ERROR, Asc.WRITE_ERROR,
             Asc.SPACE_ALLOCATION_FAILED_WRITE_PROTECT)
    return sense.key, next((c for c in codes if sense.is_(c)), None)


def inject(node: ReferenceTarget, **fault: Any) -> dict[str, Any]:
    body = {"target": node.iqn, "lun": node.lun, "delay_ms": 0.0, "lba": 0, "count": 0} | fault
    return node.management.request("POST", "/v1/faults/disk", body)


def active(node: ReferenceTarget) -> list[str]:
    return [f["id"] for f in node.management.request("GET", "/v1/faults/disk")]


def test_eio_fails_only_the_range_with_medium_errors_until_deleted(
    reference_target: ReferenceTarget,
) -> None:
    node = reference_target

    async def before(s: Session) -> None:
        await s.write(0, pattern(0, 64))

    run(node, before)
    inject(node, id="bad-sectors", kind="eio", lba=16, count=8)
    assert active(node) == ["bad-sectors"]

    async def broken(s: Session) -> None:
        assert await s.read(0, 16) == pattern(0, 16)          # just below the range
        assert await s.read(24, 8) == pattern(24, 8)          # just above it
        read_error = (SenseKey.MEDIUM_ERROR, Asc.UNRECOVERED_READ_ERROR)
        assert await refused(s.read(16, 1)) == read_error     # first bad block
        assert await refused(s.read(23, 1)) == read_error     # last bad block
        assert await refused(s.read(10, 8)) == read_error     # overlapping from below
        write_error = (SenseKey.MEDIUM_ERROR, Asc.WRITE_ERROR)
        assert await refused(s.write(20, b"\xee" * BLOCK)) == write_error
        await s.write(30, pattern(30, 1))                     # outside: still writable

    run(node, broken)
    node.management.request("DELETE", "/v1/faults/disk/bad-sectors")
    assert active(node) == []

    async def healed(s: Session) -> None:
        assert await s.read(0, 64) == pattern(0, 64)  # the refused write changed nothing

    run(node, healed)
    with pytest.raises(ManagementError, match=" 404 "):
        node.management.request("DELETE", "/v1/faults/disk/bad-sectors")


def test_nospace_refuses_allocating_writes_but_not_overwrites_or_reads(
    reference_target: ReferenceTarget,
) -> None:
    node = reference_target
    hole = LUN_BLOCKS - 64  # never written: a hole of the sparse image

    async def before(s: Session) -> None:
        await s.write(0, pattern(0, 8))

    run(node, before)
    inject(node, id="pool-full", kind="nospace")

    async def full(s: Session) -> None:
        await s.write(0, pattern(100, 8))                     # allocated already: fine
        assert await s.read(0, 8) == pattern(100, 8)
        assert await s.read(hole, 8) == bytes(8 * BLOCK)      # reads are unaffected
        assert await refused(s.write(hole, pattern(hole, 8))) == (
            SenseKey.DATA_PROTECT, Asc.SPACE_ALLOCATION_FAILED_WRITE_PROTECT)

    run(node, full)
    node.management.request("DELETE", "/v1/faults/disk/pool-full")

    async def healed(s: Session) -> None:
        await s.write(hole, pattern(hole, 8))
        assert await s.read(hole, 8) == pattern(hole, 8)

    run(node, healed)


def test_slow_delays_the_range_only_and_delete_removes_the_delay(
    reference_target: ReferenceTarget,
) -> None:
    node = reference_target
    delay_ms = 400.0

    async def before(s: Session) -> None:
        await s.write(0, pattern(0, 32))

    run(node, before)
    inject(node, id="slow-range", kind="slow", delay_ms=delay_ms, lba=8, count=8)

    async def slow(s: Session) -> None:
        await s.read_capacity()
        started = time.monotonic_ns()
        slow_read = asyncio.ensure_future(s.read(8, 8))
        await asyncio.sleep(0)  # the slow read is on the wire first
        assert await s.read(0, 8) == pattern(0, 8)
        assert not slow_read.done()  # overtaken by the read outside the range
        assert await slow_read == pattern(8, 8)
        assert time.monotonic_ns() - started >= delay_ms * 1e6  # waited at least the delay

    run(node, slow)
    node.management.request("DELETE", "/v1/faults/disk/slow-range")

    async def healed(s: Session) -> None:
        await s.read_capacity()  # so each read below is one command, in submission order
        first = asyncio.ensure_future(s.read(8, 8))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(s.read(0, 8))
        done, _ = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
        assert first in done  # no delay any more: answered in order
        assert await first == pattern(8, 8) and await second == pattern(0, 8)

    run(node, healed)


def test_restart_clears_every_disk_fault(reference_target: ReferenceTarget) -> None:
    node = reference_target
    inject(node, id="until-restart", kind="eio", lba=0, count=1)
    node.restart()
    assert active(node) == []

    async def readable(s: Session) -> bytes:
        return await s.read(0, 1)

    assert run(node, readable) == bytes(BLOCK)


@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [
        ({"kind": "melt"}, 400, "kind"),
        ({"kind": "eio", "count": 0}, 400, "count > 0"),
        ({"kind": "slow", "delay_ms": 0}, 400, "delay_ms > 0"),
        ({"kind": "eio", "lba": LUN_BLOCKS - 1, "count": 2}, 400, "beyond"),
        ({"kind": "eio", "count": 1, "lun": 7}, 404, "no LUN 7"),
        ({"kind": "eio", "count": 1, "target": "iqn.2026-11.org.example:nope"}, 404,
         "no target"),
        ({"kind": "eio", "count": 1, "colour": "red"}, 400, "unknown field"),
    ],
)
def test_bad_fault_requests_are_refused_with_a_reason(
    reference_target: ReferenceTarget, fault: dict[str, Any], status: int, message: str,
) -> None:
    with pytest.raises(ManagementError, match=f" {status} .*{message}"):
        inject(reference_target, **fault)
    assert active(reference_target) == []


def test_a_fault_id_is_active_once(reference_target: ReferenceTarget) -> None:
    inject(reference_target, id="twice", kind="eio", lba=0, count=1)
    with pytest.raises(ManagementError, match=" 409 "):
        inject(reference_target, id="twice", kind="slow", delay_ms=5.0)
    assert active(reference_target) == ["twice"]
