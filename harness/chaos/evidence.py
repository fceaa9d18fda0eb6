"""Evidence that each injected fault took effect: a fault that changed nothing is no pass.

The model: every fault the nemesis injects names what it must break, and the
run proves that it did, in what the site itself shows:

- a storage node killed, crashed, powered off or stopped: its process is gone;
  frozen: its process is stopped (SIGSTOP, state ``T``) while its sockets stay open;
  restarted: its replica left Synchronized for a while;
- the sync link cut, black-holed, flapping or lost one way: a replica of the
  device left Synchronized, or a node reports its sync link lost;
- the heartbeat link broken: a node reports its heartbeat link lost;
- an iSCSI path broken: the cluster node's MPIO took that path down;
- a link delayed (sync or path): the writes that crossed it took at least the delay,
  or else (no write completed across it, e.g. while a disk hung) the lab's proxy held
  traffic on that link back (every link carries keepalives): the ``SlowLinkFault``'s
  ``effect()``, counted by the proxy for the state the fault set; the same for a
  throttled link;
- a disk fault on one replica: that replica left Synchronized, I/O on its paths
  failed, or (slow) took at least the delay; a disk slow for longer than its window
  (hung: its I/O is released at the heal): I/O held for half of that window;
- a node cut off from the witness: it lost the vote (left Synchronized) at the
  next decision (a witness cut alone changes nothing until then);
- a cluster node's client crashed: operations it had in flight were abandoned.

Node and link states are sampled *live* right after the inject (``LiveProbe``,
polling until the fault's end or ``LIVE_DEADLINE_S``), or, on a real host, as the
fault itself shows it there (its ``effect()``); what only the history
shows (path states, latencies, replica states) is judged after the run
(``judge``). Each fault gets one ``FaultEvidence``: proved or not, and in words.
A delayed or throttled link is judged by the history first (the latency its
operations saw is what the fault is for), its live proof second (polled until the
fault's end, since what it held back grows while it lasts).

``judge`` reads the operations once, into an ``OpIndex`` (columns in invoke order,
``StreamedHistory.index``), and answers each fault's window by binary search: a
nightly's million operations are not read again for each of its faults.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import SplitbrainError
from harness.faults.nemesis import FaultSpec, Step
from harness.lab.inventory import HaDevice, Inventory, NetworkRole
from harness.workload.history import ABANDONED, RecordedHistory
from harness.workload.history_stream import (
    FAIL,
    INFO,
    NEVER,
    OK,
    OUTCOME_CODES,
    PENDING,
    READ,
    WRITE,
    OpIndex,
    StreamedHistory,
)

LIVE_DEADLINE_S = 10.0
POLL_S = 0.1
GRACE_NS = 10_000_000_000  # history evidence may show up to 10 s after the heal

NODE_GONE = ("kill", "crash", "stop", "power-loss", "power")
LINK_BREAKS = ("cut", "blackhole", "flap", "down", "oneway")
LINK_SLOWS = ("delay", "throttle")  # judged by the history first, their live proof second


@dataclass
class FaultEvidence:
    """Whether one fault took effect, and what showed it."""

    name: str
    spec: FaultSpec
    proved: bool
    text: str
    at_ns: int | None = None  # when it was seen (monotonic), if live


def classify(spec: FaultSpec, inventory: Inventory, device: HaDevice) -> str:
    """What a spec breaks: ``node``, ``sync``, ``heartbeat``, ``path``, ``witness``, ``other``."""
    target = spec.target
    if spec.action.startswith("disk-"):
        return "disk"
    if target in inventory.hosts:
        return "node"
    net = target.split("/", 1)[0]
    if net in inventory.networks:
        network = inventory.network(net)
        if network.has_role(NetworkRole.SYNC):
            return "sync"
        if network.has_role(NetworkRole.HEARTBEAT):
            return "heartbeat"
        if network.has_role(NetworkRole.ISCSI):
            return "path"
        if device.witness and f"/{device.witness}" in target:
            return "witness"
    return "other"


class LiveProbe:
    """Samples the site right after each inject; ``node_state(host)`` and ``ha_status(host)``
    are the site's readers (None when it has none)."""

    def __init__(
        self,
        inventory: Inventory,
        device: HaDevice,
        *,
        node_state: Callable[[str], str | None] | None,
        ha_status: Callable[[str], Mapping[str, Any] | None] | None,
    ) -> None:
        self.inventory, self.device = inventory, device
        self.node_state, self.ha_status = node_state, ha_status
        self.seen: dict[str, FaultEvidence] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def hook(self, name: str, step: Step, fault: Any) -> None:
        """The nemesis's ``on_injected``: probe in the background, never delay the schedule.
        A real host's fault shows its own effect (``effect()``: the process gone or stopped,
        the path's sessions reset, as verified when it was applied; the packets its rules
        dropped; the adapter down): that is polled instead, every part of a composite."""
        parts = getattr(fault, "parts", [fault])
        effects = [getattr(part, "effect", None) for part in parts]
        own = None
        if effects and all(callable(e) for e in effects):
            def own() -> str | None:
                seen = [e() for e in effects]  # type: ignore[misc]
                return "; ".join(seen) if all(seen) else None  # type: ignore[arg-type]

        t = threading.Thread(target=self._probe, args=(name, step, own), daemon=True,
                             name=f"evidence {name}")
        self._threads.append(t)
        t.start()

    def join(self) -> None:
        for t in self._threads:
            t.join(LIVE_DEADLINE_S + 5.0)

    def _probe(self, name: str, step: Step,
               own: Callable[[], str | None] | None = None) -> None:
        check = own if own is not None else self._check_for(step.spec)
        if check is None:
            return
        deadline = time.monotonic() + min(max(step.duration_s, 0.5), LIVE_DEADLINE_S)
        # what a slowed link held back grows while it lasts: read it until the fault's end
        growing = step.spec.action in LINK_SLOWS
        while True:
            try:
                text = check()
            except (SplitbrainError, OSError):
                text = None
            if text is not None:
                with self._lock:
                    first = self.seen.get(name)
                    self.seen[name] = FaultEvidence(
                        name, step.spec, True, text,
                        first.at_ns if first is not None else time.monotonic_ns())
                if not growing:
                    return
            if time.monotonic() >= deadline:
                return
            time.sleep(POLL_S)

    def _check_for(self, spec: FaultSpec) -> Callable[[], str | None] | None:
        what = classify(spec, self.inventory, self.device)
        if what == "node" and self.node_state is not None:
            host, action = spec.target, spec.action
            if action in NODE_GONE:
                return lambda: (f"process of {host} is gone"
                                if self.node_state(host) == "gone" else None)
            if action == "freeze":
                return lambda: (f"process of {host} is stopped (SIGSTOP), sockets open"
                                if self.node_state(host) == "frozen" else None)
            return None
        if what in ("sync", "heartbeat") and spec.action in LINK_BREAKS \
                and self.ha_status is not None:
            key = "sync_link" if what == "sync" else "heartbeat_link"
            hosts = [r.host for r in self.device.replicas]

            def link_lost() -> str | None:
                for host in hosts:
                    status = self.ha_status(host)
                    if status is None:
                        continue
                    if status.get(key) is False:
                        return f"{host} reports its {what} link to its partner lost"
                    if what == "sync" and str(status.get("state", "")).lower() != \
                            "synchronized":
                        return f"{host}'s replica is {status.get('state')}"
                return None

            return link_lost
        return None


