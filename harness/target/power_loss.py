"""Power loss of a storage node, served by the node itself.

Model: killing a process (SIGKILL) loses nothing the kernel already holds, so a
crash test with ``kill -9`` never shows a write that was acknowledged before it
was durable. A node whose images have the volatile layer
(``[node] volatile_writes = true``; harness.target.blockstore) can lose power
instead: ``POST /v1/faults/power-loss`` undoes, on every such image, each write
that no ``fdatasync`` covered yet, syncs, and kills the node with SIGKILL at
once, without answering, as a server whose power fails. Everything the node
acknowledged as durable (write-through, FUA, SYNCHRONIZE CACHE) survives;
anything else may be gone, as on a real disk after a power cut.
The lab's ``power-loss`` fault (harness.faults.node.PowerLoss) calls it.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from harness.target.blockstore import VOLATILE_IMAGES

log = logging.getLogger("splitbrain.target.faults")


def lose_power() -> None:
    """Discard every volatile write of this process's images, then die (SIGKILL)."""
    undone = 0
    for image in list(VOLATILE_IMAGES):
        if not image.closed:
            undone += image.discard_volatile()
    log.warning("power loss: %d unsynced write(s) discarded; the node dies now", undone)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install_power_loss_route(node: Any) -> None:
    """Serve ``POST /v1/faults/power-loss`` on the node's management API."""
    from harness.target.management import ApiError, ApiRequest

    async def power_loss(_: ApiRequest) -> Any:
        if not node.config.volatile_writes:
            raise ApiError(409, f"node {node.config.name} has no volatile layer; start it "
                                "with [node] volatile_writes = true to simulate power loss")
        lose_power()  # does not return: no later callback of this loop ever runs

    node.management.add_route("POST", "/v1/faults/power-loss", power_loss)
