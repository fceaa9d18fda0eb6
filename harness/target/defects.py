"""Deliberate defect modes of the reference target.

They exist only to prove that each suite fails when it should: the defect zoo
runs the suites against a node started with ``[node] defects = ["name", ...]``
and asserts the exact failure. A production-like node runs with none. Each mode
breaks one promise that docs/ha.md makes, in the way real products have been
seen to break it.
"""

from __future__ import annotations

import enum
from typing import Any

from harness.errors import SplitbrainError


class Defect(enum.StrEnum):
    #: the sequencer acknowledges a write before the partner has it
    ACK_BEFORE_MIRROR = "ack-before-mirror"
    #: on sync loss with the heartbeat alive, the lower priority keeps serving and
    #: the survivor does not wait out the fence: a partition becomes split brain
    NO_FENCING = "no-fencing"
    #: a resync declares the partner synchronized without copying anything
    RESYNC_SKIPS_DIRTY = "resync-skips-dirty"
    #: persistent reservations are not replicated to the partner
    STALE_RESERVATIONS = "stale-reservations"
    #: the decision after sync loss takes far longer than it should
    SLOW_FAILOVER = "slow-failover"
    #: each replica presents its own serial and NAA designator
    IDENTITY_PER_NODE = "identity-per-node"
    #: HELLO is sent the moment a link comes up, before the previous loss was decided,
    #: and two replicas that both carried on alone are merged (the higher generation,
    #: then priority, wins) instead of reported as split brain
    MERGE_AFTER_SPLIT_BRAIN = "merge-after-split-brain"
    #: a replica restarted after a crash does not name the regions it had writes in
    #: flight in (its activity log): a fast resync leaves them different
    RESYNC_WITHOUT_ACTIVITY_LOG = "resync-without-activity-log"
    #: once the sync link is lost, writes keep being served and are acknowledged
    #: locally while the decision to carry on alone is pending (node majority: the node
    #: may then lose the vote, and the writes with it)
    ACK_BEFORE_FAILOVER_DECISION = "ack-before-failover-decision"
    #: an ORDER the partner never acknowledges is waited for forever
    NO_ORDER_TIMEOUT = "no-order-timeout"
    #: a write completes once it is in the page cache (FUA dropped), while the LU
    #: still reports its write cache off: a power loss takes acknowledged writes
    ACK_BEFORE_DURABLE = "ack-before-durable"
    #: a Not synchronized (or synchronizing) replica still serves reads, from its
    #: stale image, and its port group still reports active/optimized
    READS_FROM_UNSYNCHRONIZED = "reads-from-unsynchronized"
    #: a resync copies from the replica that should receive it onto the newer one
    RESYNC_WRONG_DIRECTION = "resync-wrong-direction"
    #: with many writes in flight the sequencer stops waiting for the partner's ACK:
    #: under load a write is acknowledged before the partner applied it
    ACK_BEFORE_MIRROR_UNDER_LOAD = "ack-before-mirror-under-load"
    #: a forwarded write is applied on the node that received it at once, out of the
    #: sequencer's order: overlapping writes through both nodes end up different
    OVERLAPPING_WRITE_LOST = "overlapping-write-lost"
    #: this replica keeps and reports persistent reservations but never enforces them:
    #: a write from an initiator that is not a registrant is served (give it to a
    #: partner replica: the reservation taken through the other node does not fence)
    RESERVATIONS_NOT_ENFORCED = "reservations-not-enforced"
    #: this replica acknowledges the sequencer's write ORDERs without applying them:
    #: writes made through the other node never reach its disk (give it to a partner)
    WRITE_NOT_MIRRORED = "write-not-mirrored"


#: extra seconds a slow failover takes before carrying on alone
SLOW_FAILOVER_S = 5.0
#: writes awaiting the partner's ACK from which ack-before-mirror-under-load stops waiting
UNDER_LOAD_IN_FLIGHT = 4


class AckBeforeDurable:
    """The ``ack-before-durable`` defect around a block store opened without
    write-through: FUA is dropped, yet the store says it writes through."""

    write_through = True

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def write(self, lba: int, data: bytes, *, fua: bool = False) -> None:
        await self.inner.write(lba, data, fua=False)

    async def write_repeated(self, lba: int, block: bytes, count: int, *,
                             fua: bool = False) -> None:
        await self.inner.write_repeated(lba, block, count, fua=False)


class UnknownDefect(SplitbrainError):
    exit_code = 2


def parse_defects(names: list[str] | tuple[str, ...]) -> frozenset[Defect]:
    """The defect modes named, or a clear error naming the known ones."""
    known = {d.value: d for d in Defect}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UnknownDefect(f"unknown defect mode(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(known))}")
    return frozenset(known[n] for n in names)
