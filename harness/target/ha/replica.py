"""Replica states, the metadata each replica persists, and the pure decisions
an HA node takes from them.

The model (docs/ha.md): a replica is Synchronized, Synchronizing or Not
synchronized. Its ``generation`` grows whenever it carries on without its
partner, so after any sequence of failures the replica with the highest
generation holds the newest data. The decisions here are pure functions of
what each node knows, so they are tested exhaustively without any sockets:

- ``decide_on_sync_loss``: carry on alone, or stop serving;
- ``plan_reconnect``: who is the resync source, and fast or full. When neither
  replica is Synchronized it still picks the source when exactly one provably
  holds every acknowledged write: a complete image (``consistent``, DRBD's
  Consistent/Outdated as opposed to Inconsistent) whose generation descends from
  the other's, or, at equal generations where neither carried on alone, the
  higher-priority complete one. Both having carried on alone is split brain and
  stays for an administrator;
- ``startup_state``: may a node that starts alone serve?
"""

from __future__ import annotations

import enum
import json
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import SplitbrainError

log = logging.getLogger("splitbrain.target.ha")


class ReplicaState(enum.StrEnum):
    SYNCHRONIZED = "Synchronized"
    SYNCHRONIZING = "Synchronizing"
    NOT_SYNCHRONIZED = "Not synchronized"


class FailoverStrategy(enum.StrEnum):
    HEARTBEAT = "heartbeat"
    NODE_MAJORITY = "node-majority"


class InitialSync(enum.StrEnum):
    CLEAR = "clear"  # zero both images, then both are Synchronized
    FROM_PARTNER = "from-partner"  # full copy from the chosen partner
    NONE = "none"  # declare both Synchronized as they are


class MetadataError(SplitbrainError):
    """A replica's metadata file is unreadable."""


class ReplicaNotServing(SplitbrainError):
    """This replica may not serve I/O now; MPIO should use another path.

    ``asc``/``ascq`` are the NOT READY additional sense the LU reports:
    04h/0Ah (asymmetric access state transition) while synchronizing or while a
    sync-loss decision is pending, 04h/0Ch (target port in unavailable state)
    when Not synchronized.
    """

    def __init__(self, message: str, *, transitioning: bool) -> None:
        super().__init__(message)
        self.transitioning = transitioning
        self.sense_key = 0x02
        self.asc, self.ascq = (0x04, 0x0A) if transitioning else (0x04, 0x0C)


