"""The harness's initiator against Debian's tgtd: login, discovery, data, NOP, task management.

Every test runs its own asyncio loop (``asyncio.run``) against a fresh tgtd target
from ``harness.peers.tgtd``. Random data comes from the run's seed (``--seed``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from harness.initiator.discovery import send_targets
from harness.initiator.errors import LoginFailed, LoginRejected
from harness.initiator.login import ChapSecrets
from harness.initiator.session import Session
from harness.iscsi.codes import LoginStatus
from harness.iscsi.codes import TaskManagementResponseCode as Tmf
from harness.peers.tgtd import TgtdTarget
from harness.scsi.cdb import Inquiry, Read, TestUnitReady
from harness.scsi.sense import SenseKey
from harness.scsi.status import ScsiStatus
from harness.scsi.vpd import DesignatorType, VpdPage

TIMEOUT = 30


def run(coro: Awaitable[Any]) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(TIMEOUT):  # a hang fails the test instead of stalling CI
            return await coro
    return asyncio.run(bounded())


def chap_of(target: TgtdTarget, *, mutual: bool = True, secret: str | None = None) -> ChapSecrets:
    assert target.chap is not None
    return ChapSecrets(target.chap.user, secret or target.chap.secret,
                       target.chap.target_user if mutual else None,
                       target.chap.target_secret if mutual else None)


def session_for(target: TgtdTarget, **kwargs: Any) -> Session:
    return Session(target.host, target.port, target.iqn, lun=target.lun, **kwargs)


async def logged_in(target: TgtdTarget, body: Callable[[Session], Awaitable[Any]],
                    **kwargs: Any) -> Any:
    async with session_for(target, **kwargs) as session:
        return await body(session)


# -- discovery and login ------------------------------------------------------------------


def test_discovery_lists_every_target_with_its_portal(tgtd_target_factory) -> None:
    first, second = tgtd_target_factory(), tgtd_target_factory()
    found = run(send_targets(first.host, first.port))
    by_name = {t.name: t for t in found}
    assert {first.iqn, second.iqn} <= set(by_name)
    portal = by_name[first.iqn].portals[0]
    assert (portal.address, portal.port) == (first.host, first.port)
    assert portal.group_tag == 1


def test_login_without_chap_reaches_full_feature_phase(tgtd_target: TgtdTarget) -> None:
    async def body(s: Session) -> tuple[Any, int]:
        await s.test_unit_ready()
        return s.login_result, s.tsih

    result, tsih = run(logged_in(tgtd_target, body))
    assert tsih != 0
    assert result.agreed["AuthMethod"] == "None"
    assert result.target_portal_group_tag == 1


def test_one_way_chap_login(tgtd_target_factory) -> None:
    target = tgtd_target_factory(chap=True)
    result = run(logged_in(target, lambda s: s.inquiry(), chap=chap_of(target, mutual=False)))
    assert result.vendor == "IET"


def test_mutual_chap_login_verifies_the_target(tgtd_target_factory) -> None:
    target = tgtd_target_factory(chap=True, mutual=True)

    async def body(s: Session) -> bool:
        await s.test_unit_ready()
        return s.login_result.mutual_chap

    assert run(logged_in(target, body, chap=chap_of(target))) is True


def test_wrong_secret_is_refused_as_authentication_failure(tgtd_target_factory) -> None:
    target = tgtd_target_factory(chap=True)
    with pytest.raises(LoginRejected) as info:
        run(logged_in(target, lambda s: s.test_unit_ready(),
                      chap=chap_of(target, mutual=False, secret="not-the-secret")))
    code = (info.value.status_class << 8) | info.value.status_detail
    assert code == LoginStatus.AUTHENTICATION_FAILURE
    assert target.iqn in str(info.value) and "authentication failed" in str(info.value)


def test_missing_chap_is_refused(tgtd_target_factory) -> None:
    target = tgtd_target_factory(chap=True)
    with pytest.raises(LoginRejected) as info:
        run(logged_in(target, lambda s: s.test_unit_ready()))
    assert info.value.status_class == 2


def test_target_that_fails_mutual_chap_is_refused_by_us(tgtd_target_factory) -> None:
    target = tgtd_target_factory(chap=True, mutual=True)
    assert target.chap is not None
    wrong = ChapSecrets(target.chap.user, target.chap.secret, target.chap.target_user,
                        "a-different-secret")
    with pytest.raises(LoginFailed, match="mutual CHAP"):
        run(logged_in(target, lambda s: s.test_unit_ready(), chap=wrong))


def test_unknown_target_is_refused_as_not_found(tgtd_target: TgtdTarget) -> None:
    session = Session(tgtd_target.host, tgtd_target.port, tgtd_target.iqn + "-missing")
    with pytest.raises(LoginRejected, match="not found") as info:
        run(session.login())
    assert info.value.status_class == 2
    assert session.failed


def test_initiator_outside_the_acl_is_refused(tgtd_target_factory) -> None:
    target = tgtd_target_factory(initiators=["iqn.2026-11.test:allowed"])
    run(logged_in(target, lambda s: s.test_unit_ready(), initiator_name="iqn.2026-11.test:allowed"))
    with pytest.raises(LoginRejected):
        run(logged_in(target, lambda s: s.test_unit_ready(),
                      initiator_name="iqn.2026-11.test:stranger"))


def test_digests_negotiated_and_used(tgtd_target: TgtdTarget, settings) -> None:
    # tgtd answers None to any digest offer unless the target is set to CRC32C.
    tgtd_target.set_param("HeaderDigest", "CRC32C")
    tgtd_target.set_param("DataDigest", "CRC32C")
    data = random.Random(settings.seed).randbytes(128 * 1024)

    async def body(s: Session) -> tuple[bool, bool, bytes]:
        await s.write(64, data)
        return s.params.header_digest, s.params.data_digest, await s.read(64, len(data) // 512)

    hd, dd, back = run(logged_in(tgtd_target, body, preferences={
        "HeaderDigest": "CRC32C,None", "DataDigest": "CRC32C,None"}))
    assert (hd, dd) == (True, True)
    assert back == data


# -- SCSI -----------------------------------------------------------------------------------


def test_inquiry_vpd_and_capacity(tgtd_target: TgtdTarget) -> None:
    async def body(s: Session) -> tuple[Any, ...]:
        return (await s.inquiry(), await s.vpd(VpdPage.SUPPORTED_PAGES),
                await s.vpd(VpdPage.UNIT_SERIAL_NUMBER),
                await s.vpd(VpdPage.DEVICE_IDENTIFICATION), await s.read_capacity(),
                await s.report_luns())

    std, pages, serial, ident, capacity, luns = run(logged_in(tgtd_target, body))
    assert (std.vendor, std.product, std.device_type) == ("IET", "VIRTUAL-DISK", 0)
    assert {0x80, 0x83} <= set(pages.pages)
    assert serial.serial.strip()
    assert ident.find(DesignatorType.NAA) is not None
    assert capacity.block_size == 512
    assert capacity.bytes == tgtd_target.lun_size
    assert luns == [0, 1]


def test_random_writes_then_reads_at_queue_depth_32(tgtd_target: TgtdTarget, settings) -> None:
    rng = random.Random(settings.seed)
    blocks = tgtd_target.lun_size // 512
    # 256 distinct extents of 1..16 blocks, each written with its own random data.
    starts = rng.sample(range(0, blocks - 16, 16), 256)
    extents = {lba: rng.randbytes(512 * rng.randint(1, 16)) for lba in starts}

    async def body(s: Session) -> tuple[dict[int, bytes], int]:
        await s.read_capacity()
        gate = asyncio.Semaphore(32)
        peak = 0

        async def one(coro: Awaitable[Any]) -> Any:
            nonlocal peak
            async with gate:
                peak = max(peak, s.outstanding + 1)
                return await coro

        await asyncio.gather(*(one(s.write(lba, data, fua=bool(lba & 16)))
                               for lba, data in extents.items()))
        back = await asyncio.gather(*(one(s.read(lba, len(data) // 512))
                                      for lba, data in extents.items()))
        return dict(zip(extents, back, strict=True)), peak

    back, peak = run(logged_in(tgtd_target, body))
    assert peak > 1  # commands really overlapped
    mismatched = [lba for lba, data in extents.items() if back[lba] != data]
    assert not mismatched, f"read back differs at LBAs {mismatched[:5]}"
    image = tgtd_target.image.read_bytes()
    assert all(image[lba * 512 : lba * 512 + len(d)] == d for lba, d in extents.items())


@pytest.mark.parametrize(("initial_r2t", "immediate_data"), [
    ("Yes", "Yes"), ("No", "Yes"), ("No", "No"), ("Yes", "No")])
def test_large_write_uses_r2t_bursts(tgtd_target: TgtdTarget, settings, initial_r2t: str,
                                     immediate_data: str) -> None:
    """Immediate data, unsolicited Data-Out up to FirstBurstLength and R2T bursts, in
    every combination the two keys allow."""
    tgtd_target.set_param("InitialR2T", initial_r2t)
    tgtd_target.set_param("ImmediateData", immediate_data)
    data = random.Random(settings.seed + 1).randbytes(3 * 1024 * 1024 + 512)

    async def body(s: Session) -> tuple[bytes, int, int]:
        assert (s.params.initial_r2t, s.params.immediate_data) == (
            initial_r2t == "Yes", immediate_data == "Yes")
        await s.write(8, data)
        await s.write(9000, data[:1024])  # fits in the immediate/unsolicited data
        await s.synchronize_cache()
        assert await s.read(9000, 2) == data[:1024]
        return await s.read(8, len(data) // 512), s.params.max_burst_length, (
            s.params.first_burst_length)

    back, max_burst, first_burst = run(logged_in(tgtd_target, body, preferences={
        "InitialR2T": initial_r2t, "ImmediateData": immediate_data}))
    assert len(data) > max_burst + first_burst  # several R2T sequences were needed
    assert back == data
    assert tgtd_target.image.read_bytes()[8 * 512 : 8 * 512 + len(data)] == data


def test_read_past_the_end_is_a_check_condition(tgtd_target: TgtdTarget) -> None:
    blocks = tgtd_target.lun_size // 512

    async def body(s: Session) -> Any:
        await s.test_unit_ready()
        return await s.execute(Read(lba=blocks, blocks=1, size=16).encode(), expected_in=512)

    result = run(logged_in(tgtd_target, body))
    assert result.status == ScsiStatus.CHECK_CONDITION
    assert result.sense is not None and result.sense.key == SenseKey.ILLEGAL_REQUEST


def test_nop_ping_measures_a_round_trip(tgtd_target: TgtdTarget) -> None:
    async def body(s: Session) -> list[int]:
        return [await s.ping(), await s.ping(b"payload-echo")]

    rtts = run(logged_in(tgtd_target, body))
    assert all(rtt > 0 for rtt in rtts)


def test_lun_reset_then_unit_attention(tgtd_target: TgtdTarget) -> None:
    async def body(s: Session) -> Any:
        await s.test_unit_ready()
        await s.lun_reset()
        return await s.execute(TestUnitReady().encode())

    after = run(logged_in(tgtd_target, body))
    assert after.status == ScsiStatus.CHECK_CONDITION
    assert after.sense is not None and after.sense.key == SenseKey.UNIT_ATTENTION
    assert after.sense.asc == 0x29  # power on, reset or bus device reset occurred


def test_abort_of_a_completed_task_reports_no_such_task(tgtd_target: TgtdTarget) -> None:
    async def body(s: Session) -> Tmf:
        await s.test_unit_ready()
        handle = await s.submit(TestUnitReady().encode())
        await handle.result()
        return await s.abort_task(handle)

    assert run(logged_in(tgtd_target, body)) in (Tmf.TASK_DOES_NOT_EXIST,
                                                 Tmf.FUNCTION_COMPLETE)


def test_logout_ends_the_session(tgtd_target: TgtdTarget) -> None:
    async def body() -> Session:
        s = session_for(tgtd_target)
        await s.login()
        await s.logout()
        return s

    session = run(body())
    assert session.logged_out and not session.failed


def test_discovery_answer_spanning_several_text_responses(tgtd_target_factory) -> None:
    """With a 512-byte MaxRecvDataSegmentLength the SendTargets answer for a dozen
    long target names cannot fit one Text Response: the initiator must follow F=0
    (and C for a split key) with continuation requests carrying the TTT."""
    targets = [tgtd_target_factory(name="x" * 150 + f"-{i}") for i in range(12)]

    async def body() -> list[tuple[str, str]]:
        async with Session(targets[0].host, targets[0].port, None,
                           preferences={"MaxRecvDataSegmentLength": "512"}) as s:
            assert s.params.max_recv_data_segment_length == 512
            return await s.text_request([("SendTargets", "All")])

    pairs = run(body())
    names = [value for key, value in pairs if key == "TargetName"]
    assert {t.iqn for t in targets} <= set(names)
    assert sum(len(k) + len(v) + 2 for k, v in pairs) > 512 * 3


def test_residuals_on_underflow_and_overflow(tgtd_target: TgtdTarget) -> None:
    async def body(s: Session) -> tuple[Any, Any]:
        await s.test_unit_ready()
        short = await s.execute(Inquiry(allocation_length=1024).encode(), expected_in=1024)
        over = await s.execute(Read(lba=0, blocks=8, size=16).encode(), expected_in=2048)
        return short, over

    short, over = run(logged_in(tgtd_target, body))
    assert short.good and short.underflow and short.residual_count > 0
    assert len(short.data) == 1024 - short.residual_count  # only what the target sent
    assert over.overflow and over.residual_count == 4096 - 2048
    assert len(over.data) == 2048
