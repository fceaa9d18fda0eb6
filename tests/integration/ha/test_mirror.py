"""Two replicas of one HA device, linked over loopback through the fault proxy.

These tests drive ``HaDevice`` directly (no iSCSI) to prove the mirror's
ordering, failure handling and resync; test_unit.py adds the SCSI logical unit
(reservations, ALUA) and tests/integration/target/ the real node processes.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from harness.target.ha.mirror import ReplicaNotServing
from harness.target.ha.replica import FailoverStrategy, InitialSync, ReplicaState
from harness.target.ha.witness import Witness
from tests.support.ha_pair import BLOCK, BLOCKS, HaPair, LinkMode, block, run, wait_for

S, NS = ReplicaState.SYNCHRONIZED, ReplicaState.NOT_SYNCHRONIZED


def test_write_through_one_replica_reads_back_through_the_other(tmp_path):
    async def scenario():
        async with HaPair(tmp_path) as lab:
            await lab.in_sync()
            await lab.a.write(10, block(1, 8))
            assert await lab.b.read(10, 8) == block(1, 8)
            await lab.b.write(100, block(2, 4))  # forwarded to the sequencer
            assert await lab.a.read(100, 4) == block(2, 4)
            assert lab.a.is_sequencer and not lab.b.is_sequencer
    run(scenario())


def test_concurrent_overlapping_writes_through_both_leave_identical_replicas(tmp_path):
    async def scenario():
        async with HaPair(tmp_path) as lab:
            await lab.in_sync()
            rnd = random.Random(7)
            # Hundreds of writes in flight at once into a 16-block hot region,
            # half through each node: heavy overlap, arbitrary interleaving.
            for burst in range(4):
                writes = []
                for i in range(200):
                    dev = lab.a if i % 2 else lab.b
                    lba = rnd.randrange(0, 16)
                    writes.append(dev.write(lba, block(burst * 1000 + i, rnd.randrange(1, 5))))
                await asyncio.gather(*writes)
            await lab.a.flush()
            await lab.b.flush()
            assert await lab.a.read(0, 32) == await lab.b.read(0, 32)
            assert lab.images_equal()
    run(scenario())


def test_sync_cut_with_heartbeat_alive_stops_the_lower_priority_replica(tmp_path):
    async def scenario():
        async with HaPair(tmp_path) as lab:
            await lab.in_sync()
            await lab.a.write(0, block(1))
            lab.fault(["sync"], LinkMode.CUT)
            await wait_for(lambda: lab.b.state is NS)
            with pytest.raises(ReplicaNotServing) as refused:
                await lab.b.read(0, 1)
            assert (refused.value.asc, refused.value.ascq) == (0x04, 0x0C)
            await wait_for(lambda: lab.a.meta.alone)
            await lab.a.write(1, block(2))  # the survivor serves and tracks the change
            assert len(lab.a.dirty) >= 1 and lab.a.state is S
            lab.fault(["sync"], LinkMode.PASS)
            await lab.in_sync()
            assert "resync fast" in " ".join(lab.a.meta.events)
            assert await lab.b.read(1, 1) == block(2)
            assert lab.images_equal()
    run(scenario())


def test_black_holed_sync_is_detected_by_silence(tmp_path):
    async def scenario():
        async with HaPair(tmp_path) as lab:
            await lab.in_sync()
            lab.fault(["sync"], LinkMode.BLACKHOLE)
            write = asyncio.ensure_future(lab.a.write(5, block(5)))
            await asyncio.wait_for(write, timeout=10)  # completes once a carries on alone
            assert lab.a.meta.alone and lab.b.state is NS
            # b stopped: fenced by a over the heartbeat link (FENCE/FENCED), or on its own
            # decision if that came first (a loaded machine)
            assert any("fenced this replica" in e or "stopped serving" in e
                       for e in lab.b.meta.events)
            lab.fault(["sync"], LinkMode.PASS)
            await lab.in_sync()
            assert lab.images_equal()
    run(scenario())


def test_sync_and_heartbeat_cut_is_split_brain_and_reconnect_says_so(tmp_path):
    async def scenario():
        async with HaPair(tmp_path) as lab:
            await lab.in_sync()
            lab.fault(["sync", "heartbeat"], LinkMode.CUT)
            await wait_for(lambda: lab.a.meta.alone and lab.b.meta.alone)
            await lab.a.write(3, block(30))
            await lab.b.write(3, block(31))  # both serve: diverged
            assert lab.b.state is S
            lab.fault(["sync", "heartbeat"], LinkMode.PASS)
            await wait_for(lambda: lab.a.state is NS and lab.b.state is NS, timeout=10)
            assert all(any("split brain" in e for e in d.meta.events) for d in (lab.a, lab.b))
            assert await lab.stores["b"].read(3, 1) == block(31)  # nothing merged silently
            lab.b.mark_synchronized()  # the administrator keeps b's data
            await lab.in_sync()
            assert await lab.a.read(3, 1) == block(31)
            assert lab.images_equal()
    run(scenario())


def test_clean_stop_and_return_resyncs_only_dirty_regions(tmp_path):
    async def scenario():
        async with HaPair(tmp_path) as lab:
            await lab.in_sync()
            await lab.stop("b")
            await wait_for(lambda: lab.a.meta.alone)
            await lab.a.write(2048, block(9, 16))
            await lab.start("b")
            await lab.in_sync()
            assert "resync fast" in " ".join(lab.a.meta.events)
            assert lab.images_equal()
    run(scenario())


def test_stale_replica_refuses_after_double_failure_until_marked(tmp_path):
    async def scenario():
        async with HaPair(tmp_path) as lab:
            await lab.in_sync()
            await lab.crash("b")
            await wait_for(lambda: lab.a.meta.alone)
            await lab.a.write(7, block(70))  # only a has this
            await lab.crash("a")
            await lab.start("b")  # b alone: it cannot know a went ahead
            assert lab.b.state is NS
            with pytest.raises(ReplicaNotServing):
                await lab.b.read(7, 1)
            lab.b.mark_synchronized()
            assert await lab.b.read(7, 1) != block(70)  # b serves its own (older) data
            await lab.b.write(8, block(80))
            await lab.start("a")  # a returns: the marked replica is the source
            await lab.in_sync()
            assert await lab.a.read(8, 1) == block(80)
            assert lab.images_equal()
    run(scenario())


def test_node_majority_lets_only_the_witness_holder_serve(tmp_path):
    async def scenario():
        w = Witness(tmp_path / "witness.json")
        host, port = await w.start("127.0.0.1", 0)
        try:
            async with HaPair(tmp_path, strategy=FailoverStrategy.NODE_MAJORITY,
                           witness=(host, port)) as lab:
                await lab.in_sync()
                lab.fault(["sync", "heartbeat"], LinkMode.CUT)
                await wait_for(lambda: {lab.a.state, lab.b.state} == {S, NS}
                               and (lab.a.meta.alone or lab.b.meta.alone))
                serving = [d for d in (lab.a, lab.b) if d.state is S]
                assert len(serving) == 1  # never both: no split brain
        finally:
            await w.close()
    run(scenario())


def test_initial_sync_from_partner_copies_the_chosen_replica(tmp_path):
    async def scenario():
        # a's image already holds data; b's holds other data that must not survive
        for node, byte in (("a", 0xAA), ("b", 0xBB)):
            (tmp_path / f"{node}.img").write_bytes(bytes([byte]) * BLOCK * BLOCKS)
        async with HaPair(tmp_path, initial_sync=InitialSync.FROM_PARTNER) as lab:
            await lab.in_sync()
            assert "resync full" in " ".join(lab.a.meta.events)
            assert await lab.b.read(BLOCKS - 1, 1) == bytes([0xAA]) * BLOCK
            assert lab.images_equal()
    run(scenario())


def test_initial_sync_clear_zeroes_both_replicas(tmp_path):
    async def scenario():
        for node, byte in (("a", 0xAA), ("b", 0xBB)):
            (tmp_path / f"{node}.img").write_bytes(bytes([byte]) * BLOCK * BLOCKS)
        async with HaPair(tmp_path, initial_sync=InitialSync.CLEAR) as lab:
            await lab.in_sync()
            assert await lab.a.read(0, 1) == await lab.b.read(0, 1) == bytes(BLOCK)
            assert lab.images_equal()
    run(scenario())


def test_marking_is_refused_while_a_synchronized_partner_is_connected(tmp_path):
    from harness.target.ha.administration import MarkRefused

    async def scenario():
        async with HaPair(tmp_path) as lab:
            await lab.in_sync()
            with pytest.raises(MarkRefused, match="nothing to override"):
                lab.b.mark_synchronized()
            assert not lab.b.meta.forced
    run(scenario())


def test_black_hole_during_resync_then_heal_resynchronizes(tmp_path):
    """While the sync link is black-holed the dialer keeps reconnecting and the proxy
    holds every attempt; on heal they all arrive at once. Only the newest becomes
    the partner session, and the resync completes (found by `splitbrain run`)."""
    async def scenario():
        async with HaPair(tmp_path) as lab:
            await lab.in_sync()
            await lab.stop("b")
            await wait_for(lambda: lab.a.meta.alone)
            for lba in range(0, BLOCKS, 64):
                await lab.a.write(lba, block(lba, 8))
            lab.a.dirty.mark_all()  # a long resync, to interrupt
            await lab.start("b")
            await wait_for(lambda: lab.a.resync is not None)
            lab.fault(["sync"], LinkMode.BLACKHOLE)
            await wait_for(lambda: lab.b.state is NS, timeout=10)
            await asyncio.sleep(2 * lab.a.config.timeouts.sync_s)  # several held attempts
            lab.fault(["sync"], LinkMode.PASS)
            await lab.in_sync()
            assert lab.images_equal()
    run(scenario())
