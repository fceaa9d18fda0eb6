"""Whole-node crash: a storage server that loses power.

Peers of a crashed machine see silence, not resets: no kernel is left to answer.
So ``NodeCrash`` first black-holes every lab link that leads to the host (its
portals, its sync and heartbeat endpoints), then kills its process with SIGKILL.
Heal, in reverse: start the node again, then let its links pass.
"""

from __future__ import annotations

from harness.faults.fault import CompositeFault, FaultError
from harness.faults.journal import FaultJournal
from harness.faults.link import LinkFault
from harness.faults.process import ProcessFault
from harness.lab.proxy import LinkMode, LinkState
from harness.lab.state import LabState


class NodeCrash(CompositeFault):
    kind = "node-crash"

    def __init__(self, host: str, *, state_dir: str, journal: FaultJournal | None = None) -> None:
        state = LabState(state_dir)
        links = sorted(n for n, link in state.load().links.items() if link.host == host)
        if not links:
            raise FaultError(f"lab at {state_dir} has no links to host {host!r}")
        parts = [
            LinkFault(
                links,
                LinkState(LinkMode.BLACKHOLE),
                endpoint_file=state.endpoint_file,
                label=host,
                journal=journal,
            ),
            ProcessFault(host, "kill", state_dir=str(state_dir), journal=journal),
        ]
        super().__init__(host, parts, action="crash", journal=journal)