@dataclass(frozen=True)
class ReplicaMetadata:
    """What a replica must remember across restarts."""

    device: str
    node: str
    generation: int = 0
    state: ReplicaState = ReplicaState.NOT_SYNCHRONIZED
    #: carried on without its partner since ``partner_left_at``
    alone: bool = False
    #: generation at which the partner was last in sync (fast resync basis)
    partner_left_at: int = 0
    #: the last shutdown flushed everything and saved the dirty map
    clean_shutdown: bool = False
    dirty_map_valid: bool = False
    #: an administrator marked this replica synchronized by hand
    forced: bool = False
    initial_sync_done: bool = False
    #: the image is a complete copy of its generation (DRBD: Consistent, UpToDate or
    #: Outdated); False while it is the target of an unfinished resync (Inconsistent)
    #: or an initial copy, and for metadata from before the field unless Synchronized
    consistent: bool = False
    #: the partner's summary from its last HELLO (without its activity log): after a
    #: restart this replica still knows whether the partner went ahead of it
    partner_seen: dict[str, Any] | None = None
    events: tuple[str, ...] = field(default=())

    def save(self, path: Path) -> None:
        body = asdict(self)
        body["state"] = self.state.value
        body["events"] = list(self.events[-50:])
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(body, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @classmethod
    def load(cls, path: Path, device: str, node: str) -> ReplicaMetadata:
        try:
            body = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(device=device, node=node)
        except (OSError, json.JSONDecodeError) as exc:
            raise MetadataError(
                f"HA metadata {path} is unreadable ({exc}); restore it or recreate the replica"
            ) from None
        body["state"] = ReplicaState(body["state"])
        body["events"] = tuple(body.get("events", ()))
        # older files: only a Synchronized replica is known to be complete (the safe side)
        body.setdefault("consistent", body["state"] is ReplicaState.SYNCHRONIZED)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in body.items() if k in known})

    def with_event(self, text: str, **changes: object) -> ReplicaMetadata:
        log.info("HA device %s on %s: %s", self.device, self.node, text)
        return replace(self, events=(*self.events, text)[-50:], **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ReplicaSummary:
    """What nodes tell each other in HELLO."""

    node: str
    priority: int  # 1 is the highest priority
    generation: int
    state: ReplicaState
    alone: bool
    partner_left_at: int
    clean_shutdown: bool
    dirty_map_valid: bool
    forced: bool = False
    #: regions (lba, count) this replica had writes in flight in when it crashed
    #: (its activity log): they may differ from the partner's until resynced
    activity_log: tuple[tuple[int, int], ...] = ()
    #: the activity log was found after the last shutdown (a clean one empties it), so
    #: ``activity_log`` is every region where this replica may differ from its partner
    activity_log_known: bool = False
    #: the image is a complete copy of its generation (``ReplicaMetadata.consistent``;
    #: a partner that does not say so is taken as incomplete)
    consistent: bool = False

    def to_json(self) -> dict[str, object]:
        body = asdict(self)
        body["state"] = self.state.value
        body["activity_log"] = [list(e) for e in self.activity_log]
        return body

    @classmethod
    def from_json(cls, body: dict[str, object]) -> ReplicaSummary:
        values = dict(body)
        values["state"] = ReplicaState(str(values["state"]))
        extents = values.get("activity_log", [])
        values["activity_log"] = tuple((int(e[0]), int(e[1]))  # type: ignore[index]
                                       for e in extents)  # type: ignore[union-attr]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]

    @classmethod
    def of(cls, meta: ReplicaMetadata, priority: int) -> ReplicaSummary:
        return cls(node=meta.node, priority=priority, generation=meta.generation,
                   state=meta.state, alone=meta.alone, partner_left_at=meta.partner_left_at,
                   clean_shutdown=meta.clean_shutdown, dirty_map_valid=meta.dirty_map_valid,
                   forced=meta.forced, consistent=meta.consistent)


class SyncLossDecision(enum.StrEnum):
    CARRY_ON_ALONE = "carry on alone"
    STOP = "stop serving"


def decide_on_sync_loss(
    strategy: FailoverStrategy,
    *,
    my_priority: int,
    partner_priority: int,
    partner_alive: bool,
    witness_granted: bool | None = None,
    partner_synchronized: bool = True,
) -> SyncLossDecision:
    """What a Synchronized node does when its sync link to the partner is lost.

    ``partner_alive`` is whether the heartbeat channel answered in time;
    ``witness_granted`` whether the witness granted this node the next
    generation (node-majority only; ``None`` when the witness was unreachable).
    ``partner_synchronized`` is False when the partner was the target of this
    node's resync: it serves nothing and becomes Synchronized only by this node's
    RESYNC_DONE, so this node is the only one that can serve and carries on
    alone whatever the strategy and priorities say (stopping would leave no
    replica to serve, and the newest data on a replica that must not serve).
    """
    if not partner_synchronized:
        return SyncLossDecision.CARRY_ON_ALONE
    if strategy is FailoverStrategy.NODE_MAJORITY:
        return SyncLossDecision.CARRY_ON_ALONE if witness_granted else SyncLossDecision.STOP
    if not partner_alive:
        # Sync and heartbeat both silent: assume the partner is dead. If this
        # is really a partition, both sides do this: the split-brain risk.
        return SyncLossDecision.CARRY_ON_ALONE
    return (SyncLossDecision.CARRY_ON_ALONE if my_priority < partner_priority
            else SyncLossDecision.STOP)


class ResyncMode(enum.StrEnum):
    NONE = "none"
    FAST = "fast"
    FULL = "full"


@dataclass(frozen=True)
class ReconnectPlan:
    source: str | None  # node whose data wins; None when neither may be the source
    target: str | None
    mode: ResyncMode
    reason: str
    split_brain: bool = False
    #: nobody can tell which replica holds every acknowledged write: both stay Not
    #: synchronized until an administrator marks one (split brain, or undecidable)
    needs_administrator: bool = False


def _may_be_source(r: ReplicaSummary) -> bool:
    return r.state is ReplicaState.SYNCHRONIZED


def _complete(r: ReplicaSummary) -> bool:
    """Its image is a whole copy of its generation (not a half-done resync target)."""
    return r.state is ReplicaState.SYNCHRONIZED or r.consistent


def _descends(newer: ReplicaSummary, older: ReplicaSummary) -> bool:
    """``newer`` holds every write ``older`` ever acknowledged, and more.

    A replica acknowledges a write its partner lacks only after it persisted a new
    generation (carrying on alone); ``partner_left_at`` is the generation at which the
    two were last in sync. So ``newer`` moved past ``older`` and ``older`` did not move
    since they were last in sync (DRBD: the peer's current UUID is in my history)."""
    return newer.generation > older.generation and older.generation <= newer.partner_left_at


def _by_priority(a: ReplicaSummary, b: ReplicaSummary) -> tuple[ReplicaSummary, ReplicaSummary]:
    """The pair in a fixed order, so both nodes word a verdict the same way."""
    return (a, b) if (a.priority, a.node) <= (b.priority, b.node) else (b, a)


def holds_newer_writes(partner: ReplicaSummary, mine: ReplicaSummary) -> bool:
    """The partner provably holds acknowledged writes this replica lacks (it carried on
    alone past this one, its image is complete, and this one did not carry on alone
    too): marking this replica synchronized would throw them away."""
    return _complete(partner) and _descends(partner, mine) and not (partner.alone
                                                                     and mine.alone)


def _undecided(a: ReplicaSummary, b: ReplicaSummary, why: str) -> ReconnectPlan:
    a, b = _by_priority(a, b)
    return ReconnectPlan(None, None, ResyncMode.NONE,
                         f"{why}: {a.node} (generation {a.generation}) and {b.node} "
                         f"(generation {b.generation}); both stay Not synchronized until an "
                         "administrator marks one synchronized", needs_administrator=True)


def _split_brain(a: ReplicaSummary, b: ReplicaSummary) -> ReconnectPlan:
    a, b = _by_priority(a, b)
    return ReconnectPlan(None, None, ResyncMode.NONE,
                         f"split brain: {a.node} (generation {a.generation}) and {b.node} "
                         f"(generation {b.generation}) both carried on alone; both stay "
                         "Not synchronized until an administrator marks one synchronized",
                         split_brain=True, needs_administrator=True)


def plan_reconnect(a: ReplicaSummary, b: ReplicaSummary, *,
                   merge_split_brain: bool = False) -> ReconnectPlan:
    """Decide how two replicas that (re)connect converge.

    Two replicas that both carried on alone hold writes the other lacks: split brain.
    Neither is the source; both stay Not synchronized until an administrator marks
    one (``merge_split_brain``: the old, wrong behaviour kept as a defect mode, which
    keeps the higher generation and discards the rest). Otherwise the source is the
    replica that provably holds every acknowledged write: the Synchronized one, unless
    the other carried on alone past it (its generation descends from the
    Synchronized one's); with neither Synchronized, see ``_plan_neither_synchronized``.
    """
    if not _may_be_source(a) and not _may_be_source(b):
        return _plan_neither_synchronized(a, b)
    if _may_be_source(a) != _may_be_source(b):
        src, dst = (a, b) if _may_be_source(a) else (b, a)
        if dst.alone and not src.forced:
            # dst carried on alone (and then left: its disk failed, or it restarted
            # while Not synchronized): src may lack writes dst acknowledged
            if src.alone and not merge_split_brain:
                return _split_brain(a, b)
            if _complete(dst) and _descends(dst, src):
                return ReconnectPlan(dst.node, src.node, _resync_mode(dst, src),
                                     f"{dst.node} is newer (generation {dst.generation} "
                                     f"descends from {src.generation}): it carried on alone "
                                     f"and left on its own failure; {src.node} is outdated")
            if dst.generation >= src.generation and not merge_split_brain:
                return _undecided(a, b, f"{dst.node} carried on alone and {src.node} does "
                                        "not descend from it")
        return ReconnectPlan(src.node, dst.node, _resync_mode(src, dst),
                             f"{dst.node} is {dst.state.value}")
    # Both Synchronized.
    if a.forced != b.forced:
        src, dst = (a, b) if a.forced else (b, a)
        return ReconnectPlan(src.node, dst.node, ResyncMode.FULL,
                             f"{src.node} was marked synchronized by an administrator")
    if a.alone and b.alone and not merge_split_brain:
        return _split_brain(a, b)
    if a.alone and b.alone:
        src, dst = _by_generation_then_priority(a, b)
        return ReconnectPlan(src.node, dst.node, ResyncMode.FULL,
                             f"split brain: both served alone; keeping {src.node} "
                             f"(generation {src.generation}), discarding writes on {dst.node} "
                             f"since generation {dst.partner_left_at}", split_brain=True)
    if a.generation != b.generation or a.alone or b.alone:
        src, dst = _by_generation_then_priority(a, b)
        return ReconnectPlan(src.node, dst.node, _resync_mode(src, dst),
                             f"{src.node} is newer (generation {src.generation} > "
                             f"{dst.generation})")
    if a.clean_shutdown and b.clean_shutdown and not a.activity_log and not b.activity_log:
        return ReconnectPlan(None, None, ResyncMode.NONE, "both replicas are identical")
    return _went_down_together(a, b)


def _went_down_together(a: ReplicaSummary, b: ReplicaSummary) -> ReconnectPlan:
    """Equal generations, neither carried on alone: both hold every acknowledged write;
    they may differ only where writes were in flight (their activity logs name those)."""
    src, dst = (a, b) if a.priority < b.priority else (b, a)
    if not _complete(src):
        src, dst = dst, src
    if a.activity_log_known and b.activity_log_known and _complete(dst):
        return ReconnectPlan(src.node, dst.node, ResyncMode.FAST,  # DRBD: the hot extents
                             "both went down together uncleanly: their activity logs name "
                             "the regions in-flight writes may have left different")
    return ReconnectPlan(src.node, dst.node, ResyncMode.FULL,
                         "both went down together uncleanly: in-flight writes may differ")


def _plan_neither_synchronized(a: ReplicaSummary, b: ReplicaSummary) -> ReconnectPlan:
    """Neither replica is Synchronized (DRBD: both Outdated/Inconsistent, or one of them).

    The source is picked without an administrator when exactly one provably holds every
    write the device acknowledged (StarWind: "the node with the most recent data"):

    - both carried on alone: split brain, nobody can tell;
    - one has a complete image whose generation descends from the other's (it carried
      on alone past it, e.g. then detached on its own disk failure, whose failed writes
      were never acknowledged; the other is outdated or an unfinished resync target);
    - equal generations, neither carried on alone (both stopped, or went down together):
      every acknowledged write is on both; the higher-priority complete one is the
      source (activity logs or a full copy cover what in-flight writes left different).

    Anything else (neither complete, or generations that do not descend) waits for an
    administrator, as before.
    """
    if a.alone and b.alone:
        return _split_brain(a, b)
    for new, old in ((a, b), (b, a)):
        if _descends(new, old):
            if not _complete(new):
                return _undecided(a, b, f"neither replica is synchronized and {new.node}, "
                                        "the newer, is incomplete (an unfinished resync)")
            return ReconnectPlan(new.node, old.node, _resync_mode(new, old),
                                 f"neither replica is synchronized; {new.node} is the newest "
                                 f"complete one (generation {new.generation} descends from "
                                 f"{old.node}'s {old.generation})")
    if a.generation != b.generation or a.alone or b.alone:
        return _undecided(a, b, "neither replica is synchronized and neither generation "
                                "descends from the other")
    if not _complete(a) and not _complete(b):
        return _undecided(a, b, "neither replica is synchronized and neither is complete")
    plan = _went_down_together(a, b)
    return replace(plan, reason=f"neither replica is synchronized, equal generations; "
                                f"{plan.reason}")


def _by_generation_then_priority(a: ReplicaSummary,
                                 b: ReplicaSummary) -> tuple[ReplicaSummary, ReplicaSummary]:
    if (a.generation, -a.priority) >= (b.generation, -b.priority):
        return a, b
    return b, a


def _resync_mode(src: ReplicaSummary, dst: ReplicaSummary) -> ResyncMode:
    fast = (src.alone and src.dirty_map_valid and not src.forced
            and dst.generation == src.partner_left_at)
    return ResyncMode.FAST if fast else ResyncMode.FULL


def startup_state(meta: ReplicaMetadata) -> ReplicaState:
    """The state of a replica that starts and has not reached its partner yet.

    Only the replica that was already carrying on alone may serve again by
    itself: any other may be older than a partner it cannot see.
    """
    if meta.state is ReplicaState.SYNCHRONIZED and meta.alone:
        return ReplicaState.SYNCHRONIZED
    return ReplicaState.NOT_SYNCHRONIZED
