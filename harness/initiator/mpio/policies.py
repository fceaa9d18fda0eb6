"""Load-balance policies of a multipath device, as the Windows MSDSM names them.

A policy is a pure path selector: given a snapshot of every path (state, MPIO
designation, ALUA access state, outstanding commands, bytes in flight, weight,
preferred flag) it names the path the next I/O goes to, or ``None`` when no path
can carry I/O. Policies may keep a cursor (round robin) or a sticky choice
(failover only) between calls, but never look at anything but the snapshots.

ALUA first, then the policy. Every policy only chooses among the paths of the
best *tier* that has a usable path:

- tier 0: active/optimized (and LBA dependent) ports,
- tier 1: active/non-optimized ports,
- tier 2: ALUA standby ports, and, for the policies that honour the MPIO
  designation (Failover Only, Round Robin With Subset), paths designated
  standby,

and never a path that is failed, reconnecting or removed, nor one whose port is
unavailable, offline or transitioning. "Standby only when nothing better is
left" is therefore a property of every policy, not of one.

The policies (MSDSM ``Set-MSDSMGlobalDefaultLoadBalancePolicy`` names in
brackets): Failover Only (FOO), Round Robin (RR), Round Robin With Subset (RRWS),
Least Queue Depth (LQD), Weighted Paths (WP), Least Blocks (LB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from harness.errors import SplitbrainError
from harness.initiator.mpio.status import AluaState, PathState

UNUSABLE = 99


@dataclass(frozen=True)
class PathSnapshot:
    """What a policy sees of one path at the moment it chooses."""

    name: str
    state: PathState = PathState.ACTIVE
    designation: PathState = PathState.ACTIVE
    alua: AluaState = AluaState.ACTIVE_OPTIMIZED
    outstanding: int = 0
    bytes_in_flight: int = 0
    weight: int = 0
    preferred: bool = False


#: Access states a path may carry I/O in: active ones, and standby as a last resort
#: (MSDSM moves I/O to a standby path only when nothing better is left).
ALUA_CARRIES_IO = frozenset({AluaState.ACTIVE_OPTIMIZED, AluaState.ACTIVE_NON_OPTIMIZED,
                             AluaState.LBA_DEPENDENT, AluaState.STANDBY})


def tier(path: PathSnapshot, *, honour_designation: bool) -> int:
    """The ALUA tier of a path (lower is better), or ``UNUSABLE``."""
    if not path.state.healthy or path.alua not in ALUA_CARRIES_IO:
        return UNUSABLE
    if path.alua == AluaState.STANDBY:
        return 2
    if honour_designation and path.designation == PathState.STANDBY:
        return 2
    if path.alua == AluaState.ACTIVE_NON_OPTIMIZED:
        return 1
    return 0


class PolicyError(SplitbrainError):
    """An unknown load-balance policy name."""


class LoadBalancePolicy:
    """Base of the policies: picks the best tier, then lets the policy choose in it."""

    name: ClassVar[str] = ""
    msdsm: ClassVar[str] = ""
    honour_designation: ClassVar[bool] = False
    _order: Sequence[str] = ()

    def best_tier(self, paths: Sequence[PathSnapshot]) -> list[PathSnapshot]:
        """The usable paths of the best tier, in the device's path order."""
        tiers = [tier(p, honour_designation=self.honour_designation) for p in paths]
        best = min(tiers, default=UNUSABLE)
        if best == UNUSABLE:
            return []
        return [p for p, t in zip(paths, tiers, strict=True) if t == best]

    def select(self, paths: Sequence[PathSnapshot]) -> str | None:
        """The name of the path for the next I/O, or None when no path is usable."""
        self._order = [p.name for p in paths]
        candidates = self.best_tier(paths)
        if not candidates:
            return None
        return self.choose(candidates).name

    def choose(self, candidates: list[PathSnapshot]) -> PathSnapshot:  # pragma: no cover
        raise NotImplementedError


