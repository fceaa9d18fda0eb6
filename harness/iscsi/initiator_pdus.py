"""The PDUs an initiator sends (RFC 7143 opcodes 0x00-0x1f), one ``__slots__`` class each.

See :mod:`harness.iscsi.pdu` for the conventions every PDU follows.
"""

from __future__ import annotations

import struct
from struct import Struct

from harness.iscsi.codes import AhsType, Opcode
from harness.iscsi.pdu import (
    CDB_IN_BHS,
    NO_TAG,
    Pdu,
    _new,
    bidirectional_read_length_ahs,
    extended_cdb_ahs,
    iter_ahs,
)


class NopOut(Pdu):
    """NOP-Out (0x00): ping, or the answer to a NOP-In that carries a Target Transfer Tag."""

    __slots__ = ("cmd_sn", "exp_stat_sn", "lun", "target_transfer_tag")
    opcode = Opcode.NOP_OUT
    _struct = Struct(">BB2xIQIIII16x")

    def __init__(self, *, immediate: bool = True, lun: int = 0,
                 initiator_task_tag: int = 0, target_transfer_tag: int = NO_TAG,
                 cmd_sn: int = 0, exp_stat_sn: int = 0, ahs: bytes = b"",
                 data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.lun = lun
        self.target_transfer_tag = target_transfer_tag
        self.cmd_sn = cmd_sn
        self.exp_stat_sn = exp_stat_sn

    def pack_bhs(self, lengths: int) -> bytes:
        return self._struct.pack(self._byte0(), 0x80, lengths, self.lun,
                                 self.initiator_task_tag, self.target_transfer_tag,
                                 self.cmd_sn, self.exp_stat_sn)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, _, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        (self.lun, self.initiator_task_tag, self.target_transfer_tag, self.cmd_sn,
         self.exp_stat_sn) = rest
        return self


class ScsiCommand(Pdu):
    """SCSI Command (0x01). ``cdb`` is the whole CDB: bytes past 16 travel in an
    Extended CDB AHS, and ``expected_bidirectional_read_data_length`` (when not None)
    in its own AHS. A CDB shorter than 16 bytes is zero-padded to 16, as on the wire.
    A non-empty ``ahs`` is sent verbatim instead of the derived AHS (crafted probes);
    decoding leaves ``ahs`` empty when the received AHS is exactly the derived one."""

    __slots__ = ("attr", "cdb", "cmd_sn", "exp_stat_sn", "expected_bidirectional_read_data_length",
                 "expected_data_transfer_length", "final", "lun", "read", "write")
    opcode = Opcode.SCSI_COMMAND
    _struct = Struct(">BBxxIQIIII16s")

    def __init__(self, *, immediate: bool = False, final: bool = True, read: bool = False,
                 write: bool = False, attr: int = 1, lun: int = 0, initiator_task_tag: int = 0,
                 expected_data_transfer_length: int = 0, cmd_sn: int = 0, exp_stat_sn: int = 0,
                 cdb: bytes = bytes(16),
                 expected_bidirectional_read_data_length: int | None = None,
                 ahs: bytes = b"", data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.final = final
        self.read = read
        self.write = write
        self.attr = attr
        self.lun = lun
        self.expected_data_transfer_length = expected_data_transfer_length
        self.cmd_sn = cmd_sn
        self.exp_stat_sn = exp_stat_sn
        self.cdb = cdb if len(cdb) >= CDB_IN_BHS else cdb.ljust(CDB_IN_BHS, b"\x00")
        self.expected_bidirectional_read_data_length = expected_bidirectional_read_data_length

    def wire_ahs(self) -> bytes:
        if self.ahs:
            return self.ahs
        ahs = b""
        if len(self.cdb) > CDB_IN_BHS:
            ahs = extended_cdb_ahs(self.cdb[CDB_IN_BHS:])
        if self.expected_bidirectional_read_data_length is not None:
            ahs += bidirectional_read_length_ahs(self.expected_bidirectional_read_data_length)
        return ahs

    def pack_bhs(self, lengths: int) -> bytes:
        b1 = (self.final << 7) | (self.read << 6) | (self.write << 5) | (self.attr & 7)
        return self._struct.pack(self._byte0(), b1, lengths, self.lun, self.initiator_task_tag,
                                 self.expected_data_transfer_length, self.cmd_sn,
                                 self.exp_stat_sn, self.cdb)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, b1, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        self.final = bool(b1 & 0x80)
        self.read = bool(b1 & 0x40)
        self.write = bool(b1 & 0x20)
        self.attr = b1 & 7
        (self.lun, self.initiator_task_tag, self.expected_data_transfer_length, self.cmd_sn,
         self.exp_stat_sn, cdb) = rest
        self.expected_bidirectional_read_data_length = None
        if ahs:
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
        self.cdb = cdb
        return self


class TaskManagementRequest(Pdu):
    """Task Management Function Request (0x02)."""

    __slots__ = ("cmd_sn", "exp_data_sn", "exp_stat_sn", "function", "lun", "ref_cmd_sn",
                 "referenced_task_tag")
    opcode = Opcode.TASK_MANAGEMENT_REQUEST
    _struct = Struct(">BB2xIQIIIIII8x")

    def __init__(self, *, immediate: bool = True, function: int = 1, lun: int = 0,
                 initiator_task_tag: int = 0, referenced_task_tag: int = NO_TAG,
                 cmd_sn: int = 0, exp_stat_sn: int = 0, ref_cmd_sn: int = 0,
                 exp_data_sn: int = 0, ahs: bytes = b"", data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.function = function
        self.lun = lun
        self.referenced_task_tag = referenced_task_tag
        self.cmd_sn = cmd_sn
        self.exp_stat_sn = exp_stat_sn
        self.ref_cmd_sn = ref_cmd_sn
        self.exp_data_sn = exp_data_sn

    def pack_bhs(self, lengths: int) -> bytes:
        return self._struct.pack(self._byte0(), 0x80 | (self.function & 0x7F), lengths,
                                 self.lun, self.initiator_task_tag, self.referenced_task_tag,
                                 self.cmd_sn, self.exp_stat_sn, self.ref_cmd_sn,
                                 self.exp_data_sn)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, b1, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        self.function = b1 & 0x7F
        (self.lun, self.initiator_task_tag, self.referenced_task_tag, self.cmd_sn,
         self.exp_stat_sn, self.ref_cmd_sn, self.exp_data_sn) = rest
        return self


class LoginRequest(Pdu):
    """Login Request (0x03). ``isid`` is the 48-bit ISID as an integer."""

    __slots__ = ("cid", "cmd_sn", "continue_", "csg", "exp_stat_sn", "isid", "nsg", "transit",
                 "tsih", "version_max", "version_min")
    opcode = Opcode.LOGIN_REQUEST
    _struct = Struct(">BBBBIHIHIH2xII16x")

    def __init__(self, *, immediate: bool = True, transit: bool = False,
                 continue_: bool = False, csg: int = 0, nsg: int = 0, version_max: int = 0,
                 version_min: int = 0, isid: int = 0, tsih: int = 0,
                 initiator_task_tag: int = 0, cid: int = 0, cmd_sn: int = 0,
                 exp_stat_sn: int = 0, ahs: bytes = b"", data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.transit = transit
        self.continue_ = continue_
        self.csg = csg
        self.nsg = nsg
        self.version_max = version_max
        self.version_min = version_min
        self.isid = isid
        self.tsih = tsih
        self.cid = cid
        self.cmd_sn = cmd_sn
        self.exp_stat_sn = exp_stat_sn

    def pack_bhs(self, lengths: int) -> bytes:
        b1 = (self.transit << 7) | (self.continue_ << 6) | ((self.csg & 3) << 2) | (self.nsg & 3)
        return self._struct.pack(self._byte0(), b1, self.version_max, self.version_min,
                                 lengths, self.isid >> 32, self.isid & 0xFFFFFFFF, self.tsih,
                                 self.initiator_task_tag, self.cid, self.cmd_sn,
                                 self.exp_stat_sn)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        (b0, b1, vmax, vmin, _, isid_hi, isid_lo, tsih, itt, cid, cmd_sn,
         exp_stat_sn) = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        self.transit = bool(b1 & 0x80)
        self.continue_ = bool(b1 & 0x40)
        self.csg = (b1 >> 2) & 3
        self.nsg = b1 & 3
        self.version_max, self.version_min = vmax, vmin
        self.isid = (isid_hi << 32) | isid_lo
        self.tsih, self.initiator_task_tag, self.cid = tsih, itt, cid
        self.cmd_sn, self.exp_stat_sn = cmd_sn, exp_stat_sn
        return self


class TextRequest(Pdu):
    """Text Request (0x04)."""

    __slots__ = ("cmd_sn", "continue_", "exp_stat_sn", "final", "lun", "target_transfer_tag")
    opcode = Opcode.TEXT_REQUEST
    _struct = Struct(">BB2xIQIIII16x")

    def __init__(self, *, immediate: bool = False, final: bool = True, continue_: bool = False,
                 lun: int = 0, initiator_task_tag: int = 0, target_transfer_tag: int = NO_TAG,
                 cmd_sn: int = 0, exp_stat_sn: int = 0, ahs: bytes = b"",
                 data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.final = final
        self.continue_ = continue_
        self.lun = lun
        self.target_transfer_tag = target_transfer_tag
        self.cmd_sn = cmd_sn
        self.exp_stat_sn = exp_stat_sn

    def pack_bhs(self, lengths: int) -> bytes:
        return self._struct.pack(self._byte0(), (self.final << 7) | (self.continue_ << 6),
                                 lengths, self.lun, self.initiator_task_tag,
                                 self.target_transfer_tag, self.cmd_sn, self.exp_stat_sn)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, b1, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        self.final = bool(b1 & 0x80)
        self.continue_ = bool(b1 & 0x40)
        (self.lun, self.initiator_task_tag, self.target_transfer_tag, self.cmd_sn,
         self.exp_stat_sn) = rest
        return self


class DataOut(Pdu):
    """SCSI Data-Out (0x05)."""

    __slots__ = ("buffer_offset", "data_sn", "exp_stat_sn", "final", "lun",
                 "target_transfer_tag")
    opcode = Opcode.DATA_OUT
    _struct = Struct(">BB2xIQII4xI4xII4x")

    def __init__(self, *, immediate: bool = False, final: bool = True, lun: int = 0,
                 initiator_task_tag: int = 0, target_transfer_tag: int = NO_TAG,
                 exp_stat_sn: int = 0, data_sn: int = 0, buffer_offset: int = 0,
                 ahs: bytes = b"", data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.final = final
        self.lun = lun
        self.target_transfer_tag = target_transfer_tag
        self.exp_stat_sn = exp_stat_sn
        self.data_sn = data_sn
        self.buffer_offset = buffer_offset

    def pack_bhs(self, lengths: int) -> bytes:
        return self._struct.pack(self._byte0(), self.final << 7, lengths, self.lun,
                                 self.initiator_task_tag, self.target_transfer_tag,
                                 self.exp_stat_sn, self.data_sn, self.buffer_offset)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, b1, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        self.final = bool(b1 & 0x80)
        (self.lun, self.initiator_task_tag, self.target_transfer_tag, self.exp_stat_sn,
         self.data_sn, self.buffer_offset) = rest
        return self


class LogoutRequest(Pdu):
    """Logout Request (0x06)."""

    __slots__ = ("cid", "cmd_sn", "exp_stat_sn", "reason_code")
    opcode = Opcode.LOGOUT_REQUEST
    _struct = Struct(">BB2xI8xIH2xII16x")

    def __init__(self, *, immediate: bool = True, reason_code: int = 0,
                 initiator_task_tag: int = 0, cid: int = 0, cmd_sn: int = 0,
                 exp_stat_sn: int = 0, ahs: bytes = b"", data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.reason_code = reason_code
        self.cid = cid
        self.cmd_sn = cmd_sn
        self.exp_stat_sn = exp_stat_sn

    def pack_bhs(self, lengths: int) -> bytes:
        return self._struct.pack(self._byte0(), 0x80 | (self.reason_code & 0x7F), lengths,
                                 self.initiator_task_tag, self.cid, self.cmd_sn,
                                 self.exp_stat_sn)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, b1, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        self.reason_code = b1 & 0x7F
        self.initiator_task_tag, self.cid, self.cmd_sn, self.exp_stat_sn = rest
        return self


class Snack(Pdu):
    """SNACK Request (0x10). ``target_transfer_tag`` is the TTT or SNACK Tag."""

    __slots__ = ("beg_run", "exp_stat_sn", "lun", "run_length", "target_transfer_tag", "type")
    opcode = Opcode.SNACK
    _struct = Struct(">BB2xIQII4xI8xII")

    def __init__(self, *, immediate: bool = False, type: int = 0, lun: int = 0,
                 initiator_task_tag: int = NO_TAG, target_transfer_tag: int = NO_TAG,
                 exp_stat_sn: int = 0, beg_run: int = 0, run_length: int = 0,
                 ahs: bytes = b"", data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.type = type
        self.lun = lun
        self.target_transfer_tag = target_transfer_tag
        self.exp_stat_sn = exp_stat_sn
        self.beg_run = beg_run
        self.run_length = run_length

    def pack_bhs(self, lengths: int) -> bytes:
        return self._struct.pack(self._byte0(), 0x80 | (self.type & 0x0F), lengths, self.lun,
                                 self.initiator_task_tag, self.target_transfer_tag,
                                 self.exp_stat_sn, self.beg_run, self.run_length)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, b1, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        self.type = b1 & 0x0F
        (self.lun, self.initiator_task_tag, self.target_transfer_tag, self.exp_stat_sn,
         self.beg_run, self.run_length) = rest
        return self
