"""Whole-node crash and power loss: a storage server whose machine goes away.

Peers of a crashed machine see silence, not resets: no kernel is left to answer.
So ``NodeCrash`` first black-holes every lab link that leads to the host (its
portals, its sync and heartbeat endpoints: a proxy black hole in the loopback
lab, tagged nftables drops in the netns lab), then kills its process with
SIGKILL. Heal, in reverse: start the node again, then let its links pass.

``PowerLoss`` is the same, except that the node also loses what its disk had
not made durable: instead of SIGKILL it is told to lose power (lab nodes run
with ``volatile_writes``, harness.target.power_loss), which discards every
write no fdatasync covered and then kills the node. A SIGKILL alone never shows
a write acknowledged before it was durable; this does.
"""

from __future__ import annotations

from typing import Any

from harness.faults.disk import _client
from harness.faults.fault import CompositeFault, Fault, FaultError
from harness.faults.journal import FaultJournal
from harness.faults.process import ProcessFault, _node
from harness.lab.node_process import wait_until


class NodeCrash(CompositeFault):
    kind = "node-crash"

    def __init__(
        self, host: str, *, silence: Fault, state_dir: str, journal: FaultJournal | None = None
    ) -> None:
        """``silence``: the fault that black-holes every link of ``host``."""
        parts = [silence, ProcessFault(host, "kill", state_dir=str(state_dir), journal=journal)]
        super().__init__(host, parts, action="crash", journal=journal)


class PowerCut(Fault):
    """The node loses its unsynced writes and dies (``POST /v1/faults/power-loss``)."""

    kind = "power-cut"

    def __init__(self, host: str, *, state_dir: str, journal: FaultJournal | None = None) -> None:
        super().__init__(host, {"action": "power-cut"}, journal=journal)
        self.host, self.state_dir = host, str(state_dir)

    def apply(self) -> None:
        _, node = _node(self.state_dir, self.host)
        client = _client(self.state_dir, self.host)
        if client is None:
            raise FaultError(f"lab node {self.host} is not running; nothing to power off")
        answer = ""
        try:
            client.request("POST", "/v1/faults/power-loss")
        except Exception as exc:  # the node dies without answering: that is success
            answer = str(exc)
        if not wait_until(lambda: not node.alive, 10.0):
            raise FaultError(f"lab node {self.host} did not lose power ({answer or 'it answered'});"
                             " start it with volatile_writes = true")

    def undo_record(self) -> dict[str, Any]:
        return {"state_dir": self.state_dir, "host": self.host, "action": "kill"}

    @classmethod
    def heal_from(cls, undo: dict[str, Any]) -> None:
        ProcessFault.heal_from(undo)  # start the node again


class PowerLoss(CompositeFault):
    kind = "power-loss"

    def __init__(
        self, host: str, *, silence: Fault, state_dir: str, journal: FaultJournal | None = None
    ) -> None:
        """``silence``: the fault that black-holes every link of ``host``."""
        parts = [silence, PowerCut(host, state_dir=str(state_dir), journal=journal)]
        super().__init__(host, parts, action="power-loss", journal=journal)
