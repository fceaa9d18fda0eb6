"""Every PDU's Basic Header Segment, declared once: one field table per PDU.

The model. The 48-byte BHS of every RFC 7143 PDU is: byte 0 (the I bit and the
opcode, the same for all), byte 1 (opcode-specific flag bits), bytes 2-3
(opcode-specific), bytes 4-7 (TotalAHSLength and DataSegmentLength, the
framing's), and bytes 8-47 (opcode-specific). A :class:`Bhs` table names what
a PDU puts in byte 1 (:class:`Flag`, :class:`Bits`, :class:`Fixed` bits; the
rest are reserved), in bytes 2-3 and in bytes 8-47 (:class:`Field`,
:class:`Reserved`), in wire order, with RFC 7143's names in snake_case and the
defaults a new PDU gets.

Two things are built from these tables when their modules load, and nothing
else declares a BHS field:

- the fast codec's classes (:mod:`harness.iscsi.pdu` generates each class's
  ``__slots__``, ``__init__``, ``pack_bhs`` and ``unpack`` from its table,
  over one precompiled ``struct.Struct``), and
- the scapy layers (:mod:`harness.iscsi.layers` turns each table into the
  layer's ``fields_desc``; ``names`` give dissections readable values).

Reserved bytes are named by their offset (``reserved_8``) and reserved bits
of byte 1 ``reserved_flags`` (``reserved_flag<bit>`` after the first gap).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from harness.iscsi.codes import (
    AsyncEvent,
    LoginStatusClass,
    LogoutReason,
    LogoutResponseCode,
    Opcode,
    RejectReason,
    ScsiResponseCode,
    SnackType,
    TaskAttribute,
    TaskManagementFunction,
    TaskManagementResponseCode,
)

BHS_LENGTH = 48
NO_TAG = 0xFFFFFFFF

Names = Mapping[int, str] | type[IntEnum] | None
"""Readable values of a field, for dissections only (the value stays an integer)."""

SCSI_STATUS = {0x00: "GOOD", 0x02: "CHECK_CONDITION", 0x04: "CONDITION_MET", 0x08: "BUSY",
               0x18: "RESERVATION_CONFLICT", 0x28: "TASK_SET_FULL", 0x30: "ACA_ACTIVE",
               0x40: "TASK_ABORTED"}
"""SAM-5 status codes."""
STAGES = {0: "SecurityNegotiation", 1: "LoginOperationalNegotiation", 3: "FullFeaturePhase"}


# -- byte 1 ------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One bit of byte 1 (``bit`` 7 is the most significant), a bool."""

    name: str
    bit: int
    default: bool = False

    @property
    def shift(self) -> int:
        return self.bit

    width = 1


@dataclass(frozen=True)
class Bits:
    """``width`` bits of byte 1 ending at bit ``shift``, an int."""

    name: str
    shift: int
    width: int
    default: int = 0
    names: Names = None


@dataclass(frozen=True)
class Fixed:
    """A bit of byte 1 the RFC fixes to 1 (the F bit of most PDUs): always sent as 1,
    not a field of the codec's PDU; scapy shows it (and lets a probe clear it)."""

    name: str
    bit: int

    @property
    def shift(self) -> int:
        return self.bit

    width = 1


FlagBits = Flag | Bits | Fixed


