"""Requests from a replica to the sequencer, and the deadline on every answer.

The model (docs/ha.md, "Ordering" and "Failure handling"): a replica that is not
the sequencer forwards each write (WRITE_REQ with its data) and each PR command
(PR_REQ) to the sequencer over the sync link. A forwarded write completes when
both replicas applied it: this one when the sequencer's ORDER for it comes up in
sequence, the sequencer when it says APPLIED. The sequencer answers REFUSED when it
cannot sequence the write, or applied it alone (no ORDER follows), so the
forwarder re-drives instead of waiting for an ORDER that never comes.

An ORDER not acknowledged within the sync timeout fails the link
(``partner_answer``: the partner that does not answer is taken out), and the loss
handling's verdict is then awaited at most as long as a sync-loss decision can
take. A forwarded write has no timer of its own (timing it out would take out the
replica that asked, the lower priority, when the sequencer's disk hangs); it is
refused (NOT READY, transitioning) the moment its link is lost, since its answer
could only come back on it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.target.blockstore import BlockStoreError
from harness.target.defects import Defect
from harness.target.ha import failover, protocol
from harness.target.ha.protocol import Message, MessageKind, OrderKind
from harness.target.ha.replica import ReplicaNotServing

if TYPE_CHECKING:
    from harness.target.ha.channel import PartnerLink
    from harness.target.ha.mirror import HaDevice


@dataclass
class Forwarded:
    """A write this replica forwarded to the sequencer, until both replicas applied it."""

    lba: int
    data: bytes
    done: asyncio.Future[None]
    link: PartnerLink | None = None  # the link the request went on (its answer comes back there)
    applied_here: bool = False
    applied_there: bool = False


def answer_future() -> asyncio.Future[Any]:
    """A future for the partner's answer to one request or ORDER.

    The loss handling fails every pending one with the link (``failover.fail_pending``)
    but some have nobody left to await them: the ORDER of a forwarded write (its
    forwarder waits for APPLIED instead), the ORDER of a change whose local write failed
    or whose caller went away. Their exception is retrieved here, so the loop does not
    report it ("Future exception was never retrieved"); a waiter still gets it."""
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.add_done_callback(_retrieve)
    return fut


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


async def partner_answer(dev: HaDevice, answer: asyncio.Future[Any],
                         link: PartnerLink | None, what: str, verb: str = "answered") -> Any:
    """Wait for the partner's answer to ``what``, sent on ``link``; every wait on the
    partner has a deadline (docs/ha.md, "Failure handling").

    Not answered within the sync timeout: the link is failed (sync loss, even while
    the partner answers keepalives), and the loss handling resolves ``answer`` with
    its verdict. If even that does not come within the time a sync-loss decision
    can take, the command is refused as transitioning (MPIO re-drives it) rather
    than held: a caller is never left waiting on a link that is gone.
    """
    timeout = dev.config.timeouts.sync_s
    try:
        return await asyncio.wait_for(asyncio.shield(answer), timeout)
    except TimeoutError:
        if link is not None and not link.lost.is_set():
            link.fail(f"{what} not {verb} within {timeout:g}s")
    try:
        return await asyncio.wait_for(asyncio.shield(answer),
                                      failover.decision_budget_s(dev))
    except TimeoutError:
        raise ReplicaNotServing(f"HA device {dev.config.alias}: {what} has no answer and "
                                "no sync-loss verdict", transitioning=True) from None


async def forward(dev: HaDevice, lba: int, data: bytes) -> None:
    """Have the sequencer order a write that arrived here; return once both applied it."""
    link = dev.session_link
    if link is None or link.lost.is_set():
        raise ReplicaNotServing(f"{dev.config.alias}: sync link down", transitioning=True)
    dev._next_rid += 1
    rid = dev._next_rid
    done = answer_future()
    forwarded = dev._forwarded[rid] = Forwarded(lba, data, done, link)
    if Defect.OVERLAPPING_WRITE_LOST in dev.config.defects:
        await dev.store.write(lba, data)  # defect: applied now, not in sequence order
        forwarded.applied_here = True
    link.send(Message(MessageKind.WRITE_REQ, rid=rid, lba=lba, payload=data))
    await link.drain()
    if link.lost.is_set() and not done.done():  # never reached the sequencer, or lost
        dev._forwarded.pop(rid, None)
        raise ReplicaNotServing(f"{dev.config.alias}: sync link lost", transitioning=True)
    try:
        # No timer of its own: the sequencer's ORDER timeout takes out a partner that
        # does not answer, and this write is refused the moment the link is lost
        # (``fail_forwards_with``). Failing the link here would take out this replica,
        # the one that asked (the lower priority stops), when the sequencer's own disk
        # hangs (chaos sequencer-dies-with-its-writer).
        await done
    finally:
        dev._forwarded.pop(rid, None)


async def fail_forwards_with(dev: HaDevice, link: PartnerLink) -> None:
    """Fail the writes forwarded on ``link`` as soon as it is lost.

    Their answer (the ORDER, APPLIED) could only come back on that link, so they
    cannot complete; failed now (NOT READY, transitioning), MPIO re-drives them
    while the loss is still being decided, and the re-driven write waits at this
    replica's gate (or goes to the survivor) instead of waiting here for the whole
    decision and then for MPIO's retry interval (a killed sequencer's blackout).
    """
    await link.lost.wait()
    error = ReplicaNotServing(f"HA device {dev.config.alias}: sync link lost "
                              f"({link.loss_reason})", transitioning=True)
    for fw in dev._forwarded.values():
        if fw.link is link and not fw.done.done():
            fw.done.set_exception(error)


async def request(dev: HaDevice, kind: MessageKind, body: dict[str, Any]) -> Message:
    """Send a request to the partner (the sequencer) and wait for its answer."""
    link = dev.session_link
    if link is None or link.lost.is_set():
        raise ReplicaNotServing(f"{dev.config.alias}: sync link down", transitioning=True)
    dev._next_rid += 1
    rid = dev._next_rid
    fut = dev._requests[rid] = answer_future()
    link.send(protocol.control(kind, body, rid=rid))
    await link.drain()
    try:
        return await fut  # (as a forwarded write: the loss handling fails it with the link)
    finally:
        dev._requests.pop(rid, None)


def maybe_done(fw: Forwarded) -> None:
    """Complete a forwarded write once both replicas applied it."""
    if fw.applied_here and fw.applied_there and not fw.done.done():
        fw.done.set_result(None)


def on_write_request(dev: HaDevice, link: PartnerLink, msg: Message) -> None:
    """The sequencer's side of WRITE_REQ: refuse at once, or sequence it."""
    if not dev.is_sequencer or not dev._gate.is_set():
        link.send(protocol.control(MessageKind.REFUSED, {"reason": dev.state.value},
                                   rid=msg.rid))
        return
    data = bytes(msg.payload)
    dev._spawn(sequence_forwarded(dev, msg.rid, msg.lba, data, link))


