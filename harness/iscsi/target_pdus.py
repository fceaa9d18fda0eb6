"""The PDUs a target sends (RFC 7143 opcodes 0x20-0x3f), one ``__slots__`` class each.

Each class is its field table (:mod:`harness.iscsi.bhs`) made code: see
:mod:`harness.iscsi.pdu` for what is generated and the conventions every PDU
follows. The target PDUs carry StatSN, ExpCmdSN and MaxCmdSN, the three numbers
that drive the initiator's command window.
"""

from __future__ import annotations

from harness.iscsi import bhs
from harness.iscsi.pdu import Pdu


class NopIn(Pdu):
    """NOP-In (0x20): the answer to a NOP-Out, or the target's own ping (TTT set)."""

    layout = bhs.NOP_IN
    __slots__ = layout.slots


class ScsiResponse(Pdu):
    """SCSI Response (0x21). ``data`` is SenseLength (2 bytes), sense data and any
    response data, exactly as on the wire."""

    layout = bhs.SCSI_RESPONSE
    __slots__ = layout.slots


class TaskManagementResponse(Pdu):
    """Task Management Function Response (0x22)."""

    layout = bhs.TASK_MANAGEMENT_RESPONSE
    __slots__ = layout.slots


class LoginResponse(Pdu):
    """Login Response (0x23). ``isid`` is the 48-bit ISID as an integer."""

    layout = bhs.LOGIN_RESPONSE
    __slots__ = layout.slots


class TextResponse(Pdu):
    """Text Response (0x24)."""

    layout = bhs.TEXT_RESPONSE
    __slots__ = layout.slots


class DataIn(Pdu):
    """SCSI Data-In (0x25). With ``status_present`` (the S bit) it also carries the
    command's ``status`` and residuals, and no SCSI Response follows."""

    layout = bhs.DATA_IN
    __slots__ = layout.slots


class LogoutResponse(Pdu):
    """Logout Response (0x26)."""

    layout = bhs.LOGOUT_RESPONSE
    __slots__ = layout.slots


class R2T(Pdu):
    """Ready To Transfer (0x31): the target asks for one burst of Data-Out."""

    layout = bhs.R2T
    __slots__ = layout.slots


class AsyncMessage(Pdu):
    """Asynchronous Message (0x32). For a SCSI event ``data`` holds SenseLength and sense."""

    layout = bhs.ASYNC_MESSAGE
    __slots__ = layout.slots


class Reject(Pdu):
    """Reject (0x3f). ``data`` is the complete header of the rejected PDU;
    ``data_sn`` is DataSN/R2TSN (only meaningful for a SNACK reject)."""

    layout = bhs.REJECT
    __slots__ = layout.slots
