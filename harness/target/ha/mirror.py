"""This node's side of an HA device: the local replica, the links to the
partner, and the block-store interface the SCSI logical unit serves from.

``HaDevice`` is a ``BlockStore`` (docs/architecture.md) wrapped around the
local image. Every write is sequenced by the device's sequencer and applied on
every synchronized replica before it completes; see docs/ha.md for the
ordering, the states and the failure handling this module implements:

- ``write``/``unmap`` on the sequencer: enqueue the range lock and take the
  next sequence number in one step, send the ORDER, apply locally, wait for
  the partner's ACK;
- on the other node: forward (WRITE_REQ), apply the ORDER when its number
  comes up, complete when the sequencer says APPLIED (``forwarding.py``, which
  also puts a deadline on every wait for the partner);
- a replica whose disk fails an I/O leaves the device (``replica_failed``), and
  the I/O is re-driven to the partner while it can serve it.

Sync loss (gate, decide, fence, carry on alone or stop) is ``failover.py``;
partner sessions, HELLO planning and resync are ``resync.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

from harness.target.blockstore import BlockStoreError
from harness.target.defects import UNDER_LOAD_IN_FLIGHT, Defect
from harness.target.ha import administration, failover, forwarding, protocol, resync
from harness.target.ha.activity_log import ActivityLog
from harness.target.ha.channel import LinkKeeper, PartnerLink
from harness.target.ha.config import HaDeviceConfig
from harness.target.ha.dirtymap import DirtyMap
from harness.target.ha.ordering import RangeLocks
from harness.target.ha.protocol import Message, MessageKind, OrderKind
from harness.target.ha.replica import (
    InitialSync,
    ReplicaMetadata,
    ReplicaNotServing,
    ReplicaState,
    ReplicaSummary,
    startup_state,
)

#: a replica that left on a disk failure rejoins after this, doubling per failure
REJOIN_BACKOFF_S, REJOIN_BACKOFF_MAX_S = 1.0, 8.0


class LocalStore(Protocol):
    block_size: int
    num_blocks: int

    async def read(self, lba: int, count: int) -> bytes: ...
    async def write(self, lba: int, data: bytes, *, fua: bool = False) -> None: ...
    async def flush(self) -> None: ...
    async def unmap(self, lba: int, count: int) -> None: ...
    def close(self) -> None: ...


PrHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def _partner_seen(meta: ReplicaMetadata) -> ReplicaSummary | None:
    try:
        return ReplicaSummary.from_json(meta.partner_seen) if meta.partner_seen else None
    except (TypeError, ValueError, KeyError):  # written by another version: not known
        return None


class HaDevice:
    def __init__(self, config: HaDeviceConfig, store: LocalStore) -> None:
        self.config = config
        self.store = store
        self.block_size = store.block_size
        self.num_blocks = store.num_blocks
        #: what the Block Limits page reports: the local image's allocation unit
        self.physical_block_size = getattr(store, "physical_block_size", store.block_size)
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self._meta_path = config.state_dir / f"{config.alias}.meta.json"
        self._map_path = config.state_dir / f"{config.alias}.dirty"
        self.meta = ReplicaMetadata.load(self._meta_path, config.alias, config.node)
        self.dirty = DirtyMap(self.num_blocks, self.block_size, config.region_bytes)
        self.activity_log = ActivityLog(config.state_dir / f"{config.alias}.al",
                                        self.dirty.blocks_per_region, self.num_blocks)
        self.dirty_map_trusted = False
        self.last_shutdown_clean = False
        self.locks = RangeLocks()
        #: called after this node's or the partner's state changed (the LU moves ALUA states)
        self.on_state_change: Callable[[], None] | None = None
        self._state = ReplicaState.NOT_SYNCHRONIZED  # what this node serves as, now
        self._partner_state: ReplicaState | None = None
        #: the partner as its last HELLO described it (persisted: ``meta.partner_seen``)
        self.partner_summary = _partner_seen(self.meta)
        #: set (and replaced) whenever what a write may do changes: state, metadata,
        #: mirroring; a write waiting for a sync-loss decision waits on it
        self._changed = asyncio.Event()
        self._mirroring = False  # the partner receives our ORDERs
        self.resync: resync.Resync | None = None
        self.last_plan = ""
        #: the last reconnect plan could not tell which replica holds every acknowledged
        #: write (split brain): only ``mark_synchronized`` moves the device on
        self.needs_administrator = False
        self._gate = asyncio.Event()  # cleared while a sync-loss decision is pending
        #: "deciding" or "fencing" while a sync-loss decision is pending (failover.py)
        self.failover_phase: str | None = None
        #: the partner carried on alone and told this replica to stop (FENCE)
        self.fenced_by_partner = False
        #: resolved with the partner's FENCED answer (JSON: it stopped, or it refused)
        self.fence_ack: asyncio.Future[dict[str, Any]] | None = None
        self._gate.set()
        #: after a disk failure, no partner session before this (loop time): the
        #: replica retries with back-off instead of flapping the device's ALUA states
        self._rejoin_at = 0.0
        self._disk_failures = 0  # consecutive, since the pair was last whole (resync_done)
        self._seq = 0
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._unacked: dict[int, tuple[int, int]] = {}
        self._next_rid = 0
        self._forwarded: dict[int, forwarding.Forwarded] = {}
        self._forwarded_by_seq: dict[int, int] = {}
        self._requests: dict[int, asyncio.Future[Message]] = {}
        self._expected_seq = 1
        self._early: dict[int, Message] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: serializes sync-loss handling and (re)connection: a new link's HELLO is
        #: handled only after the previous link's loss has been dealt with
        self.membership = asyncio.Lock()
        #: the link whose HELLO was planned: the current partner session (docs/ha.md)
        self.session_link: PartnerLink | None = None
        # Installed by the logical unit for PR replication: the sequencer runs PR OUT
        # requests forwarded by the partner, and the partner applies shipped state.
        self.pr_handler: PrHandler | None = None
        self.pr_apply: Callable[[dict[str, Any]], None] | None = None
        #: the PR state to ship to a partner at the start of a resync
        self.pr_snapshot: Callable[[], dict[str, Any]] | None = None
        timeouts = config.timeouts
        self.sync = LinkKeeper(
            name=f"{config.alias}-sync", timeout_s=timeouts.sync_s, handler=self._on_message,
            on_link=self._on_sync_link,
            dial_to=config.partner_sync if config.dials else None,
            listen_on=None if config.dials else config.sync_listen)
        hb_dial = config.partner_heartbeat if config.dials else None
        hb_listen = None if config.dials else config.heartbeat_listen
        self.heartbeat: LinkKeeper | None = None
        if hb_dial or hb_listen:
            self.heartbeat = LinkKeeper(
                name=f"{config.alias}-heartbeat", timeout_s=max(timeouts.heartbeat_s * 2, 0.2),
                handler=self._on_heartbeat_message, dial_to=hb_dial, listen_on=hb_listen)

    @property
    def state(self) -> ReplicaState:
        """What this replica serves as now (its persisted state is ``meta.state``)."""
        return self._state

    @state.setter
    def state(self, value: ReplicaState) -> None:
        changed = value is not self._state
        self._state = value
        self._notify()
        if changed and self.on_state_change is not None:
            self.on_state_change()

    @property
    def mirroring(self) -> bool:
        """Whether the partner receives this node's ORDERs."""
        return self._mirroring

    @mirroring.setter
    def mirroring(self, value: bool) -> None:
        self._mirroring = value
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    @property
    def partner_state(self) -> ReplicaState | None:
        return self._partner_state

    @partner_state.setter
    def partner_state(self, value: ReplicaState | None) -> None:
        changed = value is not self._partner_state
        self._partner_state = value
        if changed and self.on_state_change is not None:
            self.on_state_change()

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> dict[str, tuple[str, int] | None]:
        """Load the replica, apply the initial sync, and start the links."""
        await self._initial_sync()
        self.last_shutdown_clean = self.meta.clean_shutdown
        self.dirty_map_trusted = self.meta.clean_shutdown and self.meta.dirty_map_valid
        if self.dirty_map_trusted:
            self.dirty = DirtyMap.load(self._map_path, self.num_blocks, self.block_size,
                                       self.config.region_bytes)
        self.activity_log.recover()  # empty after a clean shutdown
        self.state = startup_state(self.meta)
        self._save(replace(self.meta, clean_shutdown=False, dirty_map_valid=False))
        bound = {"sync": await self.sync.start()}
        if self.heartbeat is not None:
            bound["heartbeat"] = await self.heartbeat.start()
        return bound

    async def stop(self) -> None:
        """Clean shutdown: flush, keep the dirty map, tell the partner."""
        self.state = ReplicaState.NOT_SYNCHRONIZED
        link = self.sync.link
        if link is not None:
            link.leave("clean shutdown")
        await self.sync.close()
        if self.heartbeat is not None:
            await self.heartbeat.close()
        for task in list(self._tasks):
            task.cancel()
        await self.store.flush()
        self.activity_log.clear()
        self.dirty.save(self._map_path)
        self._save(replace(self.meta, clean_shutdown=True, dirty_map_valid=self.dirty_map_trusted))

    def close(self) -> None:
        """Close the local image (after ``stop``); the logical unit calls this last."""
        self.store.close()

    async def _initial_sync(self) -> None:
        if self.meta.initial_sync_done:
            return
        mode, me = self.config.initial_sync, self.config.node
        if mode is InitialSync.CLEAR:
            await self.store.unmap(0, self.num_blocks)
        if mode is InitialSync.FROM_PARTNER and self.config.initial_source != me:
            meta = replace(self.meta, generation=0, state=ReplicaState.NOT_SYNCHRONIZED,
                           consistent=False)  # holds nothing of the device yet
        elif mode is InitialSync.FROM_PARTNER:
            meta = replace(self.meta, generation=1, state=ReplicaState.SYNCHRONIZED, alone=True,
                           partner_left_at=0, consistent=True)
        else:
            meta = replace(self.meta, generation=1, state=ReplicaState.SYNCHRONIZED,
                           clean_shutdown=True, consistent=True)
        self._save(meta.with_event(f"initial synchronization: {mode.value}",
                                   initial_sync_done=True))

    def _save(self, meta: ReplicaMetadata) -> None:
        self.meta = meta
        meta.save(self._meta_path)
        self._notify()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------- block store

    @property
    def is_sequencer(self) -> bool:
        if self.state is not ReplicaState.SYNCHRONIZED:
            return False
        partner_synced = self.mirroring and self.partner_state is ReplicaState.SYNCHRONIZED
        return not partner_synced or self.config.priority < self.config.partner_priority

    async def _admit(self) -> None:
        await self._gate.wait()
        if self.state is ReplicaState.SYNCHRONIZED:
            return
        raise ReplicaNotServing(
            f"HA device {self.config.alias} on {self.config.node} is {self.state.value}",
            transitioning=self.state is ReplicaState.SYNCHRONIZING)

    async def read(self, lba: int, count: int) -> bytes:
        if Defect.READS_FROM_UNSYNCHRONIZED in self.config.defects:
            await self._gate.wait()  # defect: serves whatever its image holds
        else:
            await self._admit()
            if await failover.confirm_after_stall(self):  # (the freeze rule, failover.py)
                await self._admit()
        lock = self.locks.enqueue(lba, count)
        with self.locks.holding(lock):
            await lock.acquire()
            try:
                return await self.store.read(lba, count)
            except (BlockStoreError, OSError) as exc:
                if not self._partner_serves():
                    raise  # no other copy to serve it from: the medium error is the answer
                self.replica_failed(f"local read at LBA {lba} failed: {exc}")
                raise self._served_by_partner() from exc

    async def write(self, lba: int, data: bytes, *, fua: bool = False) -> None:
        await self._admit()
        count = len(data) // self.block_size
        if self.is_sequencer:
            await self._sequence(OrderKind.WRITE, lba, count, data, fua=fua)
        else:
            await self._forward(lba, data)

    async def unmap(self, lba: int, count: int) -> None:
        await self._admit()
        if not self.is_sequencer:
            raise ReplicaNotServing(f"UNMAP on {self.config.alias} must go to the sequencer",
                                    transitioning=True)
        await self._sequence(OrderKind.UNMAP, lba, count, b"")

    async def flush(self) -> None:
        await self.store.flush()

    async def _apply(self, kind: OrderKind, lba: int, count: int, data: bytes,
                     fua: bool = False) -> None:
        if kind is OrderKind.UNMAP:
            await self.store.unmap(lba, count)
        else:
            await self.store.write(lba, data, fua=fua)

    async def _sequence(self, kind: OrderKind, lba: int, count: int, data: bytes, *,
                        fua: bool = False, rid: int = 0) -> int:
        """Order, mirror and apply one change; returns its sequence number (0: alone)."""
        link = await failover.mirror_or_alone(self)
        active = self.activity_log.begin(lba, count)  # persisted before the write leaves
        try:
            return await self._sequence_locked(kind, lba, count, data, link, fua=fua, rid=rid)
        finally:
            self.activity_log.end(active)

    async def _sequence_locked(self, kind: OrderKind, lba: int, count: int, data: bytes,
                               link: PartnerLink | None, *, fua: bool, rid: int) -> int:
        lock = self.locks.enqueue(lba, count)
        seq, ack = 0, None
        # held from the enqueue on: whatever raises before the write (a send on a link
        # that just closed), the range lock is released, or every later I/O overlapping
        # it would wait for ever
        with self.locks.holding(lock):
            if link is not None:
                self._seq += 1
                seq = self._seq
                self._unacked[seq] = (lba, count)
                ack = self._acks[seq] = forwarding.answer_future()
                payload = b"" if kind is OrderKind.FORWARDED else data
                if kind is OrderKind.UNMAP:
                    payload = str(count).encode()
                link.send(Message(MessageKind.ORDER, seq=seq, rid=rid, lba=lba,
                                  payload=payload, flags=kind))
            else:
                self.dirty.mark(lba, count)
            await lock.acquire()
            try:
                await self._apply(OrderKind.UNMAP if kind is OrderKind.UNMAP
                                  else OrderKind.WRITE, lba, count, data, fua)
            except (BlockStoreError, OSError) as exc:
                if not seq:
                    raise  # alone: no other copy, the medium error is the answer
                # the partner has (or will have) this order: we would diverge
                partner_serves = self._partner_serves()
                self.replica_failed(f"local write at LBA {lba} failed: {exc}")
                if not partner_serves:
                    raise
                raise self._served_by_partner() from exc
        if link is not None and seq:
            await link.drain()
        if ack is not None and kind is not OrderKind.FORWARDED:
            if Defect.ACK_BEFORE_MIRROR in self.config.defects:
                return seq  # defect: acknowledged before the partner has it
            if Defect.ACK_BEFORE_MIRROR_UNDER_LOAD in self.config.defects and \
                    len(self._acks) >= UNDER_LOAD_IN_FLIGHT:
                return seq  # defect: under load, acknowledged before the partner has it
            await self._await_ack(seq, ack, link)
        return seq

    async def _await_ack(self, seq: int, ack: asyncio.Future[None],
                         link: PartnerLink | None) -> None:
        """Wait for the partner's ACK of ``seq`` (or the loss handling's verdict).

        An ORDER not acknowledged within the sync timeout means the partner is out,
        even if it still answers keepalives (a hung disk): the link is failed, and
        the loss handling decides as for any sync loss.
        """
        try:
            if Defect.NO_ORDER_TIMEOUT in self.config.defects:
                await ack  # defect: waits as long as the partner keeps the link alive
            else:
                await forwarding.partner_answer(self, ack, link, f"ORDER {seq}",
                                                "acknowledged")
        finally:
            self._acks.pop(seq, None)

    async def _forward(self, lba: int, data: bytes) -> None:
        await forwarding.forward(self, lba, data)

    async def request(self, kind: MessageKind, body: dict[str, Any]) -> Message:
        """Send a request to the partner (the sequencer) and wait for its answer."""
        return await forwarding.request(self, kind, body)

    async def replicate(self, body: dict[str, Any]) -> None:
        """Ship a PR state change to the partner in sequence (sequencer only)."""
        lock = self.locks.enqueue(0, 0)
        with self.locks.holding(lock):
            link = self.session_link
            if not (self.mirroring and link is not None and not link.lost.is_set()):
                return
            self._seq += 1
            seq = self._seq
            ack = self._acks[seq] = forwarding.answer_future()
            self._unacked[seq] = (0, 0)
            link.send(protocol.control(MessageKind.ORDER, body, seq=seq, flags=OrderKind.PR))
        await self._await_ack(seq, ack, link)

    # ------------------------------------------------------------- sync stream

    async def _on_sync_link(self, link: PartnerLink) -> None:
        # Orders of this link are numbered from 1; reset before its first frame is read.
        self._expected_seq = 1
        self._early.clear()
        self._spawn(failover.watch_link(self, link))
        self._spawn(forwarding.fail_forwards_with(self, link))
        wait = self._rejoin_at - asyncio.get_running_loop().time()
        if wait > 0:
            # its disk just failed: rejoining now would start a resync that fails on
            # the same disk at once, and every attempt flips the partner's ALUA state
            # (UNIT ATTENTIONs on every path of the device); DRBD stays detached
            link.fail(f"disk failure: rejoining in {wait:.1f}s")
            return
        if Defect.MERGE_AFTER_SPLIT_BRAIN in self.config.defects:
            self.send_hello(link)  # defect: may describe a state about to change
            await link.drain()
            return
        # HELLO describes this replica once any pending sync-loss decision is taken
        # and persisted, so both nodes plan from what the other really is now.
        self._spawn(resync.hello_when_settled(self, link))

    def send_hello(self, link: PartnerLink) -> None:
        """Send this replica's summary on ``link`` once; planning uses exactly it."""
        if link.hello_sent is None:
            link.hello_sent = self.summary()
            link.send(protocol.control(MessageKind.HELLO, link.hello_sent.to_json()))

    def summary(self) -> ReplicaSummary:
        s = ReplicaSummary.of(self.meta, self.config.priority)
        extents = () if Defect.RESYNC_WITHOUT_ACTIVITY_LOG in self.config.defects \
            else tuple(self.activity_log.extents())
        return replace(s, dirty_map_valid=self.dirty_map_trusted,
                       clean_shutdown=self.last_shutdown_clean, activity_log=extents,
                       activity_log_known=self.activity_log.known)

    def _on_message(self, link: PartnerLink, msg: Message) -> Awaitable[None] | None:
        if link.lost.is_set():
            # frames still buffered when the link was declared lost: its session is over
            # (an ACK or ORDER numbered in it must not touch the next session's)
            return None
        kind = msg.kind
        if kind is MessageKind.ORDER:
            self._early[msg.seq] = msg
            while self._expected_seq in self._early:
                self._enqueue_order(link, self._early.pop(self._expected_seq))
                self._expected_seq += 1
        elif kind is MessageKind.ACK:
            self._unacked.pop(msg.seq, None)
            ack = self._acks.get(msg.seq)
            if ack is not None and not ack.done():
                ack.set_result(None)
        elif kind is MessageKind.WRITE_REQ:
            self._on_write_request(link, msg)
        elif kind is MessageKind.APPLIED:
            rid = self._forwarded_by_seq.pop(msg.seq, None)
            fw = self._forwarded.get(rid) if rid is not None else None
            if fw is not None:
                fw.applied_there = True
                forwarding.maybe_done(fw)
        elif kind in (MessageKind.REFUSED, MessageKind.PR_RESULT):
            fut = self._requests.get(msg.rid)
            fw = self._forwarded.get(msg.rid)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            if fw is not None and not fw.done.done():
                fw.done.set_exception(ReplicaNotServing(
                    f"{self.config.alias}: sequencer refused the write", transitioning=True))
        elif kind is MessageKind.PR_REQ:
            self._spawn(forwarding.serve_pr_request(self, link, msg))
        elif kind is MessageKind.HELLO:
            self._spawn(resync.on_hello(self, link, ReplicaSummary.from_json(msg.json())))
        elif kind is MessageKind.RESYNC_DONE:  # in order: after this session's HELLO
            self._spawn(resync.resync_done_in_session(self, link, msg.json()))
        elif kind is MessageKind.GOODBYE:
            body = msg.json()
            # a partner whose disk failed names what it may lack (writes it had in flight:
            # their ORDERs reached us, its own write did not happen): we copy them back
            for lba, count in body.get("out_of_sync", ()):
                self.dirty.mark(int(lba), int(count))
            link.fail(f"partner left: {body.get('reason', 'shut down')}")
        return None

    def _on_heartbeat_message(self, link: PartnerLink, msg: Message) -> None:
        if msg.kind is MessageKind.FENCE:
            self._spawn(failover.stop_when_fenced(self, link))
        elif msg.kind is MessageKind.FENCED and self.fence_ack is not None \
                and not self.fence_ack.done():
            self.fence_ack.set_result(msg.json())

    def _enqueue_order(self, link: PartnerLink, msg: Message) -> None:
        """Apply an ORDER in sequence order (partner side)."""
        kind = msg.order_kind
        if kind is OrderKind.PR:
            self._spawn(self._apply_pr(link, msg))
            return
        if kind is OrderKind.UNMAP:
            count = int(bytes(msg.payload))
            data = b""
        elif kind is OrderKind.FORWARDED:
            fw = self._forwarded.get(msg.rid)
            if fw is None:  # the request was abandoned; the sequencer applied it anyway
                return
            data = fw.data
            count = len(data) // self.block_size
            self._forwarded_by_seq[msg.seq] = msg.rid
            if fw.applied_here:  # the overlapping-write-lost defect wrote it already
                link.send(Message(MessageKind.ACK, seq=msg.seq))
                return
        else:
            data = bytes(msg.payload)
            count = len(data) // self.block_size
        lock = self.locks.enqueue(msg.lba, count)
        self._spawn(self._apply_order(link, msg, kind, lock, count, data))

    async def _apply_order(self, link: PartnerLink, msg: Message, kind: OrderKind, lock: Any,
                           count: int, data: bytes) -> None:
        if kind is OrderKind.RESYNC and self.meta.consistent:
            # the first copy may come before this node planned the session (the source
            # starts as soon as it has planned): from here the image is a mix of two
            # generations until RESYNC_DONE, so never a source on its own (Inconsistent)
            self._save(replace(self.meta, consistent=False))
        with self.locks.holding(lock):
            await lock.acquire()
            try:
                if not (kind is OrderKind.WRITE
                        and Defect.WRITE_NOT_MIRRORED in self.config.defects):
                    await self._apply(kind, msg.lba, count, data)  # (defect: acked, not applied)
            except (BlockStoreError, OSError) as exc:
                self.replica_failed(f"applying order {msg.seq} at LBA {msg.lba} failed: {exc}")
                return  # no ACK: the sequencer learns from our GOODBYE and carries on alone
        link.send(Message(MessageKind.ACK, seq=msg.seq))  # on the link the order came on
        await link.drain()
        if kind is OrderKind.FORWARDED:
            fw = self._forwarded.get(msg.rid)
            if fw is not None:
                fw.applied_here = True
                forwarding.maybe_done(fw)
        elif kind is OrderKind.RESYNC and self.resync is not None:
            self.resync.copied += 1

    def _on_write_request(self, link: PartnerLink, msg: Message) -> None:
        forwarding.on_write_request(self, link, msg)

    async def _apply_pr(self, link: PartnerLink, msg: Message) -> None:
        if self.pr_apply is not None:
            self.pr_apply(msg.json())
        link.send(Message(MessageKind.ACK, seq=msg.seq))
        await link.drain()

    # ----------------------------------------------------------- management

    def _partner_serves(self) -> bool:
        """Whether a Synchronized partner is connected and can serve what this disk cannot."""
        link = self.session_link
        return (self.state is ReplicaState.SYNCHRONIZED and self.mirroring
                and self.partner_state is ReplicaState.SYNCHRONIZED
                and link is not None and not link.lost.is_set())

    def _served_by_partner(self) -> ReplicaNotServing:
        """The answer to an I/O this replica's disk failed once it left the device:
        NOT READY, target port unavailable, which MPIO re-drives on the partner."""
        return ReplicaNotServing(
            f"HA device {self.config.alias} on {self.config.node}: local disk failed, "
            f"replica detached; the partner {self.config.partner} serves",
            transitioning=False)

    def replica_failed(self, reason: str) -> None:
        """This replica's disk failed an I/O: leave the device (DRBD's detach).

        It stops serving and says so in its metadata (so it is never a resync
        source), and tells the partner, which carries on alone at once (no fence
        is needed: this side has stopped). The GOODBYE names the regions of the
        writes this replica had in flight (its activity log): their ORDERs may have
        reached the partner while this disk failed them, so the partner marks them
        dirty and the resync copies them back. A resync brings the replica back
        once its disk accepts writes again.
        """
        if self.state is not ReplicaState.NOT_SYNCHRONIZED:  # not the same episode's I/O
            self.back_off_rejoin()
        # the writes in flight here may have reached the partner (their ORDERs left) while
        # this disk failed them: if this replica is the next resync source (it carried
        # on alone and holds every acknowledged write), its copy covers those regions too
        for lba, count in self.activity_log.in_flight():
            self.dirty.mark(lba, count)
        self.state = ReplicaState.NOT_SYNCHRONIZED
        self._save(self.meta.with_event(f"disk failure, stopped serving: {reason}",
                                        state=ReplicaState.NOT_SYNCHRONIZED))
        link = self.session_link
        if link is not None:
            link.leave(f"disk failure on {self.config.node}",
                       out_of_sync=[list(e) for e in self.activity_log.in_flight()])

    def back_off_rejoin(self) -> None:
        """This replica's disk failed: no partner session for a while (1 s, doubling up
        to 8 s while failures follow each other, reset once the pair is whole again)."""
        self._disk_failures += 1
        self._rejoin_at = asyncio.get_running_loop().time() + min(
            REJOIN_BACKOFF_S * 2 ** (self._disk_failures - 1), REJOIN_BACKOFF_MAX_S)

    def disk_recovered(self) -> None:
        """The pair is whole again (a resync completed): the back-off starts over."""
        self._disk_failures = 0

    def mark_synchronized(self, *, force: bool = False) -> None:
        """Administrator override: this replica's data wins (``administration.py``)."""
        administration.mark_synchronized(self, force=force)

    def status(self) -> dict[str, Any]:
        return administration.status(self)
