"""The PDUs a target sends (RFC 7143 opcodes 0x20-0x3f), one ``__slots__`` class each.

See :mod:`harness.iscsi.pdu` for the conventions every PDU follows. The target
PDUs carry StatSN, ExpCmdSN and MaxCmdSN, the three numbers that drive the
initiator's command window.
"""

from __future__ import annotations

from struct import Struct

from harness.iscsi.codes import Opcode
from harness.iscsi.pdu import NO_TAG, Pdu, _new


class NopIn(Pdu):
    """NOP-In (0x20): the answer to a NOP-Out, or the target's own ping (TTT set)."""

    __slots__ = ("exp_cmd_sn", "lun", "max_cmd_sn", "stat_sn", "target_transfer_tag")
    opcode = Opcode.NOP_IN
    _struct = Struct(">BB2xIQIIIII12x")

    def __init__(self, *, immediate: bool = False, lun: int = 0,
                 initiator_task_tag: int = NO_TAG, target_transfer_tag: int = NO_TAG,
                 stat_sn: int = 0, exp_cmd_sn: int = 0, max_cmd_sn: int = 0,
                 ahs: bytes = b"", data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.lun = lun
        self.target_transfer_tag = target_transfer_tag
        self.stat_sn = stat_sn
        self.exp_cmd_sn = exp_cmd_sn
        self.max_cmd_sn = max_cmd_sn

    def pack_bhs(self, lengths: int) -> bytes:
        return self._struct.pack(self._byte0(), 0x80, lengths, self.lun,
                                 self.initiator_task_tag, self.target_transfer_tag,
                                 self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, _, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        (self.lun, self.initiator_task_tag, self.target_transfer_tag, self.stat_sn,
         self.exp_cmd_sn, self.max_cmd_sn) = rest
        return self


class ScsiResponse(Pdu):
    """SCSI Response (0x21). ``data`` is SenseLength (2 bytes), sense data and any
    response data, exactly as on the wire."""

    __slots__ = ("bidirectional_overflow", "bidirectional_read_residual_count",
                 "bidirectional_underflow", "exp_cmd_sn", "exp_data_sn", "max_cmd_sn",
                 "residual_count", "residual_overflow", "residual_underflow", "response",
                 "snack_tag", "stat_sn", "status")
    opcode = Opcode.SCSI_RESPONSE
    _struct = Struct(">BBBBI8xIIIIIIII")

    def __init__(self, *, immediate: bool = False, bidirectional_overflow: bool = False,
                 bidirectional_underflow: bool = False, residual_overflow: bool = False,
                 residual_underflow: bool = False, response: int = 0, status: int = 0,
                 initiator_task_tag: int = 0, snack_tag: int = 0, stat_sn: int = 0,
                 exp_cmd_sn: int = 0, max_cmd_sn: int = 0, exp_data_sn: int = 0,
                 bidirectional_read_residual_count: int = 0, residual_count: int = 0,
                 ahs: bytes = b"", data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.bidirectional_overflow = bidirectional_overflow
        self.bidirectional_underflow = bidirectional_underflow
        self.residual_overflow = residual_overflow
        self.residual_underflow = residual_underflow
        self.response = response
        self.status = status
        self.snack_tag = snack_tag
        self.stat_sn = stat_sn
        self.exp_cmd_sn = exp_cmd_sn
        self.max_cmd_sn = max_cmd_sn
        self.exp_data_sn = exp_data_sn
        self.bidirectional_read_residual_count = bidirectional_read_residual_count
        self.residual_count = residual_count

    def pack_bhs(self, lengths: int) -> bytes:
        b1 = (0x80 | (self.bidirectional_overflow << 4) | (self.bidirectional_underflow << 3)
              | (self.residual_overflow << 2) | (self.residual_underflow << 1))
        return self._struct.pack(self._byte0(), b1, self.response, self.status, lengths,
                                 self.initiator_task_tag, self.snack_tag, self.stat_sn,
                                 self.exp_cmd_sn, self.max_cmd_sn, self.exp_data_sn,
                                 self.bidirectional_read_residual_count, self.residual_count)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, b1, response, status, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        self.bidirectional_overflow = bool(b1 & 0x10)
        self.bidirectional_underflow = bool(b1 & 0x08)
        self.residual_overflow = bool(b1 & 0x04)
        self.residual_underflow = bool(b1 & 0x02)
        self.response, self.status = response, status
        (self.initiator_task_tag, self.snack_tag, self.stat_sn, self.exp_cmd_sn,
         self.max_cmd_sn, self.exp_data_sn, self.bidirectional_read_residual_count,
         self.residual_count) = rest
        return self


class TaskManagementResponse(Pdu):
    """Task Management Function Response (0x22)."""

    __slots__ = ("exp_cmd_sn", "max_cmd_sn", "response", "stat_sn")
    opcode = Opcode.TASK_MANAGEMENT_RESPONSE
    _struct = Struct(">BBBxI8xI4xIII12x")

    def __init__(self, *, immediate: bool = False, response: int = 0,
                 initiator_task_tag: int = 0, stat_sn: int = 0, exp_cmd_sn: int = 0,
                 max_cmd_sn: int = 0, ahs: bytes = b"", data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.response = response
        self.stat_sn = stat_sn
        self.exp_cmd_sn = exp_cmd_sn
        self.max_cmd_sn = max_cmd_sn

    def pack_bhs(self, lengths: int) -> bytes:
        return self._struct.pack(self._byte0(), 0x80, self.response, lengths,
                                 self.initiator_task_tag, self.stat_sn, self.exp_cmd_sn,
                                 self.max_cmd_sn)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, _, response, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        self.response = response
        self.initiator_task_tag, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn = rest
        return self


class LoginResponse(Pdu):
    """Login Response (0x23). ``isid`` is the 48-bit ISID as an integer."""

    __slots__ = ("continue_", "csg", "exp_cmd_sn", "isid", "max_cmd_sn", "nsg", "stat_sn",
                 "status_class", "status_detail", "transit", "tsih", "version_active",
                 "version_max")
    opcode = Opcode.LOGIN_RESPONSE
    _struct = Struct(">BBBBIHIHI4xIIIBB10x")

    def __init__(self, *, immediate: bool = False, transit: bool = False,
                 continue_: bool = False, csg: int = 0, nsg: int = 0, version_max: int = 0,
                 version_active: int = 0, isid: int = 0, tsih: int = 0,
                 initiator_task_tag: int = 0, stat_sn: int = 0, exp_cmd_sn: int = 0,
                 max_cmd_sn: int = 0, status_class: int = 0, status_detail: int = 0,
                 ahs: bytes = b"", data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.transit = transit
        self.continue_ = continue_
        self.csg = csg
        self.nsg = nsg
        self.version_max = version_max
        self.version_active = version_active
        self.isid = isid
        self.tsih = tsih
        self.stat_sn = stat_sn
        self.exp_cmd_sn = exp_cmd_sn
        self.max_cmd_sn = max_cmd_sn
        self.status_class = status_class
        self.status_detail = status_detail

    def pack_bhs(self, lengths: int) -> bytes:
        b1 = (self.transit << 7) | (self.continue_ << 6) | ((self.csg & 3) << 2) | (self.nsg & 3)
        return self._struct.pack(self._byte0(), b1, self.version_max, self.version_active,
                                 lengths, self.isid >> 32, self.isid & 0xFFFFFFFF, self.tsih,
                                 self.initiator_task_tag, self.stat_sn, self.exp_cmd_sn,
                                 self.max_cmd_sn, self.status_class, self.status_detail)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        (b0, b1, vmax, vactive, _, isid_hi, isid_lo, tsih, itt, stat_sn, exp_cmd_sn,
         max_cmd_sn, status_class, status_detail) = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        self.transit = bool(b1 & 0x80)
        self.continue_ = bool(b1 & 0x40)
        self.csg = (b1 >> 2) & 3
        self.nsg = b1 & 3
        self.version_max, self.version_active = vmax, vactive
        self.isid = (isid_hi << 32) | isid_lo
        self.tsih, self.initiator_task_tag = tsih, itt
        self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn = stat_sn, exp_cmd_sn, max_cmd_sn
        self.status_class, self.status_detail = status_class, status_detail
        return self


class TextResponse(Pdu):
    """Text Response (0x24)."""

    __slots__ = ("continue_", "exp_cmd_sn", "final", "lun", "max_cmd_sn", "stat_sn",
                 "target_transfer_tag")
    opcode = Opcode.TEXT_RESPONSE
    _struct = Struct(">BB2xIQIIIII12x")

    def __init__(self, *, immediate: bool = False, final: bool = True, continue_: bool = False,
                 lun: int = 0, initiator_task_tag: int = 0, target_transfer_tag: int = NO_TAG,
                 stat_sn: int = 0, exp_cmd_sn: int = 0, max_cmd_sn: int = 0,
                 ahs: bytes = b"", data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.final = final
        self.continue_ = continue_
        self.lun = lun
        self.target_transfer_tag = target_transfer_tag
        self.stat_sn = stat_sn
        self.exp_cmd_sn = exp_cmd_sn
        self.max_cmd_sn = max_cmd_sn

    def pack_bhs(self, lengths: int) -> bytes:
        return self._struct.pack(self._byte0(), (self.final << 7) | (self.continue_ << 6),
                                 lengths, self.lun, self.initiator_task_tag,
                                 self.target_transfer_tag, self.stat_sn, self.exp_cmd_sn,
                                 self.max_cmd_sn)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, b1, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        self.final = bool(b1 & 0x80)
        self.continue_ = bool(b1 & 0x40)
        (self.lun, self.initiator_task_tag, self.target_transfer_tag, self.stat_sn,
         self.exp_cmd_sn, self.max_cmd_sn) = rest
        return self


class DataIn(Pdu):
    """SCSI Data-In (0x25). With ``status_present`` (the S bit) it also carries the
    command's ``status`` and residuals, and no SCSI Response follows."""

    __slots__ = ("acknowledge", "buffer_offset", "data_sn", "exp_cmd_sn", "final", "lun",
                 "max_cmd_sn", "residual_count", "residual_overflow", "residual_underflow",
                 "stat_sn", "status", "status_present", "target_transfer_tag")
    opcode = Opcode.DATA_IN
    _struct = Struct(">BBxBIQIIIIIIII")

    def __init__(self, *, immediate: bool = False, final: bool = True,
                 acknowledge: bool = False, residual_overflow: bool = False,
                 residual_underflow: bool = False, status_present: bool = False,
                 status: int = 0, lun: int = 0, initiator_task_tag: int = 0,
                 target_transfer_tag: int = NO_TAG, stat_sn: int = 0, exp_cmd_sn: int = 0,
                 max_cmd_sn: int = 0, data_sn: int = 0, buffer_offset: int = 0,
                 residual_count: int = 0, ahs: bytes = b"", data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.final = final
        self.acknowledge = acknowledge
        self.residual_overflow = residual_overflow
        self.residual_underflow = residual_underflow
        self.status_present = status_present
        self.status = status
        self.lun = lun
        self.target_transfer_tag = target_transfer_tag
        self.stat_sn = stat_sn
        self.exp_cmd_sn = exp_cmd_sn
        self.max_cmd_sn = max_cmd_sn
        self.data_sn = data_sn
        self.buffer_offset = buffer_offset
        self.residual_count = residual_count

    def pack_bhs(self, lengths: int) -> bytes:
        b1 = ((self.final << 7) | (self.acknowledge << 6) | (self.residual_overflow << 2)
              | (self.residual_underflow << 1) | self.status_present)
        return self._struct.pack(self._byte0(), b1, self.status, lengths, self.lun,
                                 self.initiator_task_tag, self.target_transfer_tag,
                                 self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn, self.data_sn,
                                 self.buffer_offset, self.residual_count)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, b1, status, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        self.final = bool(b1 & 0x80)
        self.acknowledge = bool(b1 & 0x40)
        self.residual_overflow = bool(b1 & 0x04)
        self.residual_underflow = bool(b1 & 0x02)
        self.status_present = bool(b1 & 0x01)
        self.status = status
        (self.lun, self.initiator_task_tag, self.target_transfer_tag, self.stat_sn,
         self.exp_cmd_sn, self.max_cmd_sn, self.data_sn, self.buffer_offset,
         self.residual_count) = rest
        return self


class LogoutResponse(Pdu):
    """Logout Response (0x26)."""

    __slots__ = ("exp_cmd_sn", "max_cmd_sn", "response", "stat_sn", "time2retain",
                 "time2wait")
    opcode = Opcode.LOGOUT_RESPONSE
    _struct = Struct(">BBBxI8xI4xIII4xHH4x")

    def __init__(self, *, immediate: bool = False, response: int = 0,
                 initiator_task_tag: int = 0, stat_sn: int = 0, exp_cmd_sn: int = 0,
                 max_cmd_sn: int = 0, time2wait: int = 0, time2retain: int = 0,
                 ahs: bytes = b"", data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.response = response
        self.stat_sn = stat_sn
        self.exp_cmd_sn = exp_cmd_sn
        self.max_cmd_sn = max_cmd_sn
        self.time2wait = time2wait
        self.time2retain = time2retain

    def pack_bhs(self, lengths: int) -> bytes:
        return self._struct.pack(self._byte0(), 0x80, self.response, lengths,
                                 self.initiator_task_tag, self.stat_sn, self.exp_cmd_sn,
                                 self.max_cmd_sn, self.time2wait, self.time2retain)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, _, response, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        self.response = response
        (self.initiator_task_tag, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn,
         self.time2wait, self.time2retain) = rest
        return self


class R2T(Pdu):
    """Ready To Transfer (0x31): the target asks for one burst of Data-Out."""

    __slots__ = ("buffer_offset", "desired_data_transfer_length", "exp_cmd_sn", "lun",
                 "max_cmd_sn", "r2t_sn", "stat_sn", "target_transfer_tag")
    opcode = Opcode.R2T
    _struct = Struct(">BB2xIQIIIIIIII")

    def __init__(self, *, immediate: bool = False, lun: int = 0, initiator_task_tag: int = 0,
                 target_transfer_tag: int = 0, stat_sn: int = 0, exp_cmd_sn: int = 0,
                 max_cmd_sn: int = 0, r2t_sn: int = 0, buffer_offset: int = 0,
                 desired_data_transfer_length: int = 0, ahs: bytes = b"",
                 data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.lun = lun
        self.target_transfer_tag = target_transfer_tag
        self.stat_sn = stat_sn
        self.exp_cmd_sn = exp_cmd_sn
        self.max_cmd_sn = max_cmd_sn
        self.r2t_sn = r2t_sn
        self.buffer_offset = buffer_offset
        self.desired_data_transfer_length = desired_data_transfer_length

    def pack_bhs(self, lengths: int) -> bytes:
        return self._struct.pack(self._byte0(), 0x80, lengths, self.lun,
                                 self.initiator_task_tag, self.target_transfer_tag,
                                 self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn, self.r2t_sn,
                                 self.buffer_offset, self.desired_data_transfer_length)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, _, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        (self.lun, self.initiator_task_tag, self.target_transfer_tag, self.stat_sn,
         self.exp_cmd_sn, self.max_cmd_sn, self.r2t_sn, self.buffer_offset,
         self.desired_data_transfer_length) = rest
        return self


class AsyncMessage(Pdu):
    """Asynchronous Message (0x32). For a SCSI event ``data`` holds SenseLength and sense."""

    __slots__ = ("async_event", "async_vcode", "exp_cmd_sn", "lun", "max_cmd_sn",
                 "parameter1", "parameter2", "parameter3", "stat_sn")
    opcode = Opcode.ASYNC_MESSAGE
    _struct = Struct(">BB2xIQI4xIIIBBHHH4x")

    def __init__(self, *, immediate: bool = False, lun: int = 0,
                 initiator_task_tag: int = NO_TAG, stat_sn: int = 0, exp_cmd_sn: int = 0,
                 max_cmd_sn: int = 0, async_event: int = 0, async_vcode: int = 0,
                 parameter1: int = 0, parameter2: int = 0, parameter3: int = 0,
                 ahs: bytes = b"", data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.lun = lun
        self.stat_sn = stat_sn
        self.exp_cmd_sn = exp_cmd_sn
        self.max_cmd_sn = max_cmd_sn
        self.async_event = async_event
        self.async_vcode = async_vcode
        self.parameter1 = parameter1
        self.parameter2 = parameter2
        self.parameter3 = parameter3

    def pack_bhs(self, lengths: int) -> bytes:
        return self._struct.pack(self._byte0(), 0x80, lengths, self.lun,
                                 self.initiator_task_tag, self.stat_sn, self.exp_cmd_sn,
                                 self.max_cmd_sn, self.async_event, self.async_vcode,
                                 self.parameter1, self.parameter2, self.parameter3)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, _, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        (self.lun, self.initiator_task_tag, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn,
         self.async_event, self.async_vcode, self.parameter1, self.parameter2,
         self.parameter3) = rest
        return self


class Reject(Pdu):
    """Reject (0x3f). ``data`` is the complete header of the rejected PDU;
    ``data_sn`` is DataSN/R2TSN (only meaningful for a SNACK reject)."""

    __slots__ = ("data_sn", "exp_cmd_sn", "max_cmd_sn", "reason", "stat_sn")
    opcode = Opcode.REJECT
    _struct = Struct(">BBBxI8xI4xIIII8x")

    def __init__(self, *, immediate: bool = False, reason: int = 0,
                 initiator_task_tag: int = NO_TAG, stat_sn: int = 0, exp_cmd_sn: int = 0,
                 max_cmd_sn: int = 0, data_sn: int = 0, ahs: bytes = b"",
                 data: bytes = b"") -> None:
        super().__init__(immediate=immediate, initiator_task_tag=initiator_task_tag,
                         ahs=ahs, data=data)
        self.reason = reason
        self.stat_sn = stat_sn
        self.exp_cmd_sn = exp_cmd_sn
        self.max_cmd_sn = max_cmd_sn
        self.data_sn = data_sn

    def pack_bhs(self, lengths: int) -> bytes:
        return self._struct.pack(self._byte0(), 0x80, self.reason, lengths,
                                 self.initiator_task_tag, self.stat_sn, self.exp_cmd_sn,
                                 self.max_cmd_sn, self.data_sn)

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        b0, _, reason, _, *rest = cls._struct.unpack_from(bhs)
        self = _new(cls, bool(b0 & 0x40), ahs, data)
        self.reason = reason
        (self.initiator_task_tag, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn,
         self.data_sn) = rest
        return self
