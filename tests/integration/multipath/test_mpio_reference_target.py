"""MultipathDevice against real reference target nodes on loopback, through the fault proxy."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

import pytest
from mpio_load import eventually, holds, run, writing

from harness.initiator.mpio.device import MultipathDevice
from harness.initiator.mpio.errors import AllPathsDown, PathIdentityMismatch
from harness.initiator.mpio.session_link import session_connector
from harness.initiator.mpio.status import PathState
from harness.initiator.mpio.timers import MpioTimers
from harness.peers.reference_target import lun_target

TIMERS = MpioTimers(
    noop_out_interval_s=0.5,
    noop_out_timeout_s=1.0,
    link_down_time_s=0.2,
    replacement_timeout_s=None,
    retry_interval_s=0.05,
    delay_between_reconnect_s=0.2,
    pdo_remove_period_s=1.0,
    disk_timeout_s=5.0,
    login_timeout_s=5.0,
)


def _back(dev, name):
    assert dev.path(name).state == PathState.ACTIVE
    assert any(e.reason.startswith("reconnected") for e in dev.events.for_path(name))


def test_round_robin_spreads_io_over_every_path_and_reads_back(one_node_lab):
    async def body():
        async with one_node_lab.device(TIMERS) as dev:
            assert dev.identity and dev.block_size == 512
            blocks = {lba: os.urandom(512) for lba in range(16)}
            served = Counter()
            for lba, data in blocks.items():
                served[(await dev.write(lba, data)).path] += 1
            for lba, data in blocks.items():
                c = await dev.read(lba, 1)
                assert c.data == data
                served[c.path] += 1
            assert served == Counter({"p0": 16, "p1": 16})
            await dev.flush()
    run(body())


def test_a_cut_path_moves_io_to_the_survivor_without_error_and_comes_back(one_node_lab):
    async def body():
        async with one_node_lab.device(TIMERS) as dev:
            writers = await writing(dev, 2)
            cut_ns = time.monotonic_ns()
            one_node_lab.cut(0)
            await eventually(lambda: holds(dev.path("p0").state != PathState.ACTIVE))
            failed = next(e for e in dev.events.for_path("p0") if e.new == PathState.FAILED)
            assert failed.ns >= cut_ns and failed.reason
            after = failed.ns
            await eventually(lambda: holds(writers.paths_after(after)["p1"] >= 20))
            assert writers.paths_after(after + int(TIMERS.path_hold_s * 2e9))["p0"] == 0
            one_node_lab.heal(0)
            await eventually(lambda: _back(dev, "p0"))
            healed = dev.events.for_path("p0")[-1].ns
            await eventually(lambda: holds(writers.paths_after(healed)["p0"] >= 5))
            await writers.stop()
            assert writers.errors == []
    run(body())


def test_killing_a_node_moves_io_to_the_partner_node(two_node_lab):
    async def body():
        async with two_node_lab.device(TIMERS) as dev:
            writers = await writing(dev, 2)
            await asyncio.to_thread(two_node_lab.nodes[0].kill9)
            await eventually(lambda: holds(dev.path("p0").state != PathState.ACTIVE))
            failed = next(e for e in dev.events.for_path("p0") if e.new == PathState.FAILED)
            await eventually(lambda: holds(writers.paths_after(failed.ns)["p1"] >= 20))
            await writers.stop()
            assert writers.errors == []
    run(body())


def test_all_paths_down_past_the_hold_time_fails_io_with_all_paths_down(one_node_lab):
    async def body():
        async with one_node_lab.device(TIMERS) as dev:
            await dev.write(0, bytes(512))
            one_node_lab.cut(0)
            one_node_lab.cut(1)
            with pytest.raises(AllPathsDown) as err:
                for lba in range(1000):
                    await dev.write(lba, bytes(512))
            assert err.value.held_s >= TIMERS.pdo_remove_period_s
            assert set(err.value.last_errors) == {"p0", "p1"}
            one_node_lab.heal(1)
            await eventually(lambda: _back(dev, "p1"))
            assert (await dev.write(0, bytes(512))).path == "p1"
    run(body())


def test_a_blackholed_path_is_failed_by_the_nop_out_checker(one_node_lab):
    async def body():
        async with one_node_lab.device(TIMERS) as dev:
            one_node_lab.blackhole(0)
            await eventually(lambda: holds(dev.path("p0").state != PathState.ACTIVE))
            reasons = [e.reason for e in dev.events.for_path("p0")
                       if e.new == PathState.FAILED]
            assert "path checker" in reasons[0]
            assert (await dev.write(0, bytes(512))).path == "p1"
    run(body())


def test_paths_to_different_luns_are_refused(reference_target_factory):
    node = reference_target_factory.start(targets=(lun_target(luns=2),))
    from harness.initiator.mpio.link import PathSpec

    (host, port), _ = node.portals
    specs = [PathSpec(host, port, node.iqn, lun=0, name="lun0"),
             PathSpec(host, port, node.iqn, lun=1, name="lun1")]

    async def body():
        dev = MultipathDevice(specs, connector=session_connector, timers=TIMERS)
        with pytest.raises(PathIdentityMismatch) as err:
            await dev.open()
        assert "lun0" in str(err.value) and "lun1" in str(err.value)
        a, b = err.value.identities
        assert a != b and a and b
    run(body())


def test_pr_register_lands_on_every_nexus_and_is_reinstated_after_a_cut(one_node_lab):
    async def body():
        async with one_node_lab.device(TIMERS) as dev:
            assert sorted(await dev.pr.register(0x5B01)) == ["p0", "p1"]
            assert (await dev.pr.read_keys()).keys == (0x5B01, 0x5B01)
            one_node_lab.cut(0)
            await eventually(lambda: holds(dev.path("p0").state != PathState.ACTIVE))
            one_node_lab.heal(0)
            await eventually(lambda: _back(dev, "p0"))
            assert dev.pr.reinstatements[-1].registered
            assert (await dev.pr.read_keys()).keys == (0x5B01, 0x5B01)
            await dev.pr.unregister()
            assert (await dev.pr.read_keys()).keys == ()
    run(body())
