"""Compound failures of the in-process HA pair that once broke the device (issue 11).

Each regression test reproduces one defect a review found; the same behaviour is
still available as a named defect mode (harness.target.defects), and the test
beside it proves the mode still shows it (what the defect zoo relies on):

- both sides carried on alone (sync and heartbeat partitioned past the fence):
  split brain is reported and both stay Not synchronized until an administrator
  marks one side, never silently merged; a partition healed inside the fence
  stops one side instead (each hears the other before its gate opens);
- a write is never acknowledged by one node alone before its decision to carry
  on alone is taken and persisted (node majority: it lost the witness vote);
- an ORDER the partner does not acknowledge within the sync timeout takes the
  partner out, even while the partner keeps answering keepalives;
- the sequencer crashes between its ORDER and its own write: its activity log
  names the region after the restart (the real-process version is in
  test_nodes.py).
"""

from __future__ import annotations

import asyncio

import pytest

from harness.target.defects import Defect
from harness.target.ha.replica import FailoverStrategy, ReplicaNotServing, ReplicaState
from harness.target.ha.witness import Witness
from tests.support.ha_pair import BLOCK, HaPair, LinkMode, block, run, wait_for

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

S, NS = ReplicaState.SYNCHRONIZED, ReplicaState.NOT_SYNCHRONIZED


def defects(*modes: Defect) -> frozenset[Defect]:
    return frozenset(modes)


async def both_carry_on_alone(pair: HaPair) -> None:
    """Partition sync and heartbeat until both carried on alone; each side takes a
    write; then heal."""
    await pair.in_sync()
    pair.fault(["sync", "heartbeat"], LinkMode.BLACKHOLE)
    # both found the heartbeat silent for the whole fence and carried on alone
    await wait_for(lambda: pair.a.meta.alone and pair.b.meta.alone)
    await asyncio.gather(pair.a.write(5, block(1)), pair.b.write(5, block(2)))
    pair.fault(["sync", "heartbeat"], LinkMode.PASS)


def test_partition_healed_inside_the_fence_stops_one_side_instead_of_splitting(tmp_path):
    """Both sides found the heartbeat silent and wait out the fence (writes wait at the
    gate) when the partition heals: each hears the other's heartbeat before its gate
    opens, so they decide as for a live partner (one stops, FENCED) instead of both
    carrying on alone. One write lands, the other is refused; no split brain."""
    async def scenario():
        async with HaPair(tmp_path) as pair:
            await pair.in_sync()
            pair.fault(["sync", "heartbeat"], LinkMode.BLACKHOLE)
            await wait_for(lambda: pair.a.failover_phase == pair.b.failover_phase == "fencing")
            on_a = asyncio.ensure_future(pair.a.write(5, block(1)))  # wait at the gate ...
            on_b = asyncio.ensure_future(pair.b.write(5, block(2)))
            pair.fault(["sync", "heartbeat"], LinkMode.PASS)  # healed inside the fence
            results = await asyncio.gather(on_a, on_b, return_exceptions=True)
            landed = [seed for seed, r in zip((1, 2), results, strict=True) if r is None]
            refused = [r for r in results if isinstance(r, ReplicaNotServing)]
            assert len(landed) == 1 and len(refused) == 1, results
            assert not (pair.a.meta.alone and pair.b.meta.alone)
            await pair.in_sync()
            events = " ".join(pair.a.meta.events + pair.b.meta.events)
            assert "split brain" not in events
            assert await pair.b.read(5, 1) == block(landed[0])
            assert pair.images_equal()
    run(scenario())


def test_partition_that_outlasts_the_fence_is_reported_as_split_brain(tmp_path):
    async def scenario():
        async with HaPair(tmp_path) as pair:
            await both_carry_on_alone(pair)
            await wait_for(lambda: all(any("split brain" in e for e in d.meta.events)
                                       for d in (pair.a, pair.b)), timeout=10)
            await asyncio.sleep(0.5)  # nothing merges them behind the administrator's back
            assert (pair.a.state, pair.b.state) == (NS, NS)
            with pytest.raises(ReplicaNotServing):
                await pair.b.read(5, 1)
            assert await pair.stores["a"].read(5, 1) == block(1)  # nothing was overwritten
            assert await pair.stores["b"].read(5, 1) == block(2)
            pair.a.mark_synchronized()  # the administrator keeps a's data
            await pair.in_sync()
            assert await pair.b.read(5, 1) == block(1)
            assert pair.images_equal()
    run(scenario())


