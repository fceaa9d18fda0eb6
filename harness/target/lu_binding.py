"""Binds the network side to the SCSI logical-unit model (``harness.target.device``).

Everything the sessions need from the SCSI side goes through this module: opening
a logical unit on its image file, naming an I_T nexus, building a ``ScsiTask``,
reading a ``TaskResult``, answering commands for a LUN that does not exist, and
the reset and unit-attention hooks of task management. Keeping the seam in one
place means a change of the device contract touches one file.
"""

from __future__ import annotations

from typing import Any

from harness.scsi.sense import invalid_field_in_cdb
from harness.scsi.status import ScsiStatus
from harness.target.nexus import ItNexus, initiator_port_name, target_port_name

# Byte of the TRANSFER LENGTH field per write opcode (for the sense field pointer).
_TRANSFER_LENGTH_BYTE = {0x0A: 4, 0x2A: 7, 0xAA: 6, 0x8A: 10, 0x2E: 7, 0xAE: 6, 0x8E: 10,
                         0x89: 13, 0x41: 7, 0x93: 10}


def make_nexus(initiator_name: str, isid: int, target_iqn: str, tpgt: int) -> ItNexus:
    return ItNexus(initiator_port=initiator_port_name(initiator_name, isid),
                   target_port=target_port_name(target_iqn, tpgt),
                   relative_target_port_id=tpgt, target_port_group=tpgt)


def lun_map_changed(target: Any) -> None:
    """The target's LUN map changed (a LUN added or removed)."""


def refuse_transfer_length(cdb: bytes) -> tuple[int, bytes]:
    """CHECK CONDITION, INVALID FIELD IN CDB at the transfer length: a command whose
    data-out exceeds what the node accepts (the Block Limits VPD says the same)."""
    byte = _TRANSFER_LENGTH_BYTE.get(cdb[0] if cdb else 0, 0)
    return ScsiStatus.CHECK_CONDITION, invalid_field_in_cdb(byte).encode()
