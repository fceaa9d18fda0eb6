"""MultipathDevice against Debian's tgtd: an independent target, two I_T nexuses per disk.

tgtd has one portal here, so the two paths are two sessions (two ISIDs) to it:
two I_T nexuses, which is what SCSI multipathing and PR registration are about.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import pytest
from tenacity import AsyncRetrying, stop_after_delay, wait_fixed

from harness.initiator.mpio.device import MultipathDevice
from harness.initiator.mpio.errors import PathIdentityMismatch
from harness.initiator.mpio.session_link import PathSpec, session_connector
from harness.initiator.mpio.status import PathState
from harness.initiator.mpio.timers import MpioTimers

TIMERS = MpioTimers(noop_out_interval_s=1.0, noop_out_timeout_s=2.0, link_down_time_s=0.2,
                    replacement_timeout_s=None, retry_interval_s=0.05,
                    pdo_remove_period_s=1.0, disk_timeout_s=10.0, login_timeout_s=10.0)


def run(coro, timeout_s: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def _specs(target, luns=None, initiator="iqn.2026-11.org.splitbrain.test:mpio-tgtd", chap=None):
    luns = luns or [target.lun, target.lun]
    return [PathSpec(target.host, target.port, target.iqn, lun=lun, initiator=initiator,
                     name=f"s{i}-lun{lun}", chap=chap) for i, lun in enumerate(luns)]


def test_round_robin_over_two_nexuses_to_tgtd_reads_back_what_it_wrote(tgtd_target):
    async def body():
        async with MultipathDevice(_specs(tgtd_target), connector=session_connector,
                                   timers=TIMERS) as dev:
            assert dev.identity
            blocks = {lba * 8: os.urandom(4096) for lba in range(12)}
            served = Counter()
            for lba, data in blocks.items():
                served[(await dev.write(lba, data)).path] += 1
            for lba, data in blocks.items():
                c = await dev.read(lba, 8)
                assert c.data == data
                served[c.path] += 1
            assert sorted(served.values()) == [12, 12]
    run(body())


def test_two_different_tgtd_luns_are_refused_as_one_disk(tgtd_target_factory):
    target = tgtd_target_factory(luns=2)
    first, second = target.luns[:2]

    async def body():
        dev = MultipathDevice(_specs(target, [first, second]), connector=session_connector,
                              timers=TIMERS)
        with pytest.raises(PathIdentityMismatch) as err:
            await dev.open()
        assert f"lun{first}" in str(err.value) and f"lun{second}" in str(err.value)
    run(body())


def test_pr_register_on_tgtd_registers_every_nexus(tgtd_target):
    async def body():
        async with MultipathDevice(_specs(tgtd_target), connector=session_connector,
                                   timers=TIMERS) as dev:
            assert len(await dev.pr.register(0x7A11)) == 2
            assert (await dev.pr.read_keys()).keys == (0x7A11, 0x7A11)
            await dev.pr.unregister()
            assert (await dev.pr.read_keys()).keys == ()
    run(body())


def test_sessions_already_logged_in_are_adopted_and_logged_back_in_after_a_drop(tgtd_target):
    from harness.initiator.mpio.session_link import multipath_from_sessions
    from harness.initiator.session import Session

    async def body():
        sessions = [Session(tgtd_target.host, tgtd_target.port, tgtd_target.iqn,
                            initiator_name="iqn.2026-11.org.splitbrain.test:adopt",
                            lun=tgtd_target.lun, isid=0x80_0000_0000_10 + i) for i in range(2)]
        for s in sessions:
            await s.login()
        dev = await multipath_from_sessions(sessions, timers=TIMERS)
        try:
            first, second = (p.name for p in dev.paths)
            assert {(await dev.read(0, 1)).path for _ in range(4)} == {first, second}
            sessions[0].close()  # the adopted session drops under the device: no error
            assert len([(await dev.read(0, 1)).path for _ in range(4)]) == 4
            async for attempt in AsyncRetrying(stop=stop_after_delay(15), wait=wait_fixed(0.05),
                                               reraise=True):
                with attempt:
                    assert dev.path(first).state.healthy
            assert [e.new for e in dev.events.for_path(first)][-3:] == [
                PathState.FAILED, PathState.RECONNECTING, PathState.ACTIVE]
            assert dev._paths[0].link.session.isid == sessions[0].isid  # same I_T nexus
            assert dev._paths[0].link.session is not sessions[0]
        finally:
            await dev.close()
    run(body())


def test_every_path_logs_in_with_mutual_chap_and_a_wrong_secret_is_all_paths_down(
        tgtd_target_factory):
    from harness.initiator.mpio.errors import AllPathsDown
    from harness.initiator.mpio.link import Chap

    target = tgtd_target_factory(chap=True, mutual=True)
    c = target.chap
    good = Chap(c.user, c.secret, c.target_user, c.target_secret)
    bad = Chap(c.user, c.secret + "x", c.target_user, c.target_secret)

    async def body():
        async with MultipathDevice(_specs(target, chap=good), connector=session_connector,
                                   timers=TIMERS) as dev:
            assert len({(await dev.read(0, 1)).path for _ in range(4)}) == 2
        with pytest.raises(AllPathsDown, match="authentication failed"):
            await MultipathDevice(_specs(target, chap=bad), connector=session_connector,
                                  timers=TIMERS).open()
    run(body())
