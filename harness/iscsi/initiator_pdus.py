"""The PDUs an initiator sends (RFC 7143 opcodes 0x00-0x1f), one ``__slots__`` class each.

Each class is its field table (:mod:`harness.iscsi.bhs`) made code: see
:mod:`harness.iscsi.pdu` for what is generated and the conventions every PDU
follows. Only what a table cannot say is written here (the SCSI Command's AHS).
"""

from __future__ import annotations

import struct

from harness.iscsi import bhs
from harness.iscsi.codes import AhsType
from harness.iscsi.pdu import (
    CDB_IN_BHS,
    Pdu,
    bidirectional_read_length_ahs,
    extended_cdb_ahs,
    iter_ahs,
)


class NopOut(Pdu):
    """NOP-Out (0x00): ping, or the answer to a NOP-In that carries a Target Transfer Tag."""

    layout = bhs.NOP_OUT
    __slots__ = layout.slots


class ScsiCommand(Pdu):
    """SCSI Command (0x01). ``cdb`` is the whole CDB: bytes past 16 travel in an
    Extended CDB AHS, and ``expected_bidirectional_read_data_length`` (when not None)
    in its own AHS. A CDB shorter than 16 bytes is zero-padded to 16, as on the wire.
    A non-empty ``ahs`` is sent verbatim instead of the derived AHS (crafted probes);
    decoding leaves ``ahs`` empty when the received AHS is exactly the derived one."""

    layout = bhs.SCSI_COMMAND
    __slots__ = layout.slots

    def wire_ahs(self) -> bytes:
        if self.ahs:
            return self.ahs
        ahs = b""
        if len(self.cdb) > CDB_IN_BHS:
            ahs = extended_cdb_ahs(self.cdb[CDB_IN_BHS:])
        if self.expected_bidirectional_read_data_length is not None:
            ahs += bidirectional_read_length_ahs(self.expected_bidirectional_read_data_length)
        return ahs

    def _unpack_ahs(self, ahs: bytes) -> None:
        """The CDB's extension and the bidirectional read length, from a received AHS."""
        cdb = self.cdb
        for ahs_type, body in iter_ahs(ahs):
            if ahs_type == AhsType.EXTENDED_CDB:
                cdb += body[1:]
            elif ahs_type == AhsType.BIDIRECTIONAL_READ_LENGTH and len(body) == 5:
                (self.expected_bidirectional_read_data_length,) = struct.unpack_from(
                    ">I", body, 1)
        self.cdb = cdb
        self.ahs = b""
        if self.wire_ahs() != ahs:  # not the canonical AHS of these fields: keep it
            self.ahs = ahs


class TaskManagementRequest(Pdu):
    """Task Management Function Request (0x02)."""

    layout = bhs.TASK_MANAGEMENT_REQUEST
    __slots__ = layout.slots


class LoginRequest(Pdu):
    """Login Request (0x03). ``isid`` is the 48-bit ISID as an integer."""

    layout = bhs.LOGIN_REQUEST
    __slots__ = layout.slots


class TextRequest(Pdu):
    """Text Request (0x04)."""

    layout = bhs.TEXT_REQUEST
    __slots__ = layout.slots


class DataOut(Pdu):
    """SCSI Data-Out (0x05)."""

    layout = bhs.DATA_OUT
    __slots__ = layout.slots


class LogoutRequest(Pdu):
    """Logout Request (0x06)."""

    layout = bhs.LOGOUT_REQUEST
    __slots__ = layout.slots


class Snack(Pdu):
    """SNACK Request (0x10). ``target_transfer_tag`` is the TTT or SNACK Tag."""

    layout = bhs.SNACK
    __slots__ = layout.slots