# -- bytes 2-3 and 8-47 ------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A big-endian unsigned field of ``size`` bytes (1, 2, 4, 6 or 8), or ``size``
    raw bytes when ``raw`` (a short value is zero-padded to ``size``)."""

    name: str
    size: int
    default: int | bytes = 0
    hex: bool = False
    names: Names = None
    raw: bool = False


@dataclass(frozen=True)
class Reserved:
    """``size`` bytes sent as zero and ignored when received."""

    size: int


Bytes = Field | Reserved


def tag(name: str, default: int = 0) -> Field:
    """A 32-bit task or transfer tag (shown in hex)."""
    return Field(name, 4, default, hex=True)


def number(name: str) -> Field:
    """A 32-bit number (a sequence number, a length, an offset)."""
    return Field(name, 4)


LUN = Field("lun", 8, hex=True)
ISID = Field("isid", 6, hex=True)
LOGIN_FLAGS = (Flag("transit", 7), Flag("continue_", 6), Bits("csg", 2, 2, names=STAGES),
               Bits("nsg", 0, 2, names=STAGES))
"""Byte 1 of both Login PDUs: T, C, CSG and NSG."""
STATUS_NUMBERS = (number("stat_sn"), number("exp_cmd_sn"), number("max_cmd_sn"))


@dataclass(frozen=True)
class Bhs:
    """The field table of one PDU's BHS.

    ``name`` is the codec's class name (the scapy layer's is ``ISCSI<name>``),
    ``title`` RFC 7143's name of the PDU, ``doc`` what the classes say about it.
    ``immediate`` is the default of the I bit. ``extras`` are attributes of the
    codec's PDU that are not in the BHS (derived from the AHS), with defaults.
    """

    name: str
    title: str
    doc: str
    opcode: Opcode
    flags: tuple[FlagBits, ...]
    bytes2_3: tuple[Bytes, ...]
    rest: tuple[Bytes, ...]
    immediate: bool = False
    extras: tuple[tuple[str, object], ...] = field(default=())

    def __post_init__(self) -> None:
        used = 0
        for f in self.flags:
            mask = ((1 << f.width) - 1) << f.shift
            if used & mask or not 0 <= f.shift <= 8 - f.width:
                raise ValueError(f"{self.title}: flag {f.name} overlaps or leaves byte 1")
            used |= mask
        for part, size in ((self.bytes2_3, 2), (self.rest, 40)):
            if sum(f.size for f in part) != size:
                raise ValueError(f"{self.title}: fields of {size} bytes do not add up")

    @property
    def fields(self) -> tuple[Flag | Bits | Field, ...]:
        """Every named field of the codec's PDU (not fixed bits, not reserved bytes)."""
        return tuple(f for f in (*self.flags, *self.bytes2_3, *self.rest)
                     if isinstance(f, Flag | Bits | Field))

    @property
    def slots(self) -> tuple[str, ...]:
        """The PDU class's own ``__slots__`` (``initiator_task_tag`` is every PDU's)."""
        names = {f.name for f in self.fields} | {name for name, _ in self.extras}
        return tuple(sorted(names - {"initiator_task_tag"}))

    def offsets(self) -> dict[str, int]:
        """Byte offset of every byte field, by name (reserved ones as ``reserved_<n>``)."""
        out: dict[str, int] = {}
        offset = 2
        for f in (*self.bytes2_3, *self.rest):
            out[reserved_name(offset) if isinstance(f, Reserved) else f.name] = offset
            offset += f.size
            if offset == 4:
                offset = 8
        return out


def reserved_name(offset: int) -> str:
    return f"reserved_{offset}"


_F = Fixed("final", 7)

# -- the initiator's PDUs (opcodes 0x00-0x1f) ----------------------------------------------

NOP_OUT = Bhs(
    "NopOut", "NOP-Out",
    "NOP-Out (0x00): ping, or the answer to a NOP-In that carries a Target Transfer Tag.",
    Opcode.NOP_OUT, (_F,), (Reserved(2),), (
    LUN, tag("initiator_task_tag"), tag("target_transfer_tag", NO_TAG), number("cmd_sn"),
    number("exp_stat_sn"), Reserved(16)), immediate=True)

SCSI_COMMAND = Bhs(
    "ScsiCommand", "SCSI Command",
    "SCSI Command (0x01). ``cdb`` is the whole CDB: bytes past 16 travel in an Extended CDB "
    "AHS, and ``expected_bidirectional_read_data_length`` (when not None) in its own AHS. A "
    "CDB shorter than 16 bytes is zero-padded to 16, as on the wire. A non-empty ``ahs`` is "
    "sent verbatim instead of the derived AHS (crafted probes); decoding leaves ``ahs`` "
    "empty when the received AHS is exactly the derived one.",
    Opcode.SCSI_COMMAND, (
    Flag("final", 7, True), Flag("read", 6), Flag("write", 5),
    Bits("attr", 0, 3, TaskAttribute.SIMPLE, TaskAttribute)), (Reserved(2),), (
    LUN, tag("initiator_task_tag"), number("expected_data_transfer_length"), number("cmd_sn"),
    number("exp_stat_sn"), Field("cdb", 16, bytes(16), raw=True)),
    extras=(("expected_bidirectional_read_data_length", None),))