def judge(
    steps: list[tuple[str, Step]],
    history: StreamedHistory | RecordedHistory,
    live: Mapping[str, FaultEvidence],
    inventory: Inventory,
    device: HaDevice,
) -> list[FaultEvidence]:
    """One ``FaultEvidence`` per injected fault: live evidence, else the history's (for a
    slowed link: the history's, else the live proof)."""
    windows = {f.name: f for f in history.faults}
    ops = _Ops(history)
    out = []
    for name, step in steps:
        seen = live.get(name)
        if seen is not None and step.spec.action not in LINK_SLOWS:
            out.append(seen)
            continue
        window = windows.get(name)
        if window is None:
            if seen is not None:
                out.append(seen)
            continue  # never injected (the run ended first): nothing to prove
        text = _from_history(step.spec, window.start_ns, window.stop_ns, history, inventory,
                             device, ops)
        if text is None and seen is not None:
            out.append(seen)
            continue
        out.append(FaultEvidence(name, step.spec, text is not None,
                                 text or _missing(step.spec, inventory, device)))
    return out


class _Ops:
    """The history's operations as an ``OpIndex``, built on first use, and their errors."""

    def __init__(self, history: StreamedHistory | RecordedHistory) -> None:
        self.history = history
        self._index: OpIndex | None = None

    @property
    def index(self) -> OpIndex:
        if self._index is None:
            h = self.history
            if isinstance(h, StreamedHistory):
                self._index = h.index()
            else:
                names = sorted({o.path for o in h.ops if o.path is not None})
                code = {n: i for i, n in enumerate(names)}
                self._index = OpIndex.of({
                    "invoke": np.array([o.invoke_ns for o in h.ops], dtype=np.int64),
                    "complete": np.array([NEVER if o.complete_ns is None else o.complete_ns
                                          for o in h.ops], dtype=np.int64),
                    "outcome": np.array([PENDING if o.complete_ns is None and o.outcome == "info"
                                         else OUTCOME_CODES[o.outcome] for o in h.ops],
                                        dtype=np.int8),
                    "f": np.array([READ if o.f == "read" else WRITE if o.f == "write" else 2
                                   for o in h.ops], dtype=np.int8),
                    "path": np.array([-1 if o.path is None else code[o.path] for o in h.ops],
                                     dtype=np.int16),
                    "complete_at": np.arange(len(h.ops), dtype=np.int64),  # the op's position
                }, names)
        return self._index

    def errors(self, rows: np.ndarray) -> list[str | None]:
        at = self.index.complete_at[rows].tolist()
        if isinstance(self.history, StreamedHistory):
            return [self.history.error_at(a) if a >= 0 else None for a in at]
        return [self.history.ops[a].error for a in at]

    def abandoned(self, rows: np.ndarray) -> list[bool]:
        if isinstance(self.history, StreamedHistory):
            return self.history.abandoned(self.index.complete_at[rows].tolist())
        return [e == ABANDONED for e in self.errors(rows)]


