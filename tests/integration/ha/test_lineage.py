"""Both replicas Not synchronized: the device picks the source from generations.

The 10-minute nightly (seed 42) ended with an administrator marking the outdated
replica and then thousands of stale reads. Its shape, on the in-process pair
(tests/support/ha_pair.py) with the node's disk-fault layer under replica ``b``:

1. ``a`` (the primary) is killed; ``b`` carries on alone (generation + 1) and
   acknowledges writes;
2. ``a`` returns, outdated; ``b`` becomes the source of ``a``'s resync;
3. ``b``'s disk fails a mirrored write (EIO): ``b`` detaches (Not synchronized), the
   write is not acknowledged (MEDIUM ERROR: ``a`` was only Synchronizing); ``a``'s
   resync is cut short (Not synchronized, its image incomplete);
4. the disk heals.

Before the fix both replicas stayed Not synchronized ("neither replica is synchronized:
mark one as synchronized"). Now ``b`` (complete, its generation descends from ``a``'s)
is the source: both end Synchronized, identical, with every acknowledged write, and no
administrator. Case 2 of the nightly is the same with ``b`` losing power while alone
(its dirty map is gone: a full copy). The real-process version is
``test_lineage_nodes.py``.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from harness.target.blockstore import BlockStoreError
from harness.target.disk_faults import DiskFaultSpec, FaultyStore
from harness.target.ha.administration import MarkRefused
from harness.target.ha.mirror import HaDevice
from harness.target.ha.replica import ReplicaNotServing, ReplicaState
from tests.support.ha_pair import HaPair, block, run, wait_for

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

S, SI, NS = (ReplicaState.SYNCHRONIZED, ReplicaState.SYNCHRONIZING,
             ReplicaState.NOT_SYNCHRONIZED)


def faulty(dev: HaDevice) -> FaultyStore:
    if not isinstance(dev.store, FaultyStore):
        dev.store = FaultyStore(dev.store, where=dev.config.node)  # type: ignore[assignment]
    return dev.store  # type: ignore[return-value]


def fault(store: FaultyStore, kind: str, lba: int, count: int, delay_ms: float = 0.0) -> str:
    spec = DiskFaultSpec(id=f"{kind}-{store.where}", target="t", lun=0, kind=kind, lba=lba,
                         count=count, delay_ms=delay_ms)
    store.add(spec)
    return spec.id


async def both_not_synchronized_after_the_survivors_disk_failed(pair: HaPair, *,
                                                                power_loss: bool) -> None:
    """Steps 1-3 of the module docstring; returns with both Not synchronized."""
    await pair.in_sync()
    await pair.a.write(10, block(1))
    await pair.crash("a")
    await wait_for(lambda: pair.b.meta.alone and pair.b.state is S, timeout=10)
    await pair.b.write(20, block(2))  # acknowledged by b alone
    if power_loss:  # nightly case 2: b restarts, still the lone survivor
        await pair.crash("b")
        await pair.start("b")
        await wait_for(lambda: pair.b.state is S)
        await pair.b.write(21, block(3))
    disk = faulty(pair.b)
    # the resync's first copy (region 0) waits on b's slow disk, so a stays Synchronizing
    # while a client write hits b's failing block
    fault(disk, "slow", 0, 128, delay_ms=30_000)
    fault(disk, "eio", 500, 1)
    await pair.start("a")
    await wait_for(lambda: pair.a.state is SI and pair.b.state is S and pair.b.mirroring
                   and pair.b.partner_state is SI, timeout=10)
    with pytest.raises(BlockStoreError):  # a is only Synchronizing: the medium error
        await pair.b.write(500, block(4))
    await wait_for(lambda: pair.a.state is NS and pair.b.state is NS
                   and pair.a.meta.state is NS and pair.b.meta.state is NS)
    assert pair.b.meta.consistent and pair.b.meta.alone
    assert not pair.a.meta.consistent  # an unfinished resync target


@pytest.mark.parametrize("power_loss", [False, True], ids=["case-1", "case-2-power-loss"])
def test_the_newest_complete_replica_becomes_the_source_without_an_administrator(
        tmp_path, power_loss):
    async def body() -> None:
        async with HaPair(tmp_path) as pair:
            await both_not_synchronized_after_the_survivors_disk_failed(
                pair, power_loss=power_loss)
            # the nightly's administrator marked the outdated side here: refused now
            with pytest.raises(MarkRefused, match="partner b holds newer data"):
                pair.a.mark_synchronized()
            assert not pair.a.meta.forced and pair.a.state is NS
            await pair.crash("a")  # the nightly's primary lost power here too:
            await pair.start("a")  # after its restart it still knows b went ahead
            with pytest.raises(MarkRefused, match="partner b holds newer data"):
                pair.a.mark_synchronized()
            for spec in list(faulty(pair.b).faults):  # the disk heals
                faulty(pair.b).remove(spec)
            await wait_for(lambda: pair.a.state is S and pair.b.state is S
                           and pair.a.partner_state is S and pair.b.partner_state is S
                           and pair.a.mirroring, timeout=20)
            assert pair.images_equal()
            assert await pair.a.read(10, 1) == block(1)
            assert await pair.a.read(20, 1) == block(2)  # acknowledged by b alone
            if power_loss:
                assert await pair.a.read(21, 1) == block(3)
            events = " | ".join((*pair.a.meta.events, *pair.b.meta.events))
            assert "marked synchronized" not in events
            assert "from b: neither replica is synchronized; b is the newest" in events
            assert pair.a.meta.consistent and pair.b.meta.consistent
            assert not pair.a.status()["needs_administrator"]
    run(body())


def test_true_split_brain_still_waits_for_the_administrator_after_a_disk_failure(tmp_path):
    """Both carried on alone (sync and heartbeat partitioned past the fence), then one
    side's disk failed: the rule must not pick either side."""
    from tests.support.ha_pair import LinkMode

    async def body() -> None:
        async with HaPair(tmp_path, sync_s=0.5) as pair:
            await pair.in_sync()
            pair.fault(["sync", "heartbeat"], LinkMode.CUT)
            await wait_for(lambda: pair.a.meta.alone and pair.b.meta.alone, timeout=10)
            await pair.a.write(1, block(5))
            await pair.b.write(2, block(6))
            pair.fault(["sync", "heartbeat"], LinkMode.PASS)
            await wait_for(lambda: any("split brain" in e for e in pair.a.meta.events)
                           and any("split brain" in e for e in pair.b.meta.events), timeout=10)
            await asyncio.sleep(1.0)  # nothing more happens by itself
            assert pair.a.state is NS and pair.b.state is NS
            assert pair.a.status()["needs_administrator"] and pair.b.needs_administrator
            pair.a.mark_synchronized()  # the administrator keeps a's side
            await pair.in_sync()
            assert not pair.a.needs_administrator and not pair.b.needs_administrator
            assert pair.images_equal()
    run(body())


