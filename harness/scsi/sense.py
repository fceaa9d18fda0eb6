"""Sense data (SPC-4 4.5): sense keys, named ASC/ASCQ pairs, fixed and descriptor formats.

A ``SenseData`` is format-neutral: a sense key, an additional sense code pair, and
the optional information field and sense-key-specific field pointer. ``encode``
writes it as fixed (response code 0x70 current / 0x71 deferred) or descriptor
(0x72 / 0x73) format; ``SenseData.decode`` reads either. The target builds sense
with the constructors at the bottom (``invalid_field_in_cdb`` ...); the initiator
decodes what it receives and compares against the named constants in ``Asc``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from harness.scsi.errors import ScsiDataError

FIXED_CURRENT = 0x70
FIXED_DEFERRED = 0x71
DESCRIPTOR_CURRENT = 0x72
DESCRIPTOR_DEFERRED = 0x73

_DESC_INFORMATION = 0x00
_DESC_COMMAND_SPECIFIC = 0x01
_DESC_SENSE_KEY_SPECIFIC = 0x02


class SenseKey(IntEnum):
    """Sense keys (SPC-4 table 48)."""

    NO_SENSE = 0x0
    RECOVERED_ERROR = 0x1
    NOT_READY = 0x2
    MEDIUM_ERROR = 0x3
    HARDWARE_ERROR = 0x4
    ILLEGAL_REQUEST = 0x5
    UNIT_ATTENTION = 0x6
    DATA_PROTECT = 0x7
    BLANK_CHECK = 0x8
    VENDOR_SPECIFIC = 0x9
    COPY_ABORTED = 0xA
    ABORTED_COMMAND = 0xB
    OBSOLETE_EQUAL = 0xC  # SCSI-2 EQUAL; obsolete, decoded so old targets parse
    VOLUME_OVERFLOW = 0xD
    MISCOMPARE = 0xE
    COMPLETED = 0xF


class AdditionalSense(NamedTuple):
    """An ASC/ASCQ pair with its SPC-4 name."""

    asc: int
    ascq: int
    name: str

    def matches(self, asc: int, ascq: int) -> bool:
        return self.asc == asc and self.ascq == ascq

    def __str__(self) -> str:
        return f"{self.name} ({self.asc:02X}h/{self.ascq:02X}h)"


class Asc:
    """Named additional sense codes (SPC-4 Annex D), the ones this harness uses."""

    NO_ADDITIONAL_SENSE = AdditionalSense(0x00, 0x00, "NO ADDITIONAL SENSE INFORMATION")
    NOT_READY_CAUSE_NOT_REPORTABLE = AdditionalSense(
        0x04, 0x00, "LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE"
    )
    NOT_READY_MANUAL_INTERVENTION = AdditionalSense(
        0x04, 0x03, "LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED"
    )
    NOT_READY_ASYMMETRIC_ACCESS_TRANSITION = AdditionalSense(
        0x04, 0x0A, "LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION"
    )
    NOT_READY_TARGET_PORT_STANDBY = AdditionalSense(
        0x04, 0x0B, "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE"
    )
    NOT_READY_TARGET_PORT_UNAVAILABLE = AdditionalSense(
        0x04, 0x0C, "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE"
    )
    LOGICAL_UNIT_COMMUNICATION_FAILURE = AdditionalSense(
        0x08, 0x00, "LOGICAL UNIT COMMUNICATION FAILURE"
    )
    WRITE_ERROR = AdditionalSense(0x0C, 0x00, "WRITE ERROR")
    UNRECOVERED_READ_ERROR = AdditionalSense(0x11, 0x00, "UNRECOVERED READ ERROR")
    PARAMETER_LIST_LENGTH_ERROR = AdditionalSense(0x1A, 0x00, "PARAMETER LIST LENGTH ERROR")
    MISCOMPARE_DURING_VERIFY = AdditionalSense(
        0x1D, 0x00, "MISCOMPARE DURING VERIFY OPERATION"
    )
    INVALID_COMMAND_OPERATION_CODE = AdditionalSense(
        0x20, 0x00, "INVALID COMMAND OPERATION CODE"
    )
    LBA_OUT_OF_RANGE = AdditionalSense(0x21, 0x00, "LOGICAL BLOCK ADDRESS OUT OF RANGE")
    INVALID_FIELD_IN_CDB = AdditionalSense(0x24, 0x00, "INVALID FIELD IN CDB")
    LOGICAL_UNIT_NOT_SUPPORTED = AdditionalSense(0x25, 0x00, "LOGICAL UNIT NOT SUPPORTED")
    INVALID_FIELD_IN_PARAMETER_LIST = AdditionalSense(
        0x26, 0x00, "INVALID FIELD IN PARAMETER LIST"
    )
    INVALID_RELEASE_OF_PERSISTENT_RESERVATION = AdditionalSense(
        0x26, 0x04, "INVALID RELEASE OF PERSISTENT RESERVATION"
    )
    WRITE_PROTECTED = AdditionalSense(0x27, 0x00, "WRITE PROTECTED")
    SPACE_ALLOCATION_FAILED_WRITE_PROTECT = AdditionalSense(
        0x27, 0x07, "SPACE ALLOCATION FAILED WRITE PROTECT"
    )
    POWER_ON_RESET = AdditionalSense(
        0x29, 0x00, "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED"
    )
    POWER_ON_OCCURRED = AdditionalSense(0x29, 0x01, "POWER ON OCCURRED")
    BUS_DEVICE_RESET_OCCURRED = AdditionalSense(
        0x29, 0x03, "BUS DEVICE RESET FUNCTION OCCURRED"
    )
    I_T_NEXUS_LOSS_OCCURRED = AdditionalSense(0x29, 0x07, "I_T NEXUS LOSS OCCURRED")
    PARAMETERS_CHANGED = AdditionalSense(0x2A, 0x00, "PARAMETERS CHANGED")
    MODE_PARAMETERS_CHANGED = AdditionalSense(0x2A, 0x01, "MODE PARAMETERS CHANGED")
    RESERVATIONS_PREEMPTED = AdditionalSense(0x2A, 0x03, "RESERVATIONS PREEMPTED")
    RESERVATIONS_RELEASED = AdditionalSense(0x2A, 0x04, "RESERVATIONS RELEASED")
    REGISTRATIONS_PREEMPTED = AdditionalSense(0x2A, 0x05, "REGISTRATIONS PREEMPTED")
    ASYMMETRIC_ACCESS_STATE_CHANGED = AdditionalSense(
        0x2A, 0x06, "ASYMMETRIC ACCESS STATE CHANGED"
    )
    IMPLICIT_ASYMMETRIC_ACCESS_STATE_TRANSITION_FAILED = AdditionalSense(
        0x2A, 0x07, "IMPLICIT ASYMMETRIC ACCESS STATE TRANSITION FAILED"
    )
    CAPACITY_DATA_HAS_CHANGED = AdditionalSense(0x2A, 0x09, "CAPACITY DATA HAS CHANGED")
    COMMANDS_CLEARED_BY_ANOTHER_INITIATOR = AdditionalSense(
        0x2F, 0x00, "COMMANDS CLEARED BY ANOTHER INITIATOR"
    )
    SAVING_PARAMETERS_NOT_SUPPORTED = AdditionalSense(
        0x39, 0x00, "SAVING PARAMETERS NOT SUPPORTED"
    )
    MEDIUM_NOT_PRESENT = AdditionalSense(0x3A, 0x00, "MEDIUM NOT PRESENT")
    INQUIRY_DATA_HAS_CHANGED = AdditionalSense(0x3F, 0x03, "INQUIRY DATA HAS CHANGED")
    REPORTED_LUNS_DATA_HAS_CHANGED = AdditionalSense(
        0x3F, 0x0E, "REPORTED LUNS DATA HAS CHANGED"
    )
    INTERNAL_TARGET_FAILURE = AdditionalSense(0x44, 0x00, "INTERNAL TARGET FAILURE")
    OVERLAPPED_COMMANDS_ATTEMPTED = AdditionalSense(
        0x4E, 0x00, "OVERLAPPED COMMANDS ATTEMPTED"
    )
    INSUFFICIENT_RESERVATION_RESOURCES = AdditionalSense(
        0x55, 0x02, "INSUFFICIENT RESERVATION RESOURCES"
    )
    INSUFFICIENT_REGISTRATION_RESOURCES = AdditionalSense(
        0x55, 0x04, "INSUFFICIENT REGISTRATION RESOURCES"
    )


_BY_CODE: dict[tuple[int, int], AdditionalSense] = {
    (v.asc, v.ascq): v for v in vars(Asc).values() if isinstance(v, AdditionalSense)
}


def describe_asc(asc: int, ascq: int) -> str:
    """The SPC-4 name of an ASC/ASCQ pair, or its hex if this table does not know it."""
    known = _BY_CODE.get((asc, ascq))
    return str(known) if known else f"ASC {asc:02X}h ASCQ {ascq:02X}h"


@dataclass(frozen=True, slots=True)
class FieldPointer:
    """Sense-key-specific field pointer for ILLEGAL REQUEST (SPC-4 4.5.2.4.2).

    ``in_cdb`` is C/D: True when the error is in the CDB, False in the parameter list.
    ``bit`` is the bit pointer (0..7) or None when BPV is zero.
    """

    in_cdb: bool
    byte: int
    bit: int | None = None

    def encode(self) -> bytes:
        b0 = 0x80 | (0x40 if self.in_cdb else 0)
        if self.bit is not None:
            b0 |= 0x08 | (self.bit & 0x07)
        return bytes((b0,)) + struct.pack(">H", self.byte & 0xFFFF)

    @classmethod
    def decode(cls, raw: bytes) -> FieldPointer | None:
        if len(raw) < 3 or not raw[0] & 0x80:
            return None
        bit = raw[0] & 0x07 if raw[0] & 0x08 else None
        return cls(bool(raw[0] & 0x40), struct.unpack_from(">H", raw, 1)[0], bit)


@dataclass(frozen=True, slots=True)
class SenseData:
    """One sense data report, independent of its on-the-wire format."""

    key: SenseKey
    asc: int
    ascq: int
    information: int | None = None
    command_specific: int | None = None
    field_pointer: FieldPointer | None = None
    sense_key_specific: bytes | None = None  # raw 3 bytes when not a field pointer
    deferred: bool = False
    ili: bool = False

    @classmethod
    def of(
        cls, key: SenseKey, code: AdditionalSense, **kwargs: object
    ) -> SenseData:
        return cls(key, code.asc, code.ascq, **kwargs)  # type: ignore[arg-type]

    @property
    def additional(self) -> AdditionalSense:
        known = _BY_CODE.get((self.asc, self.ascq))
        return known or AdditionalSense(self.asc, self.ascq, describe_asc(self.asc, self.ascq))

    def is_(self, code: AdditionalSense) -> bool:
        return self.asc == code.asc and self.ascq == code.ascq

    def __str__(self) -> str:
        return f"{self.key.name} {describe_asc(self.asc, self.ascq)}"

    def _sks_bytes(self) -> bytes | None:
        if self.field_pointer is not None:
            return self.field_pointer.encode()
        if self.sense_key_specific is not None:
            return bytes(self.sense_key_specific[:3]).ljust(3, b"\0")
        return None

    def encode(self, *, descriptor: bool = False) -> bytes:
        """Encode as fixed (18 bytes) or descriptor format."""
        return self.encode_descriptor() if descriptor else self.encode_fixed()

    def encode_fixed(self) -> bytes:
        buf = bytearray(18)
        info = self.information
        valid = info is not None and info <= 0xFFFFFFFF
        buf[0] = (0x80 if valid else 0) | (FIXED_DEFERRED if self.deferred else FIXED_CURRENT)
        buf[2] = (0x20 if self.ili else 0) | (self.key & 0x0F)
        if valid:
            struct.pack_into(">I", buf, 3, info)
        buf[7] = 10
        if self.command_specific is not None:
            struct.pack_into(">I", buf, 8, self.command_specific & 0xFFFFFFFF)
        buf[12] = self.asc
        buf[13] = self.ascq
        sks = self._sks_bytes()
        if sks is not None:
            buf[15:18] = sks
        return bytes(buf)

    def encode_descriptor(self) -> bytes:
        descs = bytearray()
        if self.information is not None:
            descs += bytes((_DESC_INFORMATION, 0x0A, 0x80, 0))
            descs += struct.pack(">Q", self.information)
        if self.command_specific is not None:
            descs += bytes((_DESC_COMMAND_SPECIFIC, 0x0A, 0, 0))
            descs += struct.pack(">Q", self.command_specific)
        sks = self._sks_bytes()
        if sks is not None:
            descs += bytes((_DESC_SENSE_KEY_SPECIFIC, 0x06, 0, 0)) + sks + b"\0"
        head = bytes((
            DESCRIPTOR_DEFERRED if self.deferred else DESCRIPTOR_CURRENT,
            self.key & 0x0F, self.asc, self.ascq, 0, 0, 0, len(descs),
        ))
        return head + bytes(descs)

    @classmethod
    def decode(cls, raw: bytes) -> SenseData:
        """Decode fixed or descriptor sense data (as carried after iSCSI's SenseLength)."""
        if len(raw) < 2:
            raise ScsiDataError(f"sense data is {len(raw)} bytes; need at least 2 (SPC-4 4.5)")
        code = raw[0] & 0x7F
        if code in (FIXED_CURRENT, FIXED_DEFERRED):
            return cls._decode_fixed(raw, code)
        if code in (DESCRIPTOR_CURRENT, DESCRIPTOR_DEFERRED):
            return cls._decode_descriptor(raw, code)
        raise ScsiDataError(
            f"sense response code 0x{code:02x} is neither fixed (70h/71h) nor descriptor "
            "(72h/73h); the target sent malformed sense"
        )

    @classmethod
    def _decode_fixed(cls, raw: bytes, code: int) -> SenseData:
        buf = bytes(raw).ljust(18, b"\0")
        info = struct.unpack_from(">I", buf, 3)[0] if raw[0] & 0x80 else None
        add_len = buf[7]
        cmd_specific = struct.unpack_from(">I", buf, 8)[0] if add_len >= 4 else None
        if cmd_specific == 0:
            cmd_specific = None
        sks_raw = buf[15:18]
        fp, sks = _split_sks(SenseKey(buf[2] & 0x0F), sks_raw)
        return cls(
            key=SenseKey(buf[2] & 0x0F), asc=buf[12], ascq=buf[13], information=info,
            command_specific=cmd_specific, field_pointer=fp, sense_key_specific=sks,
            deferred=code == FIXED_DEFERRED, ili=bool(buf[2] & 0x20),
        )

    @classmethod
    def _decode_descriptor(cls, raw: bytes, code: int) -> SenseData:
        buf = bytes(raw).ljust(8, b"\0")
        key = SenseKey(buf[1] & 0x0F)
        end = min(len(buf), 8 + buf[7])
        info = cmd = None
        fp = sks = None
        pos = 8
        while pos + 2 <= end:
            dtype, dlen = buf[pos], buf[pos + 1]
            body = buf[pos + 2 : pos + 2 + dlen]
            if dtype == _DESC_INFORMATION and len(body) >= 10 and body[0] & 0x80:
                info = struct.unpack_from(">Q", body, 2)[0]
            elif dtype == _DESC_COMMAND_SPECIFIC and len(body) >= 10:
                cmd = struct.unpack_from(">Q", body, 2)[0]
            elif dtype == _DESC_SENSE_KEY_SPECIFIC and len(body) >= 5:
                fp, sks = _split_sks(key, body[2:5])
            pos += 2 + dlen
        return cls(
            key=key, asc=buf[2], ascq=buf[3], information=info, command_specific=cmd,
            field_pointer=fp, sense_key_specific=sks, deferred=code == DESCRIPTOR_DEFERRED,
        )


def _split_sks(key: SenseKey, raw: bytes) -> tuple[FieldPointer | None, bytes | None]:
    if not raw[0] & 0x80:
        return None, None
    if key == SenseKey.ILLEGAL_REQUEST:
        return FieldPointer.decode(raw), None
    return None, bytes(raw)


# Constructors for the sense the target reports most.


def invalid_field_in_cdb(byte: int, bit: int | None = None) -> SenseData:
    return SenseData.of(
        SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB,
        field_pointer=FieldPointer(True, byte, bit),
    )


def invalid_field_in_parameter_list(byte: int, bit: int | None = None) -> SenseData:
    return SenseData.of(
        SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_PARAMETER_LIST,
        field_pointer=FieldPointer(False, byte, bit),
    )


def illegal_request(code: AdditionalSense) -> SenseData:
    return SenseData.of(SenseKey.ILLEGAL_REQUEST, code)


def unit_attention(code: AdditionalSense) -> SenseData:
    return SenseData.of(SenseKey.UNIT_ATTENTION, code)


def not_ready(code: AdditionalSense) -> SenseData:
    return SenseData.of(SenseKey.NOT_READY, code)
