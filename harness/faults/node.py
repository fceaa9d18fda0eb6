"""Whole-node crash: a storage server that loses power.

Peers of a crashed machine see silence, not resets: no kernel is left to answer.
So ``NodeCrash`` first black-holes every lab link that leads to the host (its
portals, its sync and heartbeat endpoints: a proxy black hole in the loopback
lab, tagged nftables drops in the netns lab), then kills its process with
SIGKILL. Heal, in reverse: start the node again, then let its links pass.
"""

from __future__ import annotations

from harness.faults.fault import CompositeFault, Fault
from harness.faults.journal import FaultJournal
from harness.faults.process import ProcessFault


class NodeCrash(CompositeFault):
    kind = "node-crash"

    def __init__(
        self, host: str, *, silence: Fault, state_dir: str, journal: FaultJournal | None = None
    ) -> None:
        """``silence``: the fault that black-holes every link of ``host``."""
        parts = [silence, ProcessFault(host, "kill", state_dir=str(state_dir), journal=journal)]
        super().__init__(host, parts, action="crash", journal=journal)
