"""Process faults on lab nodes: kill -9, freeze (SIGSTOP) and thaw, graceful stop, restart.

The target is a node of a running lab, named by host; its process is found in
the lab state (pid *and* kernel start time, so no unrelated process is ever
signalled). Actions and their heals:

- ``kill``: SIGKILL, as a crashed service. Heal: start the node again.
- ``freeze``: SIGSTOP, as a hung process that still holds its sockets. Heal:
  SIGCONT to that same process (if it still exists).
- ``stop``: SIGTERM and wait, as a service stopped by an administrator. Heal: start.
- ``restart``: stop, then start at once (the fault is the bounce). Heal: make sure
  it runs.

Every heal ends with the node running and ready, or raises ``HealError``.
"""

from __future__ import annotations

import signal
from typing import Any

from harness.faults.fault import Fault, FaultError, HealError
from harness.faults.journal import FaultJournal
from harness.lab.node_process import NodeProcess, NodeProcessError, wait_until
from harness.lab.state import LabState, LabStateError

ACTIONS = ("kill", "freeze", "stop", "restart")


def _node(state_dir: str, host: str) -> tuple[LabState, NodeProcess]:
    state = LabState(state_dir)
    record = state.load()
    if host not in record.nodes:
        raise FaultError(
            f"lab at {state_dir} has no node process for host {host!r}; "
            f"nodes: {', '.join(record.nodes) or 'none'}"
        )
    return state, record.nodes[host]


def ensure_running(state_dir: str, host: str) -> NodeProcess:
    """Start the host's node unless it runs; record the new instance; return it."""
    try:
        state, node = _node(state_dir, host)
    except LabStateError:
        return NodeProcess(host, (), "", "", "")  # the lab is gone: nothing to restart
    if node.alive:
        node.signal(signal.SIGCONT)
        return node
    try:
        running = node.start()
    except NodeProcessError as exc:
        raise HealError(str(exc)) from None
    state.update_node(host, running)
    return running


class ProcessFault(Fault):
    """One action on one lab node's process."""

    kind = "process"

    def __init__(
        self, host: str, action: str, *, state_dir: str, journal: FaultJournal | None = None
    ) -> None:
        if action not in ACTIONS:
            raise FaultError(f"unknown process action {action!r}; use one of {', '.join(ACTIONS)}")
        super().__init__(host, {"action": action}, journal=journal)
        self.host, self.action, self.state_dir = host, action, str(state_dir)

    def apply(self) -> None:
        state, node = _node(self.state_dir, self.host)
        if not node.alive:
            raise FaultError(f"lab node {self.host} is not running; nothing to {self.action}")
        if self.action == "freeze":
            node.signal(signal.SIGSTOP)
            # SIGSTOP is asynchronous: wait until the kernel shows the process stopped
            if not wait_until(lambda: node.frozen, 5.0):
                raise FaultError(f"lab node {self.host} (pid {node.pid}) did not stop")
        elif self.action == "kill":
            node.kill()
        elif self.action == "stop":
            node.stop()
        else:  # restart
            node.stop()
            state.update_node(self.host, node.start())

    def undo_record(self) -> dict[str, Any]:
        return {"state_dir": self.state_dir, "host": self.host, "action": self.action}

    @classmethod
    def heal_from(cls, undo: dict[str, Any]) -> None:
        node = ensure_running(undo["state_dir"], undo["host"])  # thaws a frozen node too
        if node.pid is not None and not wait_until(lambda: not node.frozen, 5.0):
            raise HealError(f"lab node {undo['host']} (pid {node.pid}) is still stopped")
