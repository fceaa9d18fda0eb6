"""The replica-state reader a site's inventory names (``[storage] kind``), or the lab's own.

The readers import the model of :mod:`harness.remote.replicas`; this module
imports the readers, so the package itself never imports a reader.
"""

from __future__ import annotations

from typing import Any

from harness.remote.replicas import ReplicaStateError, ReplicaStates
from harness.remote.replicas.bundled import BundledReplicaStates, LabReplicaStates
from harness.remote.replicas.drbd import DrbdReplicaStates
from harness.remote.replicas.lio import LioReplicaStates
from harness.remote.replicas.starwind import StarWindReplicaStates

READERS: dict[str, Any] = {
    "bundled": BundledReplicaStates,
    "starwind": StarWindReplicaStates,
    "drbd": DrbdReplicaStates,
    "lio": LioReplicaStates,
}
"""The reader class of each storage kind that mirrors (tgt does not)."""


def for_inventory(inventory: Any, *, lab: Any = None, opener: Any = None) -> ReplicaStates:
    """The reader ``[storage] kind`` names; with a lab, the lab's own API."""
    if lab is not None:
        return LabReplicaStates(lab, inventory)
    kind = inventory.storage.kind
    reader = READERS.get(kind)
    if reader is None:
        raise ReplicaStateError(
            f"storage kind {kind!r} of {inventory.path} has no replica states (tgt does not "
            "mirror); use bundled, starwind, drbd or lio")
    return reader(inventory, opener=opener)  # type: ignore[no-any-return]