def test_merge_after_split_brain_defect_silently_loses_an_acknowledged_write(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, defects=defects(Defect.MERGE_AFTER_SPLIT_BRAIN)) as pair:
            await both_carry_on_alone(pair)
            await pair.in_sync()  # both Synchronized again ...
            kept = (await pair.stores["a"].read(5, 1), await pair.stores["b"].read(5, 1))
            assert kept[0] != block(1) or kept[1] != block(2)  # ... and a write is gone
    run(scenario())


async def write_in_the_decision_window(tmp_path, modes: frozenset[Defect]) -> bool:
    """Node majority, b wins the vote; a write reaches a in the loop turn a notices the
    loss. Whether a acknowledged a write that the survivor b does not have."""
    w = Witness(tmp_path / "witness.json")
    host, port = await w.start("127.0.0.1", 0)
    try:
        async with HaPair(tmp_path, strategy=FailoverStrategy.NODE_MAJORITY,
                          witness=(host, port), defects=modes) as pair:
            await pair.in_sync()
            w.claim("HA1", "b", pair.b.meta.generation + 1)  # b will win the vote
            pair.fault(["sync", "heartbeat"], LinkMode.BLACKHOLE)
            write = asyncio.ensure_future(pair.a.write(5, block(5)))
            pair.a.session_link.fail("sync lost (test)")
            try:
                await write
                acknowledged = True
            except ReplicaNotServing:
                acknowledged = False
            await wait_for(lambda: pair.b.meta.alone and pair.a.state is NS, timeout=10)
            return acknowledged and await pair.b.read(5, 1) != block(5)
    finally:
        await w.close()


def test_no_write_is_acknowledged_alone_before_the_witness_vote(tmp_path):
    assert not run(write_in_the_decision_window(tmp_path, defects())), \
        "acknowledged write lost"


def test_ack_before_failover_decision_defect_loses_an_acknowledged_write(tmp_path):
    assert run(write_in_the_decision_window(
        tmp_path, defects(Defect.ACK_BEFORE_FAILOVER_DECISION)))


def hang_apply(pair: HaPair, node: str) -> asyncio.Event:
    """``node``'s disk hangs on every mirrored change; its links stay healthy."""
    stalled = asyncio.Event()

    async def never(*args, **kwargs):
        stalled.set()
        await asyncio.Event().wait()
    pair.devices[node]._apply = never
    return stalled


def test_an_order_not_acknowledged_in_time_takes_the_partner_out(tmp_path):
    async def scenario():
        async with HaPair(tmp_path) as pair:
            await pair.in_sync()
            stalled = hang_apply(pair, "b")
            await asyncio.wait_for(pair.a.write(9, block(9)), timeout=15)
            assert stalled.is_set()
            assert pair.a.meta.alone and pair.a.state is S
            assert any("not acknowledged" in e for e in pair.a.meta.events)
    run(scenario())


def test_no_order_timeout_defect_hangs_the_write(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, defects=defects(Defect.NO_ORDER_TIMEOUT)) as pair:
            await pair.in_sync()
            stalled = hang_apply(pair, "b")
            write = asyncio.ensure_future(pair.a.write(9, block(9)))
            await asyncio.sleep(4 * pair.sync_s)  # far past the sync timeout
            assert stalled.is_set() and not write.done() and not pair.a.meta.alone
            write.cancel()
    run(scenario())


async def crash_between_order_and_local_write(pair: HaPair) -> None:
    """a's ORDER reaches b, a's own write hangs, a crashes; b carries on, a returns."""
    await pair.in_sync()
    inner = pair.stores["a"].write
    hung = asyncio.Event()

    async def hanging(lba, data, *, fua=False):
        if lba == 2048:
            hung.set()
            await asyncio.Event().wait()
        await inner(lba, data, fua=fua)
    pair.a.store.write = hanging  # type: ignore[method-assign]
    write = asyncio.ensure_future(pair.a.write(2048, block(7)))
    await wait_for(lambda: hung.is_set())
    def on_b() -> bool:
        with open(pair.tmp / "b.img", "rb") as f:
            f.seek(2048 * BLOCK)
            return f.read(BLOCK) == block(7)
    await wait_for(on_b)
    await pair.crash("a")
    write.cancel()
    await wait_for(lambda: pair.b.meta.alone, timeout=10)
    await pair.start("a")
    await pair.in_sync()


def test_activity_log_resyncs_the_block_a_crashed_sequencer_left_different(tmp_path):
    async def scenario():
        async with HaPair(tmp_path) as pair:
            await crash_between_order_and_local_write(pair)
            assert pair.images_equal()
    run(scenario())


def test_resync_without_activity_log_defect_leaves_the_block_different(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, defects=defects(Defect.RESYNC_WITHOUT_ACTIVITY_LOG)) \
                as pair:
            await crash_between_order_and_local_write(pair)
            assert not pair.images_equal()
    run(scenario())