def test_no_future_exception_is_left_unretrieved_when_the_sync_link_is_lost(tmp_path):
    """The nodes logged "Future exception was never retrieved ... ReplicaNotServing('HA
    device HA2: sync link lost')" by the dozen: the sequencer's futures for the partner's
    answer to an ORDER nobody awaits (a forwarded write's, or one whose local write
    failed) were failed with the link and dropped."""
    async def body() -> None:
        loop = asyncio.get_running_loop()
        seen: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: seen.append(context))
        async with HaPair(tmp_path) as pair:
            await pair.in_sync()
            # forwarded writes: the sequencer a keeps a future for b's ACK of each ORDER
            await asyncio.gather(*(pair.b.write(lba, block(lba)) for lba in range(8)))
            # a's local write fails after its ORDER left: its ACK future is never awaited
            fault(faulty(pair.a), "eio", 30, 1)
            with pytest.raises(ReplicaNotServing):
                await pair.a.write(30, block(9))
            await wait_for(lambda: pair.a.state is NS and pair.b.meta.alone, timeout=10)
            await asyncio.sleep(0.1)
        gc.collect()
        await asyncio.sleep(0)
        unretrieved = [c for c in seen if "never retrieved" in str(c.get("message"))]
        assert not unretrieved, unretrieved
    run(body())


def test_both_stopped_at_the_same_generation_resync_by_priority_when_they_meet(tmp_path):
    """Node majority, witness unreachable, sync and heartbeat cut: both replicas stop
    (neither carried on alone, so every acknowledged write is on both). When they meet
    again the higher-priority one is the source, without an administrator (before: both
    stayed Not synchronized until one was marked)."""
    from harness.target.ha.replica import FailoverStrategy
    from tests.support.ha_pair import LinkMode, free_port

    async def body() -> None:
        async with HaPair(tmp_path, sync_s=0.5, strategy=FailoverStrategy.NODE_MAJORITY,
                          witness=("127.0.0.1", free_port())) as pair:
            await pair.in_sync()
            await pair.b.write(5, block(7))
            generation = pair.a.meta.generation
            pair.fault(["sync", "heartbeat"], LinkMode.CUT)
            await wait_for(lambda: pair.a.meta.state is NS and pair.b.meta.state is NS,
                           timeout=10)
            assert not pair.a.meta.alone and not pair.b.meta.alone
            assert pair.a.meta.generation == pair.b.meta.generation == generation
            pair.fault(["sync", "heartbeat"], LinkMode.PASS)
            await pair.in_sync()
            assert "resync" in pair.a.meta.events[-1] and "to b" in " ".join(pair.a.meta.events)
            assert not any("marked synchronized" in e for e in pair.a.meta.events)
            assert pair.images_equal() and await pair.b.read(5, 1) == block(7)
    run(body())
