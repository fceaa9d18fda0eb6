"""Code points of RFC 7143: opcodes, stages, status classes, reasons and functions.

Shared by the codec, the scapy layers, the initiator and the target so that every
number on the wire has exactly one name.
"""

from __future__ import annotations

from enum import IntEnum


class Opcode(IntEnum):
    """BHS byte 0, low six bits (RFC 7143 section 11.2.1.2)."""

    NOP_OUT = 0x00
    SCSI_COMMAND = 0x01
    TASK_MANAGEMENT_REQUEST = 0x02
    LOGIN_REQUEST = 0x03
    TEXT_REQUEST = 0x04
    DATA_OUT = 0x05
    LOGOUT_REQUEST = 0x06
    SNACK = 0x10
    NOP_IN = 0x20
    SCSI_RESPONSE = 0x21
    TASK_MANAGEMENT_RESPONSE = 0x22
    LOGIN_RESPONSE = 0x23
    TEXT_RESPONSE = 0x24
    DATA_IN = 0x25
    LOGOUT_RESPONSE = 0x26
    R2T = 0x31
    ASYNC_MESSAGE = 0x32
    REJECT = 0x3F


class AhsType(IntEnum):
    """AHSType of an Additional Header Segment (section 11.2.2)."""

    EXTENDED_CDB = 1
    BIDIRECTIONAL_READ_LENGTH = 2


class TaskAttribute(IntEnum):
    """ATTR of a SCSI Command (section 11.3.1.2)."""

    UNTAGGED = 0
    SIMPLE = 1
    ORDERED = 2
    HEAD_OF_QUEUE = 3
    ACA = 4


class Stage(IntEnum):
    """CSG/NSG of Login PDUs (section 11.12.3)."""

    SECURITY_NEGOTIATION = 0
    LOGIN_OPERATIONAL_NEGOTIATION = 1
    FULL_FEATURE_PHASE = 3


class LoginStatusClass(IntEnum):
    """Status-Class of a Login Response (section 11.13.5)."""

    SUCCESS = 0
    REDIRECTION = 1
    INITIATOR_ERROR = 2
    TARGET_ERROR = 3


class LoginStatus(IntEnum):
    """(Status-Class << 8) | Status-Detail of a Login Response (section 11.13.5)."""

    SUCCESS = 0x0000
    TARGET_MOVED_TEMPORARILY = 0x0101
    TARGET_MOVED_PERMANENTLY = 0x0102
    INITIATOR_ERROR = 0x0200
    AUTHENTICATION_FAILURE = 0x0201
    AUTHORIZATION_FAILURE = 0x0202
    NOT_FOUND = 0x0203
    TARGET_REMOVED = 0x0204
    UNSUPPORTED_VERSION = 0x0205
    TOO_MANY_CONNECTIONS = 0x0206
    MISSING_PARAMETER = 0x0207
    CANT_INCLUDE_IN_SESSION = 0x0208
    SESSION_TYPE_NOT_SUPPORTED = 0x0209
    SESSION_DOES_NOT_EXIST = 0x020A
    INVALID_DURING_LOGIN = 0x020B
    TARGET_ERROR = 0x0300
    SERVICE_UNAVAILABLE = 0x0301
    OUT_OF_RESOURCES = 0x0302


class TaskManagementFunction(IntEnum):
    """Function of a Task Management Function Request (section 11.5.1)."""

    ABORT_TASK = 1
    ABORT_TASK_SET = 2
    CLEAR_ACA = 3
    CLEAR_TASK_SET = 4
    LOGICAL_UNIT_RESET = 5
    TARGET_WARM_RESET = 6
    TARGET_COLD_RESET = 7
    TASK_REASSIGN = 8


class TaskManagementResponseCode(IntEnum):
    """Response of a Task Management Function Response (section 11.6.1)."""

    FUNCTION_COMPLETE = 0
    TASK_DOES_NOT_EXIST = 1
    LUN_DOES_NOT_EXIST = 2
    TASK_STILL_ALLEGIANT = 3
    TASK_REASSIGNMENT_NOT_SUPPORTED = 4
    FUNCTION_NOT_SUPPORTED = 5
    AUTHORIZATION_FAILED = 6
    FUNCTION_REJECTED = 255


class ScsiResponseCode(IntEnum):
    """Response of a SCSI Response (section 11.4.3)."""

    COMMAND_COMPLETED_AT_TARGET = 0x00
    TARGET_FAILURE = 0x01


class LogoutReason(IntEnum):
    """Reason Code of a Logout Request (section 11.14.1)."""

    CLOSE_SESSION = 0
    CLOSE_CONNECTION = 1
    REMOVE_CONNECTION_FOR_RECOVERY = 2


class LogoutResponseCode(IntEnum):
    """Response of a Logout Response (section 11.15.1)."""

    SUCCESS = 0
    CID_NOT_FOUND = 1
    RECOVERY_NOT_SUPPORTED = 2
    CLEANUP_FAILED = 3


class SnackType(IntEnum):
    """Type of a SNACK Request (section 11.16.1)."""

    DATA_R2T = 0
    STATUS = 1
    DATA_ACK = 2
    RDATA = 3


class AsyncEvent(IntEnum):
    """AsyncEvent of an Asynchronous Message (section 11.9.1)."""

    SCSI_ASYNC_EVENT = 0
    LOGOUT_REQUESTED = 1
    CONNECTION_WILL_BE_DROPPED = 2
    SESSION_WILL_BE_DROPPED = 3
    RENEGOTIATION_REQUESTED = 4
    VENDOR_SPECIFIC = 255


class RejectReason(IntEnum):
    """Reason of a Reject PDU (section 11.17.1)."""

    DATA_DIGEST_ERROR = 0x02
    SNACK_REJECT = 0x03
    PROTOCOL_ERROR = 0x04
    COMMAND_NOT_SUPPORTED = 0x05
    IMMEDIATE_COMMAND_REJECT = 0x06
    TASK_IN_PROGRESS = 0x07
    INVALID_DATA_ACK = 0x08
    INVALID_PDU_FIELD = 0x09
    LONG_OPERATION_REJECT = 0x0A
    DEPRECATED = 0x0B
    WAITING_FOR_LOGOUT = 0x0C


RESERVED_TAG = 0xFFFFFFFF
"""The Initiator/Target Task Tag value meaning "no tag" (section 11.18, 11.19)."""
