"""What a replica does when its sync link to the partner is lost.

The model (docs/ha.md, "Failure handling"): the loss is handled once per link.
A replica that was not serving, or whose partner was already away, just fails
what was waiting on the partner. A serving replica closes its I/O gate, decides
from the heartbeat (or the witness) whether to carry on alone or stop, and, if
it carries on, first waits out the fence: one sync timeout after the loss, by
which time the partner has certainly noticed and stopped serving, so no read on
the partner can miss a write acknowledged here. Carrying on alone marks every
unacknowledged order's range dirty, bumps the generation and persists it before
the gate opens again. Until then no write is applied without the partner
(``mirror_or_alone``), even one that passed the gate before it closed.

Silence is evidence only from a node that was running. Under the heartbeat
strategy a node that stalled (frozen, paused, starved: ``StallWatch``) around the
loss never carries on alone on silence: its partner may have declared *it* dead
and carried on alone meanwhile. It carries on only when the live partner confirms
it stopped (FENCED), and otherwise stops and resyncs from the partner later. A
node that is carrying on alone on silence keeps listening on the heartbeat link
for the whole fence: a partner that shows life after all is decided as a live one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from harness.target.defects import SLOW_FAILOVER_S, Defect
from harness.target.ha import protocol, witness
from harness.target.ha.channel import StallWatch
from harness.target.ha.protocol import MessageKind
from harness.target.ha.replica import (
    FailoverStrategy,
    ReplicaNotServing,
    ReplicaState,
    SyncLossDecision,
    decide_on_sync_loss,
)

if TYPE_CHECKING:
    from harness.target.ha.channel import PartnerLink
    from harness.target.ha.mirror import HaDevice


async def mirror_or_alone(dev: HaDevice) -> PartnerLink | None:
    """The link to mirror a change on, or None when this node carries on alone.

    A change is applied without the partner only once the decision to carry on
    alone is taken and persisted (``meta.alone``): a lost link whose loss is not
    decided yet makes the write wait for the decision (docs/ha.md).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + decision_budget_s(dev)
    while True:
        link = dev.session_link
        if dev.mirroring and link is not None and not link.lost.is_set():
            return link
        if dev.state is not ReplicaState.SYNCHRONIZED:
            raise ReplicaNotServing(
                f"HA device {dev.config.alias} on {dev.config.node} is "
                f"{dev.state.value}", transitioning=False)
        if dev.meta.alone or Defect.ACK_BEFORE_FAILOVER_DECISION in dev.config.defects:
            return None
        changed = dev._changed
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise ReplicaNotServing(f"HA device {dev.config.alias}: sync-loss decision "
                                    "pending", transitioning=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), remaining)


def decision_budget_s(dev: HaDevice) -> float:
    """The longest a sync-loss decision can take (detect, ask, fence), with margin."""
    t = dev.config.timeouts
    return 2 * (2 * t.sync_s + t.heartbeat_s + t.witness_s) + 1.0


async def watch_link(dev: HaDevice, link: PartnerLink) -> None:
    await link.lost.wait()
    async with dev.membership:
        await end_session(dev, link)


async def end_session(dev: HaDevice, link: PartnerLink) -> None:
    """Deal with the loss of ``link`` once (call with ``dev.membership`` held).

    Only the link that carries the partner session matters: a connection whose
    HELLO was never planned (a stale one the proxy delivered late, or one that
    was replaced at once) carried no orders, so losing it changes nothing.
    """
    if link.loss_handled:
        return
    link.loss_handled = True
    if dev.session_link is not link:
        return
    dev.session_link = None
    await on_sync_lost(dev, link)


