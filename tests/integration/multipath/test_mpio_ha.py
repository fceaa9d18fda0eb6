"""MPIO over an HA device: four paths to two mirrored node processes, as a cluster node sees it."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter

import pytest
from mpio_load import Writers, eventually, holds, run, writing

from harness.initiator.mpio.status import AluaState, PathState
from harness.initiator.mpio.timers import MpioTimers
from harness.lab.proxy import LinkState

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

TIMERS = MpioTimers(noop_out_interval_s=0.5, noop_out_timeout_s=1.0, link_down_time_s=0.2,
                    replacement_timeout_s=None, retry_interval_s=0.05,
                    delay_between_reconnect_s=0.3, pdo_remove_period_s=2.0,
                    disk_timeout_s=5.0, login_timeout_s=5.0)


def test_four_paths_to_two_nodes_are_one_disk_and_round_robin_uses_every_one(ha_lab):
    async def body():
        async with ha_lab.device(TIMERS) as dev:
            blocks = {lba: os.urandom(512) for lba in range(24)}
            served = Counter()
            for lba, data in blocks.items():
                served[(await dev.write(lba, data)).path] += 1
            for lba, data in blocks.items():  # read back, each through another path
                c = await dev.read(lba, 1)
                assert c.data == data
                served[c.path] += 1
            assert set(served) == {"p0", "p1", "p2", "p3"}
    run(body())


def test_killing_a_storage_node_mid_workload_loses_no_acknowledged_write(ha_lab):
    async def body():
        async with ha_lab.device(TIMERS) as dev:
            writers = await writing(dev, 4)
            await asyncio.to_thread(ha_lab.nodes[1].kill9)
            await eventually(lambda: holds(all(
                dev.path(p).state != PathState.ACTIVE for p in ("p2", "p3"))))
            gone = max(e.ns for e in dev.events if e.new == PathState.FAILED)
            await eventually(lambda: holds(sum(writers.paths_after(gone).values()) >= 40))
            await writers.stop()
            assert writers.errors == []
            assert set(writers.paths_after(gone)) <= {"p0", "p1"}
            await _every_acknowledged_write_reads_back(dev, writers)
    run(body())


def test_a_sync_cut_moves_io_off_the_refusing_node_and_back_after_resync(ha_lab):
    async def body():
        async with ha_lab.device(TIMERS) as dev:
            writers = await writing(dev, 4)
            await asyncio.to_thread(ha_lab.partner_links.set_state, ["sync"],
                                    LinkState(mode="cut"))
            # store2 (lower priority) stops serving: its ports answer NOT READY
            await eventually(lambda: holds(all(
                dev.path(p).alua not in (AluaState.ACTIVE_OPTIMIZED,
                                         AluaState.ACTIVE_NON_OPTIMIZED)
                or not dev.path(p).state.healthy for p in ("p2", "p3"))))
            await asyncio.sleep(0.5)
            cut_over = time.monotonic_ns()
            await eventually(lambda: holds(sum(writers.paths_after(cut_over).values()) >= 20))
            assert set(writers.paths_after(cut_over)) <= {"p0", "p1"}
            await writers.stop()
            assert writers.errors == []
            await asyncio.to_thread(ha_lab.partner_links.set_state, ["sync"], LinkState())
            await asyncio.to_thread(ha_lab.wait_synchronized)
            # the partner's ports serve again; the ALUA poll notices without any I/O
            await eventually(lambda: holds(all(
                dev.path(p).alua == AluaState.ACTIVE_OPTIMIZED for p in ("p2", "p3"))),
                timeout_s=30)
            served = {(await dev.read(lba, 1)).path for lba in range(8)}
            assert served == {"p0", "p1", "p2", "p3"}
    run(body())


# LinkDownTime far beyond the test's deadlines: a command kept for its dead path instead of
# re-driven on the partner's (nightly 42, episodes 24 and 37) never completes here.
LONG_HOLD = MpioTimers(**{**TIMERS.to_mapping(), "link_down_time_s": 600.0,
                          "pdo_remove_period_s": 600.0})


async def _every_acknowledged_write_reads_back(dev, writers: Writers) -> None:
    for lba, data in writers.acked.items():
        assert (await dev.read(lba, 1)).data == data, f"acknowledged LBA {lba} lost"


async def _every_writer_completes_after(writers: Writers, ns: int) -> None:
    await eventually(lambda: holds(
        {lba % writers.depth for t, _, lba in writers.completions if t > ns}
        == set(range(writers.depth))))


def test_writes_in_flight_on_a_killed_nodes_paths_are_redriven_to_the_partner(ha_lab):
    async def body():
        async with ha_lab.device(LONG_HOLD) as dev:
            writers = Writers(dev, depth=8)
            writers.start()
            await eventually(lambda: holds(len(writers.paths_after(0)) == 4))
            await asyncio.to_thread(ha_lab.nodes[1].kill9)
            await eventually(lambda: holds(all(
                not dev.path(p).state.healthy for p in ("p2", "p3"))))
            gone = max(e.ns for e in dev.events if e.new == PathState.FAILED)
            await _every_writer_completes_after(writers, gone)
            await writers.stop()
            assert writers.errors == []
            # writes were in flight on the dead node's paths, and went to the partner's
            assert dev.path("p2").stats.redriven_away + dev.path("p3").stats.redriven_away >= 1
            assert set(writers.paths_after(gone)) <= {"p0", "p1"}
            assert not any(dev.path(p).state.healthy for p in ("p2", "p3"))
            await _every_acknowledged_write_reads_back(dev, writers)
    run(body())


def test_writes_on_a_frozen_nodes_paths_are_redriven_once_the_checker_fails_them(ha_lab):
    async def body():
        async with ha_lab.device(LONG_HOLD) as dev:
            writers = Writers(dev, depth=8)
            writers.start()
            await eventually(lambda: holds(len(writers.paths_after(0)) == 4))
            frozen = ha_lab.nodes[1].pid
            os.kill(frozen, signal.SIGSTOP)
            try:
                await eventually(lambda: holds(all(
                    not dev.path(p).state.healthy for p in ("p2", "p3"))))
                failed = max(e.ns for e in dev.events if e.new == PathState.FAILED)
                await _every_writer_completes_after(writers, failed)
                assert any("path checker" in e.reason for e in dev.events.for_path("p2"))
                assert not any(dev.path(p).state.healthy for p in ("p2", "p3"))
            finally:
                os.kill(frozen, signal.SIGCONT)
            await writers.stop()
            assert writers.errors == []
            assert dev.path("p2").stats.redriven_away + dev.path("p3").stats.redriven_away >= 1
            await _every_acknowledged_write_reads_back(dev, writers)
    run(body())
