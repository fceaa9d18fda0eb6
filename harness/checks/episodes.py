"""Episodes and beyond-redundancy windows: availability judged honestly when faults overlap.

The model (Jepsen judges availability only while a quorum is available; a mirrored
device is available while one usable replica is):

- **Impaired replica.** A replica of the device is impaired at a time when

  (a) its node is under an *injected* node-level or disk fault that has taken
  effect and is not yet healed (``kill``, ``crash``, ``power-loss``, ``freeze``,
  ``restart``, ``disk-eio``, ``disk-nospace``, or a ``disk-slow`` of at least
  ``HUNG_DISK_MS``: a hung disk);
  (b) its node came back from such a fault and the history's ``replica`` records
  have not said ``synchronized`` since (a returned replica holds old data: not
  usable), for at most ``resync_s`` after the heal;
  (c) it left Synchronized during an injected sync-link fault of this device
  (``sync/...``: the device correctly stops the partner it cannot mirror to) and
  has not been Synchronized since, for at most ``resync_s`` after that heal.

  A replica impaired for no injected reason (the device dropped it by itself) is
  never impaired here: its outage stays the device's to explain.
- **Beyond redundancy.** An interval when *every* replica is impaired and the
  impairment that closed the set, the last usable replica's, is (a): an injected
  node or disk fault on it. A sync-link fault alone, or a device that stops its
  last healthy replica by itself, never opens a window. A 2-replica device whose
  every replica is impaired cannot serve: a MEDIUM ERROR or an I/O pause then is
  the honest answer. Errors completed and pauses inside a window, and up to a
  settle (``node_failover_s``) past its end, are *expected*: reported with
  numbers, never problems. Everything outside is judged as before.
- **Episode.** Faults whose windows (inject .. heal + ``EPISODE_SETTLE_S``)
  overlap form one episode. An episode's worst gap, longest operation, stalled
  operations and caller errors are judged against the largest applicable budget
  among its faults (``node_failover_s`` > ``path_failover_s`` ...), and the
  heal-based measures (paths back, synchronized again) from the episode's end: a
  freeze of one node is not charged to a path cut that overlapped it. Each
  fault's own numbers stay in the ``faults`` stats.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.workload.history import FaultWindow, ReplicaState

NODE_ACTIONS = ("kill", "crash", "power-loss", "freeze", "restart")
DISK_ACTIONS = ("disk-eio", "disk-nospace")
HUNG_DISK_MS = 1000.0  # a disk-slow at least this slow holds I/O like a failed disk
EPISODE_SETTLE_S = 2.0  # a fault's consequences may last this long past its heal
DEFAULT_SETTLE_S = 10.0  # failover after a window, when the budgets name none
SYNCHRONIZED = "synchronized"
DOWN = "down"


@dataclass(frozen=True, slots=True)
class Impairment:
    host: str
    start_ns: int
    end_ns: int
    cause: str  # the fault's name and why
    injected: bool  # (a): an injected fault active on the node


@dataclass(slots=True)
class RedundancyWindow:
    """An interval when every replica was impaired (see the module docstring)."""

    start_ns: int
    end_ns: int
    causes: list[str] = field(default_factory=list)  # per replica, what impaired it
    caller_errors: int = 0  # errors completed in it (or in its settle): expected

    def to_json(self, t0: int) -> dict[str, Any]:
        return {"from_s": round((self.start_ns - t0) / 1e9, 3),
                "to_s": round((self.end_ns - t0) / 1e9, 3), "causes": self.causes,
                "caller_errors": self.caller_errors}


def took_effect(w: FaultWindow) -> int:
    """When the fault was in place: its ``applied_ns`` (in its stop record), else its start."""
    applied = [int(r["applied_ns"]) for r in w.records if r.get("applied_ns") is not None]
    return max([w.start_ns, *applied])


def impaired_host(w: FaultWindow) -> str | None:
    """The storage node a node-level or disk fault impairs, or None for any other fault."""
    action, target = w.attrs.get("action"), w.attrs.get("target")
    if not isinstance(target, str) or not isinstance(action, str):
        return None
    if action in NODE_ACTIONS or action in DISK_ACTIONS:
        return target
    if action == "disk-slow":
        params = w.attrs.get("params") or {}
        if float(params.get("delay_ms", 0.0)) >= HUNG_DISK_MS:
            return target
    return None


def _states(replicas: Iterable[ReplicaState]) -> dict[str, list[tuple[int, str]]]:
    out: dict[str, list[tuple[int, str]]] = {}
    for e in sorted(replicas, key=lambda e: e.time_ns):
        out.setdefault(e.replica.rsplit("@", 1)[-1], []).append((e.time_ns, e.state))
    return out


def _state_at(states: list[tuple[int, str]], t: int) -> str | None:
    now = None
    for time_ns, state in states:
        if time_ns > t:
            break
        now = state
    return now


def _synchronized_from(states: list[tuple[int, str]], t: int) -> int | None:
    """The first time at or after ``t`` the replica is Synchronized (per its records)."""
    if _state_at(states, t) == SYNCHRONIZED:
        return t
    return next((time_ns for time_ns, s in states if time_ns > t and s == SYNCHRONIZED), None)


def impairments(faults: Sequence[FaultWindow], replicas: Sequence[ReplicaState],
                resync_s: float, end_ns: int) -> list[Impairment]:
    """Every interval a replica was impaired, and by which injected fault."""
    states = _states(replicas)
    resync = int(resync_s * 1e9)
    devices = {e.replica.rsplit("@", 1)[0] for e in replicas}
    out: list[Impairment] = []
    for w in faults:
        host = impaired_host(w)
        if host is not None and host in states:
            a, b = took_effect(w), (w.stop_ns if w.stop_ns is not None else end_ns)
            out.append(Impairment(host, a, b, w.name, True))
            if w.stop_ns is not None:
                back = _synchronized_from(states[host], w.stop_ns)
                until = min(back if back is not None else end_ns, w.stop_ns + resync, end_ns)
                if until > b:
                    out.append(Impairment(host, b, until,
                                          f"{w.name}, back but not yet Synchronized", False))
            continue
        target = str(w.attrs.get("target", ""))
        if not target.startswith("sync/") or target.rsplit("/", 1)[-1] not in devices:
            continue
        a, b = took_effect(w), (w.stop_ns if w.stop_ns is not None else end_ns)
        for host, hs in states.items():
            left = next((t for t, s in [(a, _state_at(hs, a)), *hs]
                         if a <= t <= b and s is not None and s not in (SYNCHRONIZED, DOWN)),
                        None)  # a node down is (a)'s, not the sync link's
            if left is None:
                continue
            back = _synchronized_from(hs, left)
            until = min(back if back is not None else end_ns, b + resync, end_ns)
            if until > left:
                out.append(Impairment(host, left, until,
                                      f"{w.name}, left Synchronized", False))
    return out


def beyond_redundancy(faults: Sequence[FaultWindow], replicas: Sequence[ReplicaState],
                      resync_s: float, end_ns: int) -> list[RedundancyWindow]:
    """The intervals every replica was impaired, each opened by an injected node or disk
    fault on the last usable replica (see the module docstring)."""
    hosts = sorted(_states(replicas))
    if not hosts:
        return []
    marks = impairments(faults, replicas, resync_s, end_ns)
    by_host = {h: [m for m in marks if m.host == h] for h in hosts}
    times = sorted({t for m in marks for t in (m.start_ns, m.end_ns)})
    windows: list[RedundancyWindow] = []
    current: RedundancyWindow | None = None
    for i, t in enumerate(times[:-1]):
        mid = (t + times[i + 1]) // 2  # the elementary interval [t, next) by its middle
        active = {h: [m for m in by_host[h] if m.start_ns <= mid < m.end_ns] for h in hosts}
        every = all(active.values())
        if every and current is not None:
            current.end_ns = times[i + 1]
            for h in hosts:
                for m in active[h]:
                    if m.cause not in current.causes:
                        current.causes.append(m.cause)
            continue
        current = None
        if not every:
            continue
        # opened here: the replica(s) whose impairment starts at t closed the set
        closing = [m for h in hosts for m in active[h] if m.start_ns == t]
        if any(m.injected for m in closing):
            current = RedundancyWindow(t, times[i + 1],
                                       [m.cause for h in hosts for m in active[h]])
            windows.append(current)
    return windows


def merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Intervals ``(start, end)`` with the overlapping ones joined, in time order."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def excused_spans(windows: Sequence[RedundancyWindow], settle_s: float) -> list[tuple[int, int]]:
    """The windows with their settle, merged: when errors and pauses are expected."""
    return merged((w.start_ns, w.end_ns + int(settle_s * 1e9)) for w in windows)


def outside(a: int, b: int, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``[a, b]`` with the spans cut out: the parts of it that are judged."""
    parts = [(a, b)]
    for s, e in spans:
        nxt = []
        for x, y in parts:
            if e <= x or s >= y:
                nxt.append((x, y))
                continue
            if x < s:
                nxt.append((x, s))
            if e < y:
                nxt.append((e, y))
        parts = nxt
    return parts


