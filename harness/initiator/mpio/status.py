"""One path of a multipath device: its state machine, statistics and event log.

A *path* is one I_T_L nexus to the disk: an initiator port (its own session and
ISID) through one target portal to one LUN. Its life is a small state machine:

::

    ACTIVE  <-->  STANDBY          the MPIO designation of a healthy path
      |              |
      +----> FAILED <+             an I/O or the path checker found it dead
               |  ^
               v  |
           RECONNECTING ---------> ACTIVE / STANDBY (back to its designation)
    any state ---------> REMOVED   the device closed or the path was taken away

Every change is appended to a :class:`PathEventLog` as a :class:`PathEvent`
stamped with ``time.monotonic_ns()`` and the reason, so failover timing is read
off the log rather than guessed. :class:`PathStatistics` counts what each path
carried (ops, bytes, errors, latency) so a test can see where I/O went.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from harness.errors import SplitbrainError
from harness.scsi.alua import AccessState


class PathState(Enum):
    """The MPIO state of one path."""

    ACTIVE = "active"
    STANDBY = "standby"
    FAILED = "failed"
    RECONNECTING = "reconnecting"
    REMOVED = "removed"

    @property
    def healthy(self) -> bool:
        """True for a path that can carry I/O (its designation says whether it should)."""
        return self in (PathState.ACTIVE, PathState.STANDBY)


#: The asymmetric access state of a path's target port group (SPC-4 table 164), as
#: ``harness.scsi`` decodes it from REPORT TARGET PORT GROUPS; named for MPIO's use.
AluaState = AccessState


class PathStateError(SplitbrainError):
    """A state change the path state machine does not allow (a harness bug)."""


_ALLOWED: dict[PathState, frozenset[PathState]] = {
    PathState.ACTIVE: frozenset({PathState.STANDBY, PathState.FAILED, PathState.REMOVED}),
    PathState.STANDBY: frozenset({PathState.ACTIVE, PathState.FAILED, PathState.REMOVED}),
    PathState.FAILED: frozenset({PathState.RECONNECTING, PathState.REMOVED}),
    PathState.RECONNECTING: frozenset(
        {PathState.ACTIVE, PathState.STANDBY, PathState.FAILED, PathState.REMOVED}
    ),
    PathState.REMOVED: frozenset(),
}


def transition_allowed(old: PathState, new: PathState) -> bool:
    """Whether the path state machine allows ``old -> new``."""
    return new in _ALLOWED[old]


@dataclass(frozen=True)
class PathEvent:
    """One state change of one path."""

    ns: int
    path: str
    old: PathState
    new: PathState
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "ns": self.ns,
            "path": self.path,
            "old": self.old.value,
            "new": self.new.value,
            "reason": self.reason,
        }


class PathEventLog:
    """The append-only log of path state changes of one multipath device.

    Listeners are called synchronously on every append (the device uses one to
    wake I/O waiting for a path; the workload can use one to mirror events into
    its history).
    """

    def __init__(self) -> None:
        self._events: list[PathEvent] = []
        self._listeners: list[Callable[[PathEvent], None]] = []

    def append(self, event: PathEvent) -> None:
        self._events.append(event)
        for listener in list(self._listeners):
            listener(event)

    def subscribe(self, listener: Callable[[PathEvent], None]) -> Callable[[], None]:
        """Call ``listener`` on every new event; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._events))

    def __len__(self) -> int:
        return len(self._events)

    def for_path(self, path: str) -> list[PathEvent]:
        return [e for e in self._events if e.path == path]

    def since(self, ns: int) -> list[PathEvent]:
        return [e for e in self._events if e.ns >= ns]


@dataclass
class PathStatistics:
    """What one path carried: counted by the device on every completion."""

    ops: int = 0
    reads: int = 0
    writes: int = 0
    other: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    errors: int = 0
    redriven_away: int = 0
    latency_sum_ns: int = 0
    latency_max_ns: int = 0
    outstanding: int = 0
    bytes_in_flight: int = 0

    def started(self, nbytes: int) -> None:
        self.outstanding += 1
        self.bytes_in_flight += nbytes

    def finished(
        self, kind: str, nbytes: int, latency_ns: int, *, ok: bool, inflight_bytes: int
    ) -> None:
        """Account one finished command; ``kind`` is ``read``, ``write`` or ``other``."""
        self.outstanding -= 1
        self.bytes_in_flight -= inflight_bytes
        if not ok:
            self.errors += 1
            return
        self.ops += 1
        self.latency_sum_ns += latency_ns
        self.latency_max_ns = max(self.latency_max_ns, latency_ns)
        if kind == "read":
            self.reads += 1
            self.bytes_read += nbytes
        elif kind == "write":
            self.writes += 1
            self.bytes_written += nbytes
        else:
            self.other += 1

    @property
    def latency_mean_ns(self) -> float:
        return self.latency_sum_ns / self.ops if self.ops else 0.0

    def to_dict(self) -> dict[str, float]:
        out: dict[str, float] = dict(vars(self))
        out["latency_mean_ns"] = self.latency_mean_ns
        return out


@dataclass
class PathStatus:
    """The state of one path as the multipath device tracks it.

    ``designation`` is the MPIO designation the path returns to after recovery
    (``ACTIVE`` or ``STANDBY``); ``alua`` is the access state its target port
    group last reported (``ACTIVE_OPTIMIZED`` when the target has no ALUA).
    """

    name: str
    log: PathEventLog
    designation: PathState = PathState.ACTIVE
    alua: AluaState = AluaState.ACTIVE_OPTIMIZED
    weight: int = 0
    preferred: bool = False
    state: PathState = PathState.RECONNECTING  # the first login is a connect attempt
    since_ns: int = field(default_factory=time.monotonic_ns)
    last_error: str = ""
    stats: PathStatistics = field(default_factory=PathStatistics)

    def __post_init__(self) -> None:
        if self.designation not in (PathState.ACTIVE, PathState.STANDBY):
            raise PathStateError(
                f"path {self.name}: designation must be active or standby, "
                f"got {self.designation.value}"
            )

    def move(self, new: PathState, reason: str) -> PathEvent | None:
        """Change state (logging the event); a move to the current state is a no-op."""
        if new == self.state:
            return None
        if not transition_allowed(self.state, new):
            raise PathStateError(
                f"path {self.name}: state change {self.state.value} -> {new.value} "
                f"is not allowed ({reason})"
            )
        event = PathEvent(time.monotonic_ns(), self.name, self.state, new, reason)
        self.state = new
        self.since_ns = event.ns
        if new == PathState.FAILED:
            self.last_error = reason
        self.log.append(event)
        return event

    def designate(self, designation: PathState, reason: str = "designated") -> None:
        """Set the MPIO designation (active/standby); a healthy path moves to it now."""
        if designation not in (PathState.ACTIVE, PathState.STANDBY):
            raise PathStateError(
                f"path {self.name}: designation must be active or standby, "
                f"got {designation.value}"
            )
        self.designation = designation
        if self.state.healthy:
            self.move(designation, reason)
