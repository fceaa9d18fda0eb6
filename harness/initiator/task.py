"""One SCSI command in flight on a session, and how it ended.

The model (RFC 7143 sections 3.2.2 and 11.3-11.8): a task is named by its
Initiator Task Tag and ordered by its CmdSN. Its data moves as Data-In PDUs
(placed by BufferOffset, numbered by DataSN) or, for writes, as immediate data,
unsolicited Data-Out up to FirstBurstLength and solicited Data-Out bursts
answering each R2T. It ends with a SCSI Response or a Data-In carrying the S
bit, which hold the status, the residual counts and, for CHECK CONDITION, the
sense data. ``ScsiResult`` is that ending as the caller sees it; a non-GOOD
status is data, not an exception, until ``raise_for_status`` makes it one.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

from harness.initiator.errors import (
    CheckCondition,
    ProtocolError,
    ReservationConflict,
    ScsiStatusError,
    TaskAborted,
    TaskFailedAtTarget,
)
from harness.iscsi.pdu import NO_TAG
from harness.iscsi.target_pdus import DataIn, ScsiResponse
from harness.scsi.errors import ScsiDataError
from harness.scsi.sense import SenseData
from harness.scsi.status import ScsiStatus


@dataclass(slots=True)
class ScsiResult:
    """How one SCSI command completed at the target."""

    status: int
    data: bytes = b""
    sense: SenseData | None = None
    residual_count: int = 0
    underflow: bool = False
    overflow: bool = False
    latency_ns: int = 0
    where: str = ""
    operation: str = ""

    @property
    def good(self) -> bool:
        return self.status in (ScsiStatus.GOOD, ScsiStatus.CONDITION_MET)

    def raise_for_status(self) -> ScsiResult:
        """Return self when GOOD; else raise CheckCondition, ReservationConflict, ..."""
        if self.good:
            return self
        what = f"{self.operation or 'SCSI command'} on {self.where or 'the target'}"
        if self.status == ScsiStatus.CHECK_CONDITION:
            detail = str(self.sense) if self.sense is not None else "no sense data"
            raise CheckCondition(f"{what} ended in CHECK CONDITION: {detail}", self.status,
                                 self.sense)
        if self.status == ScsiStatus.RESERVATION_CONFLICT:
            raise ReservationConflict(
                f"{what} ended in RESERVATION CONFLICT; another initiator holds a persistent "
                "reservation (register, or preempt it)", self.status)
        if self.status == ScsiStatus.TASK_ABORTED:
            raise TaskAborted(f"{what} ended with status TASK ABORTED; retry it")
        try:
            name = ScsiStatus(self.status).name.replace("_", " ")
        except ValueError:
            name = f"0x{self.status:02x}"
        raise ScsiStatusError(f"{what} ended with status {name}; retry later", self.status)


def decode_sense_segment(data: bytes, where: str) -> SenseData | None:
    """The sense data of a SCSI Response / Async Message data segment (SenseLength + sense)."""
    if len(data) < 2:
        return None
    length = struct.unpack_from(">H", data)[0]
    if length == 0:
        return None
    if length > len(data) - 2:
        raise ProtocolError(f"{where}: SenseLength {length} exceeds the {len(data) - 2} sense "
                            "bytes in the data segment; the target sent a malformed response")
    try:
        return SenseData.decode(data[2 : 2 + length])
    except (ScsiDataError, ValueError):
        return None


class ScsiTask:
    """The initiator's state of one outstanding command (internal to the session)."""

    __slots__ = ("_buffer", "_chunk", "cdb", "cmd_sn", "data_out", "deadline", "expected_in",
                 "future", "itt", "lun", "next_data_sn", "operation", "received", "seconds",
                 "started_ns")

    def __init__(self, itt: int, cmd_sn: int, lun: int, cdb: bytes, data_out: bytes,
                 expected_in: int, future: asyncio.Future[ScsiResult], started_ns: int,
                 operation: str, deadline: float, seconds: float) -> None:
        self.itt = itt
        self.cmd_sn = cmd_sn
        self.lun = lun
        self.cdb = cdb
        self.data_out = data_out
        self.expected_in = expected_in
        self.future = future
        self.started_ns = started_ns
        self.operation = operation
        self.next_data_sn = 0
        self.received = 0
        self.deadline = deadline  # event loop time
        self.seconds = seconds
        self._buffer: bytearray | None = None
        self._chunk: bytes | None = None

    def data_in(self, pdu: DataIn, where: str) -> None:
        """Place one Data-In PDU's data; raise ProtocolError if it breaks the rules."""
        if pdu.data_sn != self.next_data_sn:
            raise ProtocolError(
                f"{where}: Data-In for task 0x{self.itt:08x} has DataSN {pdu.data_sn}, expected "
                f"{self.next_data_sn}; the target lost or reordered data")
        self.next_data_sn += 1
        length = len(pdu.data)
        if not length:
            return
        offset = pdu.buffer_offset
        if offset + length > self.expected_in:
            raise ProtocolError(
                f"{where}: Data-In for task 0x{self.itt:08x} writes bytes "
                f"{offset}..{offset + length} beyond the {self.expected_in} bytes expected; "
                "the target overruns the buffer")
        if self._buffer is None and self._chunk is None and offset == 0:
            self._chunk = pdu.data  # the common single-PDU case: no copy
        else:
            if self._buffer is None:
                self._buffer = bytearray(self.expected_in)
                if self._chunk is not None:
                    self._buffer[: len(self._chunk)] = self._chunk
                    self._chunk = None
            self._buffer[offset : offset + length] = pdu.data
        self.received = max(self.received, offset + length)

    def result_from_data_in(self, pdu: DataIn, now_ns: int, where: str) -> ScsiResult:
        return self._result(pdu.status, None, pdu.residual_count, pdu.residual_underflow,
                            pdu.residual_overflow, now_ns, where)

    def result_from_response(self, pdu: ScsiResponse, now_ns: int, where: str) -> ScsiResult:
        if pdu.response != 0:
            raise TaskFailedAtTarget(
                f"{where}: {self.operation} failed at the target (iSCSI response 0x"
                f"{pdu.response:02x}, target failure); retry it or check the target")
        sense = decode_sense_segment(pdu.data, where) if pdu.data else None
        return self._result(pdu.status, sense, pdu.residual_count, pdu.residual_underflow,
                            pdu.residual_overflow, now_ns, where)

    def _result(self, status: int, sense: SenseData | None, residual: int, underflow: bool,
                overflow: bool, now_ns: int, where: str) -> ScsiResult:
        if self._chunk is not None:
            data = self._chunk
        elif self._buffer is not None:
            data = bytes(self._buffer[: self.received])
        else:
            data = b""
        if underflow and self.expected_in and residual <= self.expected_in:
            data = data[: self.expected_in - residual]
        return ScsiResult(status, data, sense, residual, underflow, overflow,
                          now_ns - self.started_ns, where, self.operation)


class CommandHandle:
    """A submitted command: await ``result()``; pass it to ``Session.abort_task``."""

    __slots__ = ("_task",)

    def __init__(self, task: ScsiTask) -> None:
        self._task = task

    @property
    def itt(self) -> int:
        return self._task.itt

    @property
    def cmd_sn(self) -> int:
        return self._task.cmd_sn

    @property
    def lun(self) -> int:
        return self._task.lun

    def done(self) -> bool:
        return self._task.future.done()

    async def result(self) -> ScsiResult:
        return await self._task.future


__all__ = ["NO_TAG", "CommandHandle", "ScsiResult", "ScsiTask",
           "decode_sense_segment"]
