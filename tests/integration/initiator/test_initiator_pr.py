"""SCSI-3 persistent reservations through the initiator, between initiator names, on tgtd.

Each initiator name is its own I_T nexus. The expectations are SPC-4's (5.9 and
table 44 "commands allowed in the presence of reservations"), so a failure here
is a finding about either the initiator or tgtd.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from harness.initiator.errors import ReservationConflict
from harness.initiator.session import Session
from harness.peers.tgtd import TgtdTarget
from harness.scsi.reservations import PrInAction, PrType

NODE_A = "iqn.2026-11.test.splitbrain:node-a"
NODE_B = "iqn.2026-11.test.splitbrain:node-b"
NODE_C = "iqn.2026-11.test.splitbrain:node-c"
KEY_A, KEY_B = 0xA0A0A0A0, 0xB0B0B0B0
BLOCK = b"\x5a" * 512


def run(coro: Any) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(60):
            return await coro
    return asyncio.run(bounded())


async def sessions(target: TgtdTarget, *names: str) -> list[Session]:
    opened = []
    for name in names:
        s = Session(target.host, target.port, target.iqn, lun=target.lun, initiator_name=name)
        await s.login()
        await s.read_capacity()  # also consumes the power-on unit attention
        opened.append(s)
    return opened


async def close_all(opened: list[Session]) -> None:
    for s in opened:
        await s.logout()


def test_register_reserve_preempt_release(tgtd_target: TgtdTarget) -> None:
    async def scenario() -> dict[str, Any]:
        a, b, c = await sessions(tgtd_target, NODE_A, NODE_B, NODE_C)
        seen: dict[str, Any] = {}
        try:
            await a.pr_register(KEY_A)
            await b.pr_register(KEY_B)
            seen["keys"] = (await a.persistent_reserve_in(PrInAction.READ_KEYS)).keys
            await a.pr_reserve(KEY_A, PrType.WRITE_EXCLUSIVE)
            seen["reservation"] = await b.persistent_reserve_in(PrInAction.READ_RESERVATION)
            await a.write(0, BLOCK)  # the holder writes
            seen["b_read"] = await b.read(0, 1)  # write exclusive: others may read
            for name, session in (("b_write", b), ("c_write", c)):
                with pytest.raises(ReservationConflict):
                    await session.write(0, BLOCK)
                seen[name] = "conflict"
            with pytest.raises(ReservationConflict):  # a second holder is refused
                await b.pr_reserve(KEY_B, PrType.WRITE_EXCLUSIVE)
            await b.pr_preempt(KEY_B, KEY_A, PrType.WRITE_EXCLUSIVE)
            seen["keys_after_preempt"] = (await b.persistent_reserve_in(
                PrInAction.READ_KEYS)).keys
            seen["holder_after_preempt"] = await c.persistent_reserve_in(
                PrInAction.READ_RESERVATION)
            with pytest.raises(ReservationConflict):  # A lost its registration
                await a.write(0, BLOCK)
            with pytest.raises(ReservationConflict):  # and may not reserve with it
                await a.pr_reserve(KEY_A, PrType.WRITE_EXCLUSIVE)
            await b.write(0, BLOCK)
            await b.pr_release(KEY_B, PrType.WRITE_EXCLUSIVE)
            seen["after_release"] = await a.persistent_reserve_in(PrInAction.READ_RESERVATION)
            await a.write(0, BLOCK)  # no reservation: anyone writes again
            await b.pr_clear(KEY_B)
            seen["keys_after_clear"] = (await a.persistent_reserve_in(
                PrInAction.READ_KEYS)).keys
            seen["a_unit_attentions"] = [(u.asc, u.ascq) for u in a.unit_attentions]
        finally:
            await close_all([a, b, c])
        return seen

    seen = run(scenario())
    assert sorted(seen["keys"]) == [KEY_A, KEY_B]
    assert (seen["reservation"].key, seen["reservation"].pr_type) == (
        KEY_A, PrType.WRITE_EXCLUSIVE)
    assert seen["b_read"] == BLOCK
    assert seen["keys_after_preempt"] == (KEY_B,)
    assert seen["holder_after_preempt"].key == KEY_B
    assert seen["after_release"].key is None
    assert seen["keys_after_clear"] == ()
    # A learns it was preempted through a 2Ah unit attention. SPC-4 5.9.11.4 asks for
    # REGISTRATIONS PREEMPTED (2Ah/05h); tgtd 1.0.85 reports RESERVATIONS PREEMPTED (03h).
    assert any(asc == 0x2A and ascq in (0x03, 0x05) for asc, ascq in seen["a_unit_attentions"])


def test_exclusive_access_blocks_reads_of_others(tgtd_target: TgtdTarget) -> None:
    async def scenario() -> None:
        a, b = await sessions(tgtd_target, NODE_A, NODE_B)
        try:
            await a.pr_register(KEY_A)
            await a.pr_reserve(KEY_A, PrType.EXCLUSIVE_ACCESS)
            await a.read(0, 1)
            with pytest.raises(ReservationConflict):
                await b.read(0, 1)
            await b.pr_register(KEY_B)  # registering is always allowed
            with pytest.raises(ReservationConflict):  # but gives no access under EA
                await b.read(0, 1)
            await a.pr_release(KEY_A, PrType.EXCLUSIVE_ACCESS)
            await b.read(0, 1)
            await a.pr_clear(KEY_A)
        finally:
            await close_all([a, b])

    run(scenario())


def test_registrants_only_lets_every_registrant_write(tgtd_target: TgtdTarget) -> None:
    async def scenario() -> None:
        a, b, c = await sessions(tgtd_target, NODE_A, NODE_B, NODE_C)
        try:
            await a.pr_register(KEY_A)
            await b.pr_register(KEY_B)
            await a.pr_reserve(KEY_A, PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY)
            await b.write(1, BLOCK)  # a registrant, not the holder: allowed
            with pytest.raises(ReservationConflict):
                await c.write(1, BLOCK)
            await a.pr_clear(KEY_A)
            await c.write(1, BLOCK)
        finally:
            await close_all([a, b, c])

    run(scenario())