TASK_MANAGEMENT_REQUEST = Bhs(
    "TaskManagementRequest", "Task Management Function Request",
    "Task Management Function Request (0x02).",
    Opcode.TASK_MANAGEMENT_REQUEST, (
    _F, Bits("function", 0, 7, 1, TaskManagementFunction)), (Reserved(2),), (
    LUN, tag("initiator_task_tag"), tag("referenced_task_tag", NO_TAG), number("cmd_sn"),
    number("exp_stat_sn"), number("ref_cmd_sn"), number("exp_data_sn"), Reserved(8)),
    immediate=True)

LOGIN_REQUEST = Bhs(
    "LoginRequest", "Login Request",
    "Login Request (0x03). ``isid`` is the 48-bit ISID as an integer.",
    Opcode.LOGIN_REQUEST, LOGIN_FLAGS, (Field("version_max", 1), Field("version_min", 1)), (
    ISID, Field("tsih", 2), tag("initiator_task_tag"), Field("cid", 2),
    Reserved(2), number("cmd_sn"), number("exp_stat_sn"), Reserved(16)), immediate=True)

TEXT_REQUEST = Bhs(
    "TextRequest", "Text Request",
    "Text Request (0x04).",
    Opcode.TEXT_REQUEST, (
    Flag("final", 7, True), Flag("continue_", 6)), (Reserved(2),), (
    LUN, tag("initiator_task_tag"), tag("target_transfer_tag", NO_TAG), number("cmd_sn"),
    number("exp_stat_sn"), Reserved(16)))

DATA_OUT = Bhs(
    "DataOut", "SCSI Data-Out",
    "SCSI Data-Out (0x05).",
    Opcode.DATA_OUT, (Flag("final", 7, True),), (Reserved(2),), (
    LUN, tag("initiator_task_tag"), tag("target_transfer_tag", NO_TAG), Reserved(4),
    number("exp_stat_sn"), Reserved(4), number("data_sn"), number("buffer_offset"),
    Reserved(4)))

LOGOUT_REQUEST = Bhs(
    "LogoutRequest", "Logout Request",
    "Logout Request (0x06).",
    Opcode.LOGOUT_REQUEST, (
    _F, Bits("reason_code", 0, 7, names=LogoutReason)), (Reserved(2),), (
    Reserved(8), tag("initiator_task_tag"), Field("cid", 2), Reserved(2), number("cmd_sn"),
    number("exp_stat_sn"), Reserved(16)), immediate=True)

SNACK = Bhs(
    "Snack", "SNACK Request",
    "SNACK Request (0x10). ``target_transfer_tag`` is the TTT or SNACK Tag.",
    Opcode.SNACK, (
    _F, Bits("type", 0, 4, names=SnackType)), (Reserved(2),), (
    LUN, tag("initiator_task_tag", NO_TAG), tag("target_transfer_tag", NO_TAG), Reserved(4),
    number("exp_stat_sn"), Reserved(8), number("beg_run"), number("run_length")))

# -- the target's PDUs (opcodes 0x20-0x3f) -------------------------------------------------

NOP_IN = Bhs(
    "NopIn", "NOP-In",
    "NOP-In (0x20): the answer to a NOP-Out, or the target's own ping (TTT set).",
    Opcode.NOP_IN, (_F,), (Reserved(2),), (
    LUN, tag("initiator_task_tag", NO_TAG), tag("target_transfer_tag", NO_TAG),
    *STATUS_NUMBERS, Reserved(12)))

SCSI_RESPONSE = Bhs(
    "ScsiResponse", "SCSI Response",
    "SCSI Response (0x21). ``data`` is SenseLength (2 bytes), sense data and any response "
    "data, exactly as on the wire.",
    Opcode.SCSI_RESPONSE, (
    _F, Flag("bidirectional_overflow", 4), Flag("bidirectional_underflow", 3),
    Flag("residual_overflow", 2), Flag("residual_underflow", 1)), (
    Field("response", 1, names=ScsiResponseCode), Field("status", 1, names=SCSI_STATUS)), (
    Reserved(8), tag("initiator_task_tag"), tag("snack_tag"), *STATUS_NUMBERS,
    number("exp_data_sn"), number("bidirectional_read_residual_count"),
    number("residual_count")))

TASK_MANAGEMENT_RESPONSE = Bhs(
    "TaskManagementResponse", "Task Management Function Response",
    "Task Management Function Response (0x22).",
    Opcode.TASK_MANAGEMENT_RESPONSE, (_F,), (
    Field("response", 1, names=TaskManagementResponseCode), Reserved(1)), (
    Reserved(8), tag("initiator_task_tag"), Reserved(4), *STATUS_NUMBERS, Reserved(12)))

