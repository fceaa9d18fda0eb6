"""What a chaos run records beside the workload: replica states and each fault's meaning.

``ReplicaWatch`` samples the HA device's replica states (from whatever reader
the system under test offers) every ``POLL_S`` and writes each change into the
history as a ``replica_state`` record. ``FaultLog`` is the nemesis's recorder:
each fault's start record says its kind, the paths it takes away and the
budget it is judged by, so the checkers can relate a gap in the history to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from harness.chaos.schedule import DeviceFaults, kind_of
from harness.errors import SplitbrainError
from harness.faults.nemesis import FaultSpec
from harness.workload.history import History

POLL_S = 0.2  # replica state sampling period

# alias -> host -> state word ("Synchronized", "Not synchronized", ...)
ReplicaStates = Callable[[], Mapping[str, Mapping[str, str]]]

NODE_ACTIONS = ("kill", "freeze", "stop", "restart", "crash", "power-loss", "client-crash")

# the budget each kind of fault is judged by (the inventory's [budgets.*] names)
BUDGET_OF_KIND = {
    "path-cut": "path_failover_s",
    "sync-blackhole": "path_failover_s",
    "secondary-kill": "node_failover_s",
}


HELD_S = 1.0  # a split brain held this long is the device's decision, not a passing state


class HeldFor:
    """True once its condition has held for ``seconds`` without a break."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.since: float | None = None

    def __call__(self, now_true: bool) -> bool:
        now = time.monotonic()
        if not now_true:
            self.since = None
            return False
        if self.since is None:
            self.since = now
        return now - self.since >= self.seconds


class ReplicaWatch:
    """Samples one device's replica states and records each change."""

    def __init__(self, states: ReplicaStates, alias: str, hosts: list[str],
                 history: History | None) -> None:
        self.states, self.alias, self.hosts, self.history = states, alias, hosts, history
        self.last: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="replica-watch", daemon=True)

    def sample(self) -> dict[str, str]:
        try:
            states = self.states().get(self.alias, {})
        except (SplitbrainError, OSError):
            states = {}
        now = {h: str(states.get(h, "down")).lower() for h in self.hosts}
        for host, state in now.items():
            if self.last.get(host) != state and self.history is not None:
                self.history.replica_state(f"{self.alias}@{host}", state, host=host)
        self.last = now
        return now

    def synchronized(self) -> bool:
        return all(s == "synchronized" for s in self.sample().values())

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            self.sample()

    def __enter__(self) -> ReplicaWatch:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class FaultLog:
    """The nemesis's recorder: each fault's record says its kind, lost paths and budget."""

    def __init__(self, history: History, faults: DeviceFaults,
                 paths: Mapping[str, tuple[str, str]]) -> None:
        self.history, self.faults, self.paths = history, faults, paths  # path -> (net, host)

    def lost_paths(self, spec: FaultSpec) -> list[str]:
        hosts = self.faults.hosts_lost.get(spec, ())
        cut = self.faults.path_lost.get(spec)
        return sorted(p for p, where in self.paths.items() if where == cut or where[1] in hosts)

    def fault_start(self, name: str, *, time_ns: int | None = None, **attrs: Any) -> int:
        spec = FaultSpec.of(attrs["action"], attrs["target"], **attrs.get("params", {}))
        kind = kind_of(self.faults, spec)
        node_fault = "/" not in spec.target and (
            spec.action in NODE_ACTIONS or spec.action.startswith("disk-"))
        budget = BUDGET_OF_KIND.get(kind, "node_failover_s" if node_fault else "path_failover_s")
        if spec.action == "disk-slow":
            # a slow or hung disk leaves its node running and its links healthy: the partner
            # that stops acknowledging ORDERs is taken out by the ORDER timeout (the sync
            # timeout), a sync loss by another road, and is judged as one
            budget = BUDGET_OF_KIND["sync-blackhole"]
        return self.history.fault_start(
            name, time_ns=time_ns, kind=kind, paths=self.lost_paths(spec), budget=budget, **attrs
        )

    def fault_stop(self, name: str, *, time_ns: int | None = None, **attrs: Any) -> None:
        self.history.fault_stop(name, time_ns=time_ns, **attrs)