def test_both_crash_mid_write_and_the_activity_logs_resync_only_the_hot_region(tmp_path):
    async def scenario():
        async with HaPair(tmp_path) as pair:
            await pair.in_sync()
            await pair.a.write(100, block(100))  # an older, completed write elsewhere
            inner = pair.stores["a"].write
            hung = asyncio.Event()

            async def hanging(lba, data, *, fua=False):
                if lba == 2048:
                    hung.set()
                    await asyncio.Event().wait()
                await inner(lba, data, fua=fua)
            pair.a.store.write = hanging  # type: ignore[method-assign]
            write = asyncio.ensure_future(pair.a.write(2048, block(7)))

            def on_b() -> bool:
                with open(pair.tmp / "b.img", "rb") as f:
                    f.seek(2048 * BLOCK)
                    return f.read(BLOCK) == block(7)
            await wait_for(on_b)  # the ORDER reached b; a's own write hangs
            await pair.crash("a")
            await pair.crash("b")  # a total blackout
            write.cancel()
            await pair.start("a")
            await pair.start("b")
            await pair.in_sync()
            assert "resync fast" in " ".join(pair.a.meta.events[-3:])  # not a full copy
            assert "activity logs" in pair.a.last_plan
            assert pair.images_equal()
    run(scenario())


def test_a_sequencer_disk_hang_does_not_take_out_the_partner_that_forwarded(tmp_path):
    """A forwarded write held by the sequencer's hung disk waits; the replica that asked
    stays Synchronized (chaos sequencer-dies-with-its-writer: a forwarded-write timeout
    that failed the sync link made the asker, the lower priority, stop serving, leaving
    only the replica with the hung disk). When the disk recovers the write completes."""
    async def body():
        async with HaPair(tmp_path) as pair:
            await pair.in_sync()
            inner = pair.stores["a"].write
            release = asyncio.Event()

            async def hung(lba, data, *, fua=False):  # type: ignore[no-untyped-def]
                if lba == 80:
                    await release.wait()
                await inner(lba, data, fua=fua)
            pair.a.store.write = hung  # type: ignore[method-assign]
            forwarded = asyncio.ensure_future(pair.b.write(80, block(80)))
            await asyncio.sleep(3 * pair.sync_s)  # far past the sync timeout
            assert not forwarded.done()
            assert pair.b.state is S and pair.a.state is S and not pair.a.meta.alone
            release.set()
            await asyncio.wait_for(forwarded, 30)
            assert await pair.a.read(80, 1) == await pair.b.read(80, 1) == block(80)
    run(body())


def test_a_send_that_raises_leaves_no_range_locked(tmp_path):
    """A send that raises between a write's range lock and its local write (uvloop on a
    transport that closed under it) must not leave the range locked: before, every later
    I/O overlapping it waited for ever."""
    async def body():
        async with HaPair(tmp_path) as pair:
            await pair.in_sync()
            link = pair.a.session_link
            real = link.send

            def closed_under_us(msg):  # type: ignore[no-untyped-def]
                link.send = real
                raise AttributeError("'NoneType' object has no attribute 'getpeername'")
            link.send = closed_under_us
            with pytest.raises(AttributeError):
                await pair.a.write(60, block(60))
            await asyncio.wait_for(pair.a.write(60, block(61)), 30)
            assert await pair.a.read(60, 1) == block(61)
            assert pair.a.locks.pending() == []
    run(body())


def test_writes_forwarded_to_a_crashed_sequencer_fail_over_before_the_decision(tmp_path):
    """A write forwarded to the sequencer cannot complete once the link it went on is
    lost (its answer could only come back there): it is refused at once, as
    transitioning, so MPIO re-drives it while the survivor still decides (the killed
    primary's blackout), not after the fence and MPIO's retry interval on top."""
    async def body():
        async with HaPair(tmp_path) as pair:
            await pair.in_sync()
            pair.a._on_write_request = lambda link, msg: None  # a dies with it pending
            forwarded = asyncio.ensure_future(pair.b.write(70, block(70)))
            await wait_for(lambda: len(pair.b._forwarded) == 1)
            await pair.crash("a")
            with pytest.raises(ReplicaNotServing) as refused:
                await asyncio.wait_for(forwarded, 30)
            assert refused.value.transitioning  # MPIO retries it
            assert not pair.b.meta.alone  # refused before the decision to carry on alone
            await wait_for(lambda: pair.b.meta.alone and pair.b.failover_phase is None)
            await pair.b.write(70, block(71))  # the re-driven write, on the survivor
            assert await pair.b.read(70, 1) == block(71)
    run(body())