def _missing(spec: FaultSpec, inventory: Inventory, device: HaDevice) -> str:
    what = "client" if spec.action == "client-crash" else classify(spec, inventory, device)
    expected = {
        "node": "the node's process gone or stopped, or its replica leaving Synchronized",
        "sync": "a replica leaving Synchronized or a node reporting its sync link lost",
        "heartbeat": "a node reporting its heartbeat link lost",
        "path": "the cluster node's MPIO taking the path down, or I/O on it slowed",
        "disk": "the replica leaving Synchronized, or I/O on its paths failing or slowed",
        "witness": "the node cut off from the witness losing the vote (leaving Synchronized)",
        "client": "operations the crashed client had in flight abandoned",
    }.get(what, "any visible change")
    return f"no evidence that {spec} took effect: expected {expected}"


def _from_history(spec: FaultSpec, start: int, stop: int | None,
                  history: StreamedHistory | RecordedHistory,
                  inventory: Inventory, device: HaDevice, ops: _Ops | None = None) -> str | None:
    ops = ops if ops is not None else _Ops(history)
    end = (stop if stop is not None else start) + GRACE_NS
    what = classify(spec, inventory, device)
    target = spec.target
    if spec.action == "client-crash":
        ix = ops.index
        rows = ix.completed(start, min(end, NEVER - 1))
        rows = rows[ix.outcome[rows] == INFO]
        gone = sum(ops.abandoned(rows))
        return (f"{gone} operations in flight were abandoned when {target} crashed "
                "(never re-driven)") if gone else None
    if what == "path" and spec.action in LINK_BREAKS:
        net_host = target
        for e in history.paths:
            if start <= e.time_ns <= end and e.path.endswith("->" + net_host) and \
                    e.state not in ("active", "standby", "up"):
                return f"MPIO path {e.path} went {e.state} " \
                       f"{(e.time_ns - start) / 1e9:.2f} s after the inject"
        return None
    delay_ms = float(spec.kwargs.get("delay_ms", 0.0))
    if spec.action in ("delay", "disk-slow") and delay_ms > 0:
        host = target if what in ("node", "disk") else target.split("/")[1] \
            if what == "path" else None
        ix = ops.index
        limit = stop or end
        rows = ix.invoked(start, limit)
        rows = rows[(ix.outcome[rows] == OK) & (ix.complete[rows] <= limit)]
        across = np.zeros(len(rows), dtype=bool)
        if what == "sync":
            across |= ix.f[rows] == WRITE
        if host is not None:
            codes = ix.paths_ending(("/" + host) if what != "path" else ("->" + target))
            across |= np.isin(ix.path[rows], codes)
        rows = rows[across]
        lat = (ix.complete[rows] - ix.invoke[rows]).tolist()
        if lat and statistics.median(lat) >= delay_ms * 0.5e6:
            return (f"{len(lat)} operations across it took median "
                    f"{statistics.median(lat) / 1e6:.1f} ms (delay {delay_ms:g} ms)")
        if what != "disk":
            return None
        # a disk slower than the sync timeout (a hung disk) shows as its replica taken
        # out, or as I/O on it failing, not as slow completions: judged as any disk fault
    hosts = [target] if what in ("node", "disk") else [r.host for r in device.replicas]
    if what == "witness":  # the witness only matters at a decision: the cut node lost the vote
        hosts = [target.rsplit("/", 1)[-1]]
    if what in ("node", "disk", "sync", "witness"):
        for r in history.replicas:
            if start <= r.time_ns <= end and r.state != "synchronized" and \
                    any(r.replica == f"{device.alias}@{h}" for h in hosts):
                return f"replica {r.replica} went {r.state} " \
                       f"{(r.time_ns - start) / 1e9:.2f} s after the inject"
    if what == "disk":
        ix = ops.index
        rows = ix.invoked(start, end)
        rows = rows[np.isin(ix.outcome[rows], (FAIL, INFO, PENDING))]
        if len(rows):
            first = rows[np.argmin(ix.order[rows])]  # the first in the history's own order
            error = ops.errors(np.array([first]))[0]
            return f"{len(rows)} operations failed during it (first: {error})"
        if spec.action == "disk-slow" and stop is not None and delay_ms * 1e6 >= stop - start:
            return _held(ops.index, start, stop)
    return None


def _held(ix: OpIndex, start: int, stop: int) -> str | None:
    """A hung disk (a delay as long as its window: its I/O is released at the heal) that
    neither left its replica nor failed I/O: the device waited on it, so operations in
    flight during it took at least half of the window."""
    held_ns = (stop - start) // 2
    rows = ix.completed(start, NEVER - 1)  # completed, at or after the start
    rows = rows[(ix.invoke[rows] <= stop)
                & (ix.complete[rows] - ix.invoke[rows] >= held_ns)]
    stalled = (ix.complete[rows] - ix.invoke[rows]).tolist()
    if not stalled:
        return None
    return (f"{len(stalled)} operations in flight during it were held "
            f"{min(stalled) / 1e9:.2f}-{max(stalled) / 1e9:.2f} s (the disk hung for "
            f"{(stop - start) / 1e9:.2f} s)")


__all__ = ["FaultEvidence", "LiveProbe", "classify", "judge"]