async def sequence_forwarded(dev: HaDevice, rid: int, lba: int, data: bytes,
                             link: PartnerLink) -> None:
    try:
        seq = await dev._sequence(OrderKind.FORWARDED, lba, len(data) // dev.block_size,
                                  data, rid=rid)
    except (BlockStoreError, OSError, ReplicaNotServing) as exc:
        # not sequenced (this replica stopped, or left on a disk failure): the
        # requester must not wait for an ORDER that never comes
        link.send(protocol.control(MessageKind.REFUSED, {"reason": str(exc)}, rid=rid))
        await link.drain()
        return
    if not seq:
        # applied here alone (the partner is out as far as this node knows): no ORDER
        # follows, so the requester could never complete it; it re-drives instead
        link.send(protocol.control(MessageKind.REFUSED,
                                   {"reason": "applied without the partner"}, rid=rid))
    else:
        link.send(Message(MessageKind.APPLIED, seq=seq))
    await link.drain()


async def serve_pr_request(dev: HaDevice, link: PartnerLink, msg: Message) -> None:
    """Run a PR command the partner forwarded (sequencer side) and answer it."""
    if dev.pr_handler is None or not dev.is_sequencer:
        result: dict[str, Any] = {"refused": dev.state.value}
    else:
        result = await dev.pr_handler(msg.json())
    link.send(protocol.control(MessageKind.PR_RESULT, result, rid=msg.rid))
    await link.drain()
