"""A replica whose disk fails an I/O leaves the device; the partner serves (DRBD's
``on-io-error detach``, docs/ha.md "A disk failure").

In-process pair (tests/support/ha_pair.py) with each replica's image behind the
node's own disk-fault layer (``FaultyStore``):

- a READ that hits the failing disk of one replica while its partner is
  Synchronized takes that replica out (Not synchronized, persisted) and answers
  NOT READY / target port unavailable, which MPIO re-drives on the partner; it
  never returns the medium error while another copy can serve it;
- the same for a write whose local part fails on the sequencer after its ORDER
  left: the partner marks the regions the failed replica had in flight dirty (the
  GOODBYE names them), so the resync after the disk heals copies them back and the
  images end identical;
- a replica that is the only copy returns the medium error (nothing else holds the
  data) and keeps serving.

The real-process version, through MPIO, is ``test_disk_failure_nodes.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from harness.target.blockstore import BlockStoreError
from harness.target.disk_faults import DiskFaultSpec, FaultyStore
from harness.target.ha.mirror import HaDevice
from harness.target.ha.replica import ReplicaNotServing, ReplicaState
from tests.support.ha_pair import BLOCKS, HaPair, LinkMode, block, run, wait_for

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

S, NS = ReplicaState.SYNCHRONIZED, ReplicaState.NOT_SYNCHRONIZED


def faulty(dev: HaDevice) -> FaultyStore:
    """Put the node's disk-fault layer under the replica (as lu_binding does on a node)."""
    if not isinstance(dev.store, FaultyStore):
        dev.store = FaultyStore(dev.store, where=dev.config.node)  # type: ignore[assignment]
    return dev.store  # type: ignore[return-value]


def eio(store: FaultyStore, lba: int = 0, count: int = BLOCKS) -> DiskFaultSpec:
    spec = DiskFaultSpec(id=f"eio-{store.where}", target="t", lun=0, kind="eio", lba=lba,
                         count=count)
    store.add(spec)
    return spec


async def detached(pair: HaPair, failed: str) -> None:
    """``failed`` left the device; the other replica carries on alone."""
    other = "a" if failed == "b" else "b"
    await wait_for(lambda: pair.devices[failed].state is NS
                   and pair.devices[failed].meta.state is NS
                   and pair.devices[other].state is S and pair.devices[other].meta.alone)


def test_a_read_on_the_secondarys_failing_disk_detaches_it_and_the_partner_serves(tmp_path):
    async def body():
        async with HaPair(tmp_path) as pair:
            await pair.in_sync()
            await pair.a.write(10, block(1))
            disk = eio(faulty(pair.b))
            with pytest.raises(ReplicaNotServing) as refused:
                await pair.b.read(10, 1)
            assert (refused.value.asc, refused.value.ascq) == (0x04, 0x0C)  # MPIO re-drives
            await detached(pair, "b")
            assert any("disk failure" in e for e in pair.b.meta.events)
            assert await pair.a.read(10, 1) == block(1)  # where MPIO re-drives it
            await pair.a.write(11, block(2))  # the survivor goes on alone
            with pytest.raises(ReplicaNotServing):  # the failed replica serves nothing
                await pair.b.read(11, 1)
            disk_was = faulty(pair.b).remove(disk.id)
            assert disk_was is not None
            await pair.in_sync()  # the disk healed: a resync brings it back
            assert pair.images_equal()
    run(body())


def test_a_read_on_the_sequencers_failing_disk_detaches_it_and_the_partner_serves(tmp_path):
    async def body():
        async with HaPair(tmp_path) as pair:
            await pair.in_sync()
            await pair.b.write(20, block(3))  # forwarded to the sequencer a
            disk = eio(faulty(pair.a))
            with pytest.raises(ReplicaNotServing):
                await pair.a.read(20, 1)
            await detached(pair, "a")
            assert await pair.b.read(20, 1) == block(3)
            await pair.b.write(21, block(4))
            faulty(pair.a).remove(disk.id)
            await pair.in_sync()
            assert pair.images_equal()
    run(body())


def test_a_failed_local_write_on_the_sequencer_is_resynced_back_after_the_heal(tmp_path):
    """The ORDER reached the partner, the sequencer's own write failed: the partner
    holds data the failed replica lacks. Before the fix the partner's dirty map did
    not name that region, the fast resync skipped it, and both replicas ended
    Synchronized with different data; the caller got the medium error."""
    async def body():
        async with HaPair(tmp_path) as pair:
            await pair.in_sync()
            await pair.a.write(30, block(5))
            disk = eio(faulty(pair.a), lba=30, count=1)
            with pytest.raises(ReplicaNotServing):  # re-driven by MPIO, not an error
                await pair.a.write(30, block(6))
            await detached(pair, "a")
            assert await pair.b.read(30, 1) == block(6)
            assert pair.b.dirty.is_dirty(30 // pair.b.dirty.blocks_per_region)
            faulty(pair.a).remove(disk.id)
            await pair.in_sync()
            assert pair.images_equal()
            assert await pair.a.read(30, 1) == block(6)
    run(body())


def test_the_only_copy_returns_the_medium_error_and_keeps_serving(tmp_path):
    async def body():
        async with HaPair(tmp_path) as pair:
            await pair.in_sync()
            await pair.a.write(40, block(7))
            pair.fault(["sync"], LinkMode.CUT)  # heartbeat alive: b stops, a carries on
            await wait_for(lambda: pair.a.meta.alone and pair.b.state is NS)
            eio(faulty(pair.a), lba=40, count=1)
            with pytest.raises(BlockStoreError):  # nothing else holds it: the medium error
                await pair.a.read(40, 1)
            with pytest.raises(BlockStoreError):
                await pair.a.write(40, block(8))
            assert pair.a.state is S  # the last copy does not detach itself
            await pair.a.write(41, block(9))
            assert await pair.a.read(41, 1) == block(9)
    run(body())


def test_a_replica_whose_disk_keeps_failing_rejoins_with_back_off(tmp_path):
    """Each rejoin of a replica whose disk still fails starts a resync that fails at
    once and flips the partner's ALUA state (a UNIT ATTENTION on every path of the
    device; three in a row reach the caller through MPIO's retry count, chaos
    disk-eio-secondary). The replica waits 1 s, then 2 s, ... before rejoining, and
    still comes back once the disk heals."""
    async def body():
        async with HaPair(tmp_path) as pair:
            await pair.in_sync()
            disk = eio(faulty(pair.b))
            with pytest.raises(ReplicaNotServing):
                await pair.b.read(0, 1)
            await detached(pair, "b")
            await pair.a.write(0, block(11))  # dirty: every resync must copy it to b's disk
            await asyncio.sleep(2.5)  # the redial comes every 0.2 s
            failures = [e for e in pair.b.meta.events if "disk failure" in e]
            assert 1 <= len(failures) <= 2, failures
            faulty(pair.b).remove(disk.id)
            await wait_for(lambda: pair.b.state is S, timeout=15)
            await pair.in_sync()
            assert pair.images_equal()
    run(body())