async def on_sync_lost(dev: HaDevice, link: PartnerLink) -> None:
    lost_at = time.monotonic_ns()
    partner_leaving = link.loss_reason.startswith("partner left")
    dev.mirroring = False
    was_mirroring = dev.partner_state in (ReplicaState.SYNCHRONIZED,
                                           ReplicaState.SYNCHRONIZING)
    # the target of this node's resync: it serves nothing and becomes Synchronized only
    # by this node's RESYNC_DONE, so no decision or fence is needed to carry on
    partner_resyncing = dev.partner_state is ReplicaState.SYNCHRONIZING
    dev.partner_state = ReplicaState.NOT_SYNCHRONIZED
    if dev.resync is not None:
        dev.resync.abort()
        dev.resync = None
    if dev.state is not ReplicaState.SYNCHRONIZED or not was_mirroring:
        fail_pending(dev, transitioning=False)
        if dev.state is ReplicaState.SYNCHRONIZING:
            dev.state = ReplicaState.NOT_SYNCHRONIZED
            dev._save(dev.meta.with_event(f"resync interrupted: {link.loss_reason}",
                                            state=ReplicaState.NOT_SYNCHRONIZED))
        return
    if Defect.ACK_BEFORE_FAILOVER_DECISION not in dev.config.defects:
        dev._gate.clear()  # (the defect keeps serving, and acknowledging alone, meanwhile)
    dev.failover_phase = "deciding"
    try:
        decision, partner_alive = await _decide(dev, lost_at,
                                                partner_leaving or partner_resyncing)
        defects = dev.config.defects
        why = ""
        if Defect.NO_FENCING in defects:
            decision = SyncLossDecision.CARRY_ON_ALONE  # defect: nobody stops, no fence
        elif dev.fenced_by_partner:  # the partner carries on alone and told us so
            decision = SyncLossDecision.STOP
        if decision is SyncLossDecision.CARRY_ON_ALONE:
            if Defect.SLOW_FAILOVER in defects:
                await asyncio.sleep(SLOW_FAILOVER_S)
            if not (partner_leaving or partner_resyncing) \
                    and Defect.NO_FENCING not in defects:
                dev.failover_phase = "fencing"
                decision, why = await _fence_partner(dev, link, lost_at, partner_alive)
        if decision is SyncLossDecision.CARRY_ON_ALONE and dev.fenced_by_partner:
            decision = SyncLossDecision.STOP  # the partner's FENCE came while we fenced
        if decision is SyncLossDecision.CARRY_ON_ALONE:
            _carry_on_alone(dev, link.loss_reason)
        else:
            dev.state = ReplicaState.NOT_SYNCHRONIZED
            dev._save(dev.meta.with_event(
                f"sync lost ({link.loss_reason}): {why}stopped serving",
                state=ReplicaState.NOT_SYNCHRONIZED))
            fail_pending(dev, transitioning=False)
    finally:
        dev.failover_phase = None
        dev._gate.set()


async def _decide(dev: HaDevice, lost_at: int,
                  partner_out: bool) -> tuple[SyncLossDecision, bool]:
    """The decision, and whether the partner showed life on the heartbeat link.

    ``partner_out``: the partner left the device (GOODBYE) or was the target of this
    node's resync; either way it serves nothing, and this node carries on."""
    cfg = dev.config
    if partner_out:
        return decide_on_sync_loss(cfg.strategy, my_priority=cfg.priority,
                                   partner_priority=cfg.partner_priority,
                                   partner_alive=False, partner_synchronized=False), False
    witness_granted = None
    if cfg.strategy is FailoverStrategy.NODE_MAJORITY and cfg.witness is not None:
        witness_granted = await witness.claim_generation(
            cfg.witness, device=cfg.alias, node=cfg.node,
            generation=dev.meta.generation + 1, timeout_s=cfg.timeouts.witness_s)
    partner_alive = await _heartbeat_answers(dev, lost_at, cfg.timeouts.heartbeat_s)
    return decide_on_sync_loss(cfg.strategy, my_priority=cfg.priority,
                               partner_priority=cfg.partner_priority,
                               partner_alive=partner_alive,
                               witness_granted=witness_granted), partner_alive


async def _heartbeat_answers(dev: HaDevice, since_ns: int, within_s: float) -> bool:
    """Whether the partner shows life on a heartbeat link after ``since_ns``.

    A heartbeat link found dead is not the answer yet: after this node was frozen
    (SIGSTOP) every link times out at once on resume although the partner lives, and
    the partner's redial is already waiting; a new link counts if it answers in time."""
    keeper = dev.heartbeat
    if keeper is None:
        return False
    deadline = time.monotonic() + within_s
    while True:
        hb = keeper.link
        remaining = deadline - time.monotonic()
        if hb is not None and not hb.lost.is_set():
            if await hb.fresh_sign_of_life(since_ns, max(remaining, 0.0)):
                return True
            if not hb.lost.is_set() or time.monotonic() >= deadline:
                return False
            continue  # the link probed died (a stale one, after a freeze): ask the next
        if remaining <= 0:
            return False
        keeper.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(keeper.changed.wait(), remaining)


