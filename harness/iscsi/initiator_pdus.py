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
    pdu_classes,
)


class ScsiCommand(Pdu):
    __doc__ = bhs.SCSI_COMMAND.doc
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


(NopOut, TaskManagementRequest, LoginRequest, TextRequest, DataOut, LogoutRequest,
 Snack) = pdu_classes(__name__, bhs.NOP_OUT, bhs.TASK_MANAGEMENT_REQUEST, bhs.LOGIN_REQUEST,
                      bhs.TEXT_REQUEST, bhs.DATA_OUT, bhs.LOGOUT_REQUEST, bhs.SNACK)
