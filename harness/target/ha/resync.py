"""Resynchronization of a returning replica, with client I/O going on.

The source walks a snapshot of its dirty map (every region for a full resync).
Each region is copied like a write: its range lock is enqueued and its
sequence number taken in one step, the region is read once the lock is
granted, and the copy travels as an ORDER of kind RESYNC. Writes that arrive
meanwhile are sequenced and mirrored as usual, so a copy can never overwrite a
newer write on the target (docs/ha.md). A region's dirty bit is cleared only
when the target acknowledged its copy; if the link fails first, the region
stays dirty and the next resync copies it again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from harness.target.blockstore import BlockStoreError
from harness.target.defects import Defect
from harness.target.ha import failover, forwarding, protocol
from harness.target.ha.dirtymap import DirtyMap
from harness.target.ha.protocol import Message, MessageKind, OrderKind
from harness.target.ha.replica import (
    ReplicaNotServing,
    ReplicaState,
    ReplicaSummary,
    ResyncMode,
    plan_reconnect,
)

if TYPE_CHECKING:
    from harness.target.ha.channel import PartnerLink
    from harness.target.ha.mirror import HaDevice

#: regions in flight at once (each up to region_bytes)
WINDOW = 8


class Resync:
    def __init__(self, device: HaDevice, mode: ResyncMode, *, receiving: bool = False) -> None:
        self.device = device
        #: the session this resync belongs to: it copies on this link and no other
        self.link = device.session_link
        self.mode = mode
        self.receiving = receiving
        self.total = len(device.dirty) if not receiving else 0
        self.copied = 0
        self.started_ns = time.monotonic_ns()
        self._aborted = False

    def abort(self) -> None:
        self._aborted = True

    def progress(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "role": "target" if self.receiving else "source",
            "regions_total": self.total,
            "regions_copied": self.copied,
            "percent": round(100 * self.copied / self.total, 1) if self.total else None,
            "elapsed_s": round((time.monotonic_ns() - self.started_ns) / 1e9, 3),
        }

    async def run(self) -> None:
        """Copy every dirty region, then declare the partner synchronized.

        A resync never ends half done with its session still up: when it cannot
        finish (its session ended under it, the partner refused, a copy failed),
        the regions not acknowledged stay dirty and the link is failed, so the
        next link plans again and the resync starts over from the dirty map.
        """
        dev = self.device
        if Defect.RESYNC_SKIPS_DIRTY in dev.config.defects:
            finish(dev, self.link)  # defect: declared synchronized, nothing copied
            return
        try:
            done = await self._copy_all()
        except ReplicaNotServing:  # the session ended under the PR snapshot's ORDER
            done = False
        except (BlockStoreError, OSError) as exc:  # this replica's disk failed a read
            dev._save(dev.meta.with_event(f"resync {self.mode.value} failed: {exc!r}"))
            dev.back_off_rejoin()  # every new session would fail on the same disk at once
            done = False
        except Exception as exc:
            dev._save(dev.meta.with_event(f"resync {self.mode.value} failed: {exc!r}"))
            done = False
        if done:
            finish(dev, self.link)
            return
        link = self.link
        if link is not None and not link.lost.is_set() and dev.session_link is link:
            link.fail("resync ended before every region was copied; reconnecting to plan "
                      "it again")

    async def _copy_all(self) -> bool:
        dev = self.device
        if dev.pr_snapshot is not None:  # reservations travel first, in sequence
            await dev.replicate(dev.pr_snapshot())
        window = asyncio.Semaphore(WINDOW)
        copies = []
        try:
            for region in dev.dirty.dirty_regions():
                if self._aborted:
                    break
                await window.acquire()
                copies.append(asyncio.ensure_future(self._copy(region, window)))
        except BaseException:  # cancelled (the node stops): so are the copies
            for copy in copies:
                copy.cancel()
            raise
        results = await asyncio.gather(*copies, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        return not self._aborted and all(results)

    async def _copy(self, region: int, window: asyncio.Semaphore) -> bool:
        """Copy one region; False when the session ended first (the region stays dirty)."""
        dev = self.device
        try:
            link = self.link
            if link is None or link.lost.is_set() or self._aborted:
                return False
            lba, count = dev.dirty.region_extent(region)
            lock = dev.locks.enqueue(lba, count)
            dev._seq += 1
            seq = dev._seq
            dev._unacked[seq] = (lba, count)
            ack = dev._acks[seq] = forwarding.answer_future()
            with dev.locks.holding(lock):
                await lock.acquire()
                data = await dev.store.read(lba, count)
                link.send(Message(MessageKind.ORDER, seq=seq, lba=lba, payload=data,
                                  flags=OrderKind.RESYNC))
            await link.drain()
            try:
                await dev._await_ack(seq, ack, link)
            except ReplicaNotServing:
                return False
            if self._aborted:
                return False
            dev.dirty.clear(region)
            self.copied += 1
            return True
        finally:
            window.release()


# -- (re)connection: who copies to whom, and when it is over --------------------

async def _end_previous_session(dev: HaDevice, link: PartnerLink) -> None:
    previous = dev.session_link
    if previous is not None and previous is not link:
        previous.fail("replaced by a newer connection")
        await failover.end_session(dev, previous)


async def hello_when_settled(dev: HaDevice, link: PartnerLink) -> None:
    """Send HELLO on a new link once the previous session's loss is decided.

    The partner plans with this summary, so it must not change before this node
    plans too: a previous session still counted as alive is ended first (its loss
    decided and persisted), under the membership lock like every planning step.
    """
    async with dev.membership:
        if link.lost.is_set():
            return
        await _end_previous_session(dev, link)
        dev.send_hello(link)
    await link.drain()


async def on_hello(dev: HaDevice, link: PartnerLink, partner: ReplicaSummary) -> None:
    """Start a partner session on ``link``: first end the previous one, then plan."""
    async with dev.membership:
        if link.lost.is_set():
            return  # a HELLO from a connection that is already gone
        await _end_previous_session(dev, link)
        dev.send_hello(link)
        mine = link.hello_sent
        merge = Defect.MERGE_AFTER_SPLIT_BRAIN in dev.config.defects
        if merge:
            mine = dev.summary()  # defect: plans with a state the partner never saw
        elif mine != dev.summary():  # both sides must plan from the same two summaries
            link.fail("this replica changed since its HELLO; reconnecting to plan again")
            return
        dev.session_link = link
        dev._seq = 0  # this session's orders are numbered from 1
        await _plan_and_start(dev, mine, partner, merge=merge)


async def _plan_and_start(dev: HaDevice, mine: ReplicaSummary, partner: ReplicaSummary, *,
                          merge: bool = False) -> None:
    dev.partner_summary = partner
    seen = {**partner.to_json(), "activity_log": []}
    if dev.meta.partner_seen != seen:
        dev._save(replace(dev.meta, partner_seen=seen))
    dev.fenced_by_partner = False  # a new session: decided afresh on its loss
    plan = plan_reconnect(mine, partner, merge_split_brain=merge)
    if Defect.RESYNC_WRONG_DIRECTION in dev.config.defects and plan.source is not None:
        plan = replace(plan, source=plan.target, target=plan.source,  # defect: backwards
                       mode=ResyncMode.FULL)
    dev.last_plan = plan.reason
    dev.needs_administrator = plan.needs_administrator
    me = dev.config.node
    if plan.needs_administrator and plan.source is None:
        # Split brain (both carried on alone: each holds writes the other lacks), or no
        # way to tell which replica holds every acknowledged write. Neither serves
        # until an administrator marks one synchronized (mark-synchronized).
        dev.mirroring = False
        dev.partner_state = ReplicaState.NOT_SYNCHRONIZED
        dev.state = ReplicaState.NOT_SYNCHRONIZED
        what = "split brain detected" if plan.split_brain else "waiting for an administrator"
        dev._save(dev.meta.with_event(f"{what}: {plan.reason}",
                                      state=ReplicaState.NOT_SYNCHRONIZED))
        return
    if plan.split_brain:
        dev._save(dev.meta.with_event(f"split brain detected: {plan.reason}"))
    if plan.source is None:
        both_synced = (dev.meta.state is ReplicaState.SYNCHRONIZED
                       and partner.state is ReplicaState.SYNCHRONIZED)
        if both_synced:
            dev.partner_state = ReplicaState.SYNCHRONIZED
            dev.state = ReplicaState.SYNCHRONIZED
            dev.mirroring = True
            # Identical from here on: a fresh map tracks exactly what the partner misses.
            dev.dirty = DirtyMap(dev.num_blocks, dev.block_size, dev.config.region_bytes)
            dev.dirty_map_trusted = True
            dev.activity_log.forget_suspects()
            dev.disk_recovered()
            dev._save(dev.meta.with_event("partner connected: in sync", alone=False,
                                          consistent=True))
        return
    if plan.source == me:
        dev.state = ReplicaState.SYNCHRONIZED
        dev.partner_state = ReplicaState.SYNCHRONIZING
        if plan.mode is ResyncMode.FULL:
            dev.dirty.mark_all()
        # what a crash may have left different on either side (their activity logs)
        for lba, count in (*partner.activity_log, *mine.activity_log):
            dev.dirty.mark(lba, count)
        dev.resync = Resync(dev, plan.mode)
        # a source picked while Not synchronized (the newest complete replica) serves
        # from now on: persisted, so a restart before the resync ends finds it the source
        dev._save(dev.meta.with_event(f"resync {plan.mode.value} to {plan.target}: "
                                        f"{plan.reason}", state=ReplicaState.SYNCHRONIZED,
                                        consistent=True))
        dev.mirroring = True
        dev._spawn(dev.resync.run())
    else:
        dev.state = ReplicaState.SYNCHRONIZING
        dev.partner_state = ReplicaState.SYNCHRONIZED
        dev.mirroring = False
        dev.resync = Resync(dev, plan.mode, receiving=True)
        dev._save(dev.meta.with_event(f"resync {plan.mode.value} from {plan.source}: "
                                        f"{plan.reason}", state=ReplicaState.SYNCHRONIZING,
                                        alone=False, forced=False, consistent=False))


async def resync_done_in_session(dev: HaDevice, link: PartnerLink,
                                 body: dict[str, Any]) -> None:
    """The source's RESYNC_DONE, handled only once this session's HELLO was planned.

    HELLO is planned in a task under the membership lock, and a source with little to
    copy sends RESYNC_DONE right behind its HELLO: handled at once, it made this replica
    Synchronized before it planned, so its summary no longer matched its HELLO and the
    session was dropped to plan again, forever when the resync finishes at once. This
    task queues behind the HELLO's on the same lock (asyncio locks are FIFO), and a
    RESYNC_DONE of a session that is over is ignored."""
    async with dev.membership:
        if link.lost.is_set() or dev.session_link is not link:
            return
        on_resync_done(dev, body)


def on_resync_done(dev: HaDevice, body: dict[str, Any]) -> None:
    generation = int(body["generation"])
    dev.state = ReplicaState.SYNCHRONIZED
    dev.mirroring = True
    dev.resync = None
    dev.dirty = DirtyMap(dev.num_blocks, dev.block_size, dev.config.region_bytes)
    dev.dirty_map_trusted = True
    dev.activity_log.forget_suspects()
    dev.disk_recovered()
    dev._save(dev.meta.with_event(
        "resync complete: synchronized", state=ReplicaState.SYNCHRONIZED,
        generation=generation, alone=False, partner_left_at=generation, forced=False,
        consistent=True))


def finish(dev: HaDevice, link: PartnerLink | None) -> None:
    """Called by the source's ``Resync`` once every region is acknowledged on ``link``."""
    if link is None or link.lost.is_set() or dev.session_link is not link:
        return  # the session ended meanwhile: the next one plans again
    dev.partner_state = ReplicaState.SYNCHRONIZED
    dev.resync = None
    dev.dirty_map_trusted = True
    dev.activity_log.forget_suspects()
    dev.disk_recovered()
    dev._save(dev.meta.with_event("resync complete: partner synchronized", alone=False,
                                    forced=False, partner_left_at=dev.meta.generation))
    link.send(protocol.control(MessageKind.RESYNC_DONE, {"generation": dev.meta.generation}))