async def confirm_after_stall(dev: HaDevice) -> bool:
    """A replica that stalled serves no read before its partner session proved alive.

    While this node was frozen its partner may have taken over and taken writes; the
    sync link's loss is noticed only once the node runs again, and the reads that
    waited in its sockets would meanwhile be served from its stale image. So after a
    stall of at least a third of the sync timeout (the freeze rule's), a read waits
    for a round trip on the session link started after the stall, or for the link's
    loss to be decided (then the caller admits it again: gate and state). Returns
    whether it waited. Nothing to confirm without a session (alone or not serving).
    """
    threshold = dev.config.timeouts.sync_s / 3
    watch = StallWatch.of_running_loop()
    waited = False
    while True:
        link = dev.session_link
        if link is None or not dev.mirroring:
            return waited
        end = watch.last_end(threshold)
        if end is None or end <= link.confirmed_ns:
            return waited
        waited = True
        if link.lost.is_set():
            if link.loss_handled:
                return True
            await asyncio.sleep(0.01)  # the loss is about to be handled (gate closes)
            continue
        if link.confirming is None or link.confirming.done():
            link.confirming = asyncio.ensure_future(
                link.round_trip(dev.config.timeouts.sync_s))
        await asyncio.shield(link.confirming)


def stalled_s(dev: HaDevice, link: PartnerLink, lost_at: int) -> float:
    """How long this node stalled around the loss of ``link``, if long enough to matter.

    A node sends on the sync link at least every third of the sync timeout while it
    runs, so a stall of that length is the shortest that can have made the partner
    hear a whole sync timeout of silence. Stalls that ended within two sync timeouts
    before the last frame received count (the partner's detection and fence), and
    so does one still going on. 0.0 when there was none.
    """
    sync_ns = int(dev.config.timeouts.sync_s * 1e9)
    since = min(link.last_received_ns, lost_at) - 2 * sync_ns
    stalled = StallWatch.of_running_loop().longest_since(since)
    return stalled if stalled >= dev.config.timeouts.sync_s / 3 else 0.0


async def _fence_partner(dev: HaDevice, link: PartnerLink, lost_at: int,
                         partner_alive: bool) -> tuple[SyncLossDecision, str]:
    """Make sure the partner stopped serving before this node carries on alone.

    A live partner confirms it stopped (FENCE over the heartbeat link: FENCED), or
    refuses because it already carried on alone (this node was frozen or cut off
    meanwhile: it is the stale one and must stop). A silent partner is waited out:
    one sync timeout after the loss it has certainly noticed it and stopped, unless
    it shows life meanwhile (then it is decided as a live one). A node that stalled
    around the loss takes no silence for an answer (module docstring). Returns the
    decision and, for a stop, why (for the event).
    """
    cfg = dev.config
    heartbeat_strategy = cfg.strategy is FailoverStrategy.HEARTBEAT
    stalled = stalled_s(dev, link, lost_at) if heartbeat_strategy else 0.0
    if stalled and not partner_alive:
        # the partner's first answer may be slow after a freeze (its links are redialled):
        # give it a sync timeout and a heartbeat, of time this node really runs
        partner_alive = await _heartbeat_answers(
            dev, time.monotonic_ns(), cfg.timeouts.sync_s + cfg.timeouts.heartbeat_s)
    while True:
        if partner_alive:
            if heartbeat_strategy and decide_on_sync_loss(
                    cfg.strategy, my_priority=cfg.priority, partner_priority=cfg.partner_priority,
                    partner_alive=True) is SyncLossDecision.STOP:
                return SyncLossDecision.STOP, "the partner is alive and has the higher priority: "
            # a stalled node's partner may still be redialling: a whole sync timeout
            answer = await _partner_fenced(dev, lost_at, cfg.timeouts.sync_s if stalled else 0.0)
            if answer == "fenced":
                return SyncLossDecision.CARRY_ON_ALONE, ""
            if answer == "refused":
                return SyncLossDecision.STOP, ("the partner refused the FENCE (it carried on "
                                               "alone): ")
            if stalled:
                return SyncLossDecision.STOP, (
                    f"this node stalled for {stalled:.2f}s and the partner did not confirm it "
                    "stopped: ")
            await _fence(dev, lost_at)
            return SyncLossDecision.CARRY_ON_ALONE, ""
        if stalled:
            return SyncLossDecision.STOP, (
                f"this node stalled for {stalled:.2f}s, so the silence proves nothing (the "
                "partner may have carried on alone) and the partner did not answer: ")
        if not heartbeat_strategy:
            await _fence(dev, lost_at)
            return SyncLossDecision.CARRY_ON_ALONE, ""
        # the fence, listening on the heartbeat link all along
        remaining = lost_at / 1e9 + cfg.timeouts.sync_s - time.monotonic()
        if remaining <= 0 or not await _heartbeat_answers(dev, lost_at, remaining):
            return SyncLossDecision.CARRY_ON_ALONE, ""
        partner_alive = True  # it answered late: decide again, as for a live partner