def judged_length(a: int, b: int, spans: Sequence[tuple[int, int]]) -> int:
    """The longest part of ``[a, b]`` outside the spans (a pause or an operation is judged
    by its longest stretch while a replica could serve)."""
    return max((y - x for x, y in outside(a, b, spans)), default=0)


def inside(t: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(s <= t <= e for s, e in spans)


def settle_s(budget: Mapping[str, float]) -> float:
    """How long after a window the device may take to serve again: its failover budget."""
    for name in ("node_failover_s", "io_pause_s", "path_failover_s"):
        if name in budget:
            return float(budget[name])
    return DEFAULT_SETTLE_S


@dataclass(slots=True)
class Episode:
    """Overlapping faults (inject .. heal + settle), judged as one."""

    index: int
    faults: list[FaultWindow]

    @property
    def start_ns(self) -> int:
        return min(f.start_ns for f in self.faults)

    @property
    def stop_ns(self) -> int | None:
        stops = [f.stop_ns for f in self.faults]
        return None if any(s is None for s in stops) else max(s for s in stops if s is not None)

    @property
    def name(self) -> str:
        if len(self.faults) == 1:
            return self.faults[0].name
        return (f"episode {self.index} ({len(self.faults)} faults: {self.faults[0].name} .. "
                f"{self.faults[-1].name})")

    def window(self, budget: Mapping[str, float]) -> FaultWindow:
        """The episode as one fault window, carrying its largest applicable gap budget."""
        if len(self.faults) == 1:
            return self.faults[0]
        named = [f.attrs.get("budget") for f in self.faults]
        names = [n if isinstance(n, str) and n in budget else "io_pause_s" for n in named]
        names = [n for n in names if n in budget]
        largest = max(names, key=lambda n: budget[n], default=None)
        paths = sorted({p for f in self.faults for p in (f.attrs.get("paths") or [])})
        attrs: dict[str, Any] = {"paths": paths, "kind": "episode"}
        if largest is not None:
            attrs["budget"] = largest
        return FaultWindow(-1 - self.index, self.name, self.start_ns, self.stop_ns, attrs,
                           [r for f in self.faults for r in f.records])


def episodes(faults: Sequence[FaultWindow], settle: float = EPISODE_SETTLE_S) -> list[Episode]:
    """Faults grouped where their windows (inject .. heal + settle) overlap."""
    out: list[Episode] = []
    reach = None
    for f in sorted(faults, key=lambda f: f.start_ns):
        end = None if f.stop_ns is None else f.stop_ns + int(settle * 1e9)
        if out and (reach is None or f.start_ns <= reach):
            out[-1].faults.append(f)
            reach = None if reach is None or end is None else max(reach, end)
        else:
            out.append(Episode(len(out), [f]))
            reach = end
    return out