LOGIN_RESPONSE = Bhs(
    "LoginResponse", "Login Response",
    "Login Response (0x23). ``isid`` is the 48-bit ISID as an integer.",
    Opcode.LOGIN_RESPONSE, LOGIN_FLAGS, (Field("version_max", 1), Field("version_active", 1)), (
    ISID, Field("tsih", 2), tag("initiator_task_tag"), Reserved(4),
    *STATUS_NUMBERS, Field("status_class", 1, names=LoginStatusClass),
    Field("status_detail", 1, hex=True), Reserved(10)))

TEXT_RESPONSE = Bhs(
    "TextResponse", "Text Response",
    "Text Response (0x24).",
    Opcode.TEXT_RESPONSE, (
    Flag("final", 7, True), Flag("continue_", 6)), (Reserved(2),), (
    LUN, tag("initiator_task_tag"), tag("target_transfer_tag", NO_TAG), *STATUS_NUMBERS,
    Reserved(12)))

DATA_IN = Bhs(
    "DataIn", "SCSI Data-In",
    "SCSI Data-In (0x25). With ``status_present`` (the S bit) it also carries the command's "
    "``status`` and residuals, and no SCSI Response follows.",
    Opcode.DATA_IN, (
    Flag("final", 7, True), Flag("acknowledge", 6), Flag("residual_overflow", 2),
    Flag("residual_underflow", 1), Flag("status_present", 0)), (
    Reserved(1), Field("status", 1, names=SCSI_STATUS)), (
    LUN, tag("initiator_task_tag"), tag("target_transfer_tag", NO_TAG), *STATUS_NUMBERS,
    number("data_sn"), number("buffer_offset"), number("residual_count")))

LOGOUT_RESPONSE = Bhs(
    "LogoutResponse", "Logout Response",
    "Logout Response (0x26).",
    Opcode.LOGOUT_RESPONSE, (_F,), (
    Field("response", 1, names=LogoutResponseCode), Reserved(1)), (
    Reserved(8), tag("initiator_task_tag"), Reserved(4), *STATUS_NUMBERS, Reserved(4),
    Field("time2wait", 2), Field("time2retain", 2), Reserved(4)))

R2T = Bhs(
    "R2T", "Ready To Transfer",
    "Ready To Transfer (0x31): the target asks for one burst of Data-Out.",
    Opcode.R2T, (_F,), (Reserved(2),), (
    LUN, tag("initiator_task_tag"), tag("target_transfer_tag"), *STATUS_NUMBERS,
    number("r2t_sn"), number("buffer_offset"), number("desired_data_transfer_length")))

ASYNC_MESSAGE = Bhs(
    "AsyncMessage", "Asynchronous Message",
    "Asynchronous Message (0x32). For a SCSI event ``data`` holds SenseLength and sense.",
    Opcode.ASYNC_MESSAGE, (_F,), (Reserved(2),), (
    LUN, tag("initiator_task_tag", NO_TAG), Reserved(4), *STATUS_NUMBERS,
    Field("async_event", 1, names=AsyncEvent), Field("async_vcode", 1), Field("parameter1", 2),
    Field("parameter2", 2), Field("parameter3", 2), Reserved(4)))

REJECT = Bhs(
    "Reject", "Reject",
    "Reject (0x3f). ``data`` is the complete header of the rejected PDU; ``data_sn`` is "
    "DataSN/R2TSN (only meaningful for a SNACK reject).",
    Opcode.REJECT, (_F,), (
    Field("reason", 1, names=RejectReason), Reserved(1)), (
    Reserved(8), tag("initiator_task_tag", NO_TAG), Reserved(4), *STATUS_NUMBERS,
    number("data_sn"), Reserved(8)))

TABLES: tuple[Bhs, ...] = (
    NOP_OUT, SCSI_COMMAND, TASK_MANAGEMENT_REQUEST, LOGIN_REQUEST, TEXT_REQUEST, DATA_OUT,
    LOGOUT_REQUEST, SNACK, NOP_IN, SCSI_RESPONSE, TASK_MANAGEMENT_RESPONSE, LOGIN_RESPONSE,
    TEXT_RESPONSE, DATA_IN, LOGOUT_RESPONSE, R2T, ASYNC_MESSAGE, REJECT)
"""Every PDU's table, in opcode order."""