async def _partner_fenced(dev: HaDevice, lost_at: int, at_least_s: float = 0.0) -> str | None:
    """Ask the live partner to stop serving: "fenced" (it stopped), "refused" (it
    already carries on alone), or None (no answer within the fence)."""
    hb = dev.heartbeat.link if dev.heartbeat is not None else None
    if hb is None or hb.lost.is_set():
        return None
    # at least a heartbeat round trip, even when this node's clock jumped (a freeze)
    remaining = max(lost_at / 1e9 + dev.config.timeouts.sync_s - time.monotonic(),
                    dev.config.timeouts.heartbeat_s, at_least_s)
    fenced = dev.fence_ack = asyncio.get_running_loop().create_future()
    hb.send(protocol.control(MessageKind.FENCE, {"generation": dev.meta.generation}))
    try:
        answer = await asyncio.wait_for(fenced, max(remaining, 0.0))
    except TimeoutError:
        return None
    finally:
        dev.fence_ack = None
    return "refused" if answer.get("refused") else "fenced"


async def stop_when_fenced(dev: HaDevice, link: PartnerLink) -> None:
    """The partner carries on alone (FENCE): stop serving, persist it, then say so."""
    cfg = dev.config
    if cfg.partner_priority > cfg.priority or Defect.NO_FENCING in cfg.defects:
        return  # only the higher-priority survivor of a sync loss may fence us
    if dev.meta.alone and dev.state is ReplicaState.SYNCHRONIZED and not dev.fenced_by_partner:
        # this replica already carried on alone (the partner was silent: frozen or cut
        # off): the partner is the stale one and must stop, not this one
        link.send(protocol.control(MessageKind.FENCED, {
            "refused": "carried on alone", "generation": dev.meta.generation}))
        await link.drain()
        return
    dev.fenced_by_partner = True
    session = dev.session_link
    if session is not None:
        session.fail("the partner carries on alone and fenced this replica")
    dev.mirroring = False
    if dev.state is not ReplicaState.NOT_SYNCHRONIZED \
            or dev.meta.state is not ReplicaState.NOT_SYNCHRONIZED:
        dev.state = ReplicaState.NOT_SYNCHRONIZED
        dev._save(dev.meta.with_event("sync lost: the partner carries on alone and fenced "
                                      "this replica; stopped serving",
                                      state=ReplicaState.NOT_SYNCHRONIZED))
    fail_pending(dev, transitioning=False)
    link.send(protocol.control(MessageKind.FENCED, {}))
    await link.drain()


async def _fence(dev: HaDevice, lost_at: int) -> None:
    """Wait until the partner has certainly noticed the loss and stopped serving."""
    remaining = lost_at / 1e9 + dev.config.timeouts.sync_s - time.monotonic()
    if remaining > 0:
        await asyncio.sleep(remaining)


def _carry_on_alone(dev: HaDevice, reason: str) -> None:
    for lba, count in dev._unacked.values():
        dev.dirty.mark(lba, count)
    dev._unacked.clear()
    for ack in dev._acks.values():
        if not ack.done():
            ack.set_result(None)
    dev._acks.clear()
    gen = dev.meta.generation
    alone_already = dev.meta.alone
    dev._save(dev.meta.with_event(
        f"sync lost ({reason}): carrying on alone", alone=True,
        generation=gen if alone_already else gen + 1,
        partner_left_at=dev.meta.partner_left_at if alone_already else gen))
    fail_pending(dev, transitioning=True, forwarded_only=True)


def fail_pending(dev: HaDevice, *, transitioning: bool, forwarded_only: bool = False) -> None:
    error = ReplicaNotServing(f"HA device {dev.config.alias}: sync link lost",
                              transitioning=transitioning)
    for fw in dev._forwarded.values():
        if not fw.done.done():
            fw.done.set_exception(error)
    dev._forwarded_by_seq.clear()
    for fut in dev._requests.values():
        if not fut.done():
            fut.set_exception(error)
    if not forwarded_only:
        # this replica's disk may hold what it ordered and the partner never acknowledged:
        # the next HELLO names those regions, so the resync covers them whichever way
        for lba, count in dev._unacked.values():
            if count:  # (a reservation change has no blocks)
                dev.activity_log.mark_suspect(lba, count)
        for ack in dev._acks.values():
            if not ack.done():
                ack.set_exception(error)
        dev._acks.clear()
        dev._unacked.clear()

