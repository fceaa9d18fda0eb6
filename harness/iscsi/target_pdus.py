"""The PDUs a target sends (RFC 7143 opcodes 0x20-0x3f), one ``__slots__`` class each.

Each class is its field table (:mod:`harness.iscsi.bhs`) made code: see
:mod:`harness.iscsi.pdu` for what is generated and the conventions every PDU
follows. The target PDUs carry StatSN, ExpCmdSN and MaxCmdSN, the three numbers
that drive the initiator's command window.
"""

from __future__ import annotations

from harness.iscsi import bhs
from harness.iscsi.pdu import pdu_classes

(NopIn, ScsiResponse, TaskManagementResponse, LoginResponse, TextResponse, DataIn,
 LogoutResponse, R2T, AsyncMessage, Reject) = pdu_classes(
    __name__, bhs.NOP_IN, bhs.SCSI_RESPONSE, bhs.TASK_MANAGEMENT_RESPONSE, bhs.LOGIN_RESPONSE,
    bhs.TEXT_RESPONSE, bhs.DATA_IN, bhs.LOGOUT_RESPONSE, bhs.R2T, bhs.ASYNC_MESSAGE,
    bhs.REJECT)