class _Rotation:
    """A round-robin cursor over path names that survives paths coming and going."""

    def __init__(self) -> None:
        self._last: str | None = None

    def next(self, candidates: list[PathSnapshot], order: Sequence[str]) -> PathSnapshot:
        if self._last is None:
            pick = candidates[0]
        else:
            # the first candidate after the last pick in the device's path order
            position = {n: i for i, n in enumerate(order)}
            last = position.get(self._last, -1)
            after = [c for c in candidates if position.get(c.name, -1) > last]
            pick = after[0] if after else candidates[0]
        self._last = pick.name
        return pick


class FailoverOnly(LoadBalancePolicy):
    """One path carries all I/O; the others wait as standby.

    The preferred path is used whenever it is in the best tier (failback); else
    the path in use stays in use while it is usable (no flapping); else the first
    usable path in order takes over.
    """

    name = "failover-only"
    msdsm = "FOO"
    honour_designation = True

    def __init__(self) -> None:
        self.current: str | None = None

    def choose(self, candidates: list[PathSnapshot]) -> PathSnapshot:
        preferred = [c for c in candidates if c.preferred]
        if preferred:
            pick = preferred[0]
        else:
            sticky = [c for c in candidates if c.name == self.current]
            pick = sticky[0] if sticky else candidates[0]
        self.current = pick.name
        return pick


class RoundRobin(LoadBalancePolicy):
    """Every usable path of the best tier in turn (MPIO designations ignored)."""

    name = "round-robin"
    msdsm = "RR"

    def __init__(self) -> None:
        self._rotation = _Rotation()

    def choose(self, candidates: list[PathSnapshot]) -> PathSnapshot:
        return self._rotation.next(candidates, self._order)


class RoundRobinWithSubset(RoundRobin):
    """Round robin over the paths designated active; standby paths only when none is left."""

    name = "round-robin-with-subset"
    msdsm = "RRWS"
    honour_designation = True


class LeastQueueDepth(LoadBalancePolicy):
    """The path with the fewest outstanding commands; ties go round robin."""

    name = "least-queue-depth"
    msdsm = "LQD"

    def __init__(self) -> None:
        self._rotation = _Rotation()

    def choose(self, candidates: list[PathSnapshot]) -> PathSnapshot:
        least = min(c.outstanding for c in candidates)
        return self._rotation.next([c for c in candidates if c.outstanding == least], self._order)


class WeightedPaths(LoadBalancePolicy):
    """The path with the lowest weight (MSDSM: a larger weight is a lower priority)."""

    name = "weighted-paths"
    msdsm = "WP"

    def choose(self, candidates: list[PathSnapshot]) -> PathSnapshot:
        return min(candidates, key=lambda c: c.weight)


class LeastBlocks(LoadBalancePolicy):
    """The path with the fewest bytes in flight; ties go round robin."""

    name = "least-blocks"
    msdsm = "LB"

    def __init__(self) -> None:
        self._rotation = _Rotation()

    def choose(self, candidates: list[PathSnapshot]) -> PathSnapshot:
        least = min(c.bytes_in_flight for c in candidates)
        return self._rotation.next(
            [c for c in candidates if c.bytes_in_flight == least], self._order
        )


POLICIES: dict[str, type[LoadBalancePolicy]] = {
    cls.name: cls
    for cls in (
        FailoverOnly,
        RoundRobin,
        RoundRobinWithSubset,
        LeastQueueDepth,
        WeightedPaths,
        LeastBlocks,
    )
}


def policy_named(name: str) -> LoadBalancePolicy:
    """A fresh policy by its name (``round-robin``) or its MSDSM short name (``RR``)."""
    key = name.strip()
    for cls in POLICIES.values():
        if key.lower() in (cls.name, cls.msdsm.lower(), cls.__name__.lower()):
            return cls()
    known = ", ".join(f"{c.name} ({c.msdsm})" for c in POLICIES.values())
    raise PolicyError(f"unknown MPIO load-balance policy {name!r}; use one of {known}")
