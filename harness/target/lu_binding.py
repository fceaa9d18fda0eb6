"""Binds the network side to the SCSI logical-unit model (``harness.target.device``).

Everything the sessions need from the SCSI side goes through this module: opening
a logical unit on its image file, naming an I_T nexus, building a ``ScsiTask``,
reading a ``TaskResult``, answering commands for a LUN that does not exist, and
the reset and unit-attention hooks of task management. Keeping the seam in one
place means a change of the device contract touches one file.
"""

from __future__ import annotations

from typing import Any

from harness.target.nexus import ItNexus, initiator_port_name, target_port_name


def make_nexus(initiator_name: str, isid: int, target_iqn: str, tpgt: int) -> ItNexus:
    return ItNexus(initiator_port=initiator_port_name(initiator_name, isid),
                   target_port=target_port_name(target_iqn, tpgt),
                   relative_target_port_id=tpgt, target_port_group=tpgt)


def lun_map_changed(target: Any) -> None:
    """The target's LUN map changed (a LUN added or removed)."""
