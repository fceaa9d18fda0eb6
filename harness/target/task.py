"""One SCSI command on the target side: its data-out phase and its answer.

Model: a ``CommandTask`` is created from a SCSI Command PDU. A write collects
its data-out from three sources (RFC 7143 section 4.2.5): immediate data in the
command PDU, unsolicited Data-Out PDUs (when InitialR2T=No, up to
FirstBurstLength) and solicited Data-Out answering the target's R2Ts (each R2T a
burst of at most MaxBurstLength; at most MaxOutstandingR2T open at once). Data
is kept as the fragments that arrived, so memory follows what the initiator
actually sent, never the length it announced; the fragments are joined once,
when the last byte is in, and the complete buffer goes to the logical unit.

The answer to a read is a run of Data-In PDUs no longer than the initiator's
MaxRecvDataSegmentLength, the last one carrying GOOD status (phase collapse);
anything else ends with a SCSI Response carrying status, sense and residuals.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from harness.iscsi import codec
from harness.iscsi.pdu import NO_TAG

if TYPE_CHECKING:
    from harness.target.connection import Connection
    from harness.target.session import Session


_ttt = itertools.count(0x10000000)


def next_target_transfer_tag() -> int:
    """A Target Transfer Tag unique on this node (never 0xffffffff)."""
    return next(_ttt) & 0x7FFFFFFF


class DataOutError(Exception):
    """A Data-Out that breaks the transfer rules; answered with a Reject."""

    def __init__(self, reason: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DataSequenceError(Exception):
    """Data-Out PDUs out of DataSN order: the command fails with a data phase error."""


class R2tBurst:
    __slots__ = ("data_sn", "length", "offset", "received", "ttt")

    def __init__(self, ttt: int, offset: int, length: int) -> None:
        self.ttt, self.offset, self.length, self.received = ttt, offset, length, 0
        self.data_sn = 0


class CommandTask:
    """A SCSI command from arrival to its last response PDU."""

    __slots__ = ("aborted", "budgeted", "cmd", "cmd_sn", "conn", "data_sn", "edtl", "fragments",
                 "itt", "lun", "lun_field", "next_r2t_offset", "r2t_sn", "r2ts", "received",
                 "running", "session", "unsolicited_data_sn", "unsolicited_end",
                 "unsolicited_received", "write", "write_length")

    def __init__(self, session: Session, conn: Connection, cmd: codec.ScsiCommand) -> None:
        self.session, self.conn, self.cmd = session, conn, cmd
        self.itt = cmd.initiator_task_tag
        self.cmd_sn = cmd.cmd_sn
        self.lun_field = cmd.lun
        self.lun = codec.lun_from_wire(cmd.lun)
        self.edtl = cmd.expected_data_transfer_length
        self.write = cmd.write and self.edtl > 0
        self.fragments: list[tuple[int, bytes]] = []
        self.received = 0
        self.unsolicited_received = 0
        self.unsolicited_data_sn = 0
        self.unsolicited_end = 0
        self.write_length: int | None = None   # what the CDB asks to write (for residuals)
        self.next_r2t_offset = 0
        self.r2t_sn = 0
        self.data_sn = 0
        self.r2ts: dict[int, R2tBurst] = {}
        self.aborted = False
        self.budgeted = False   # counted in the session's pending write bytes
        self.running = False

    # -- data-out ---------------------------------------------------------------------------

    def begin(self) -> None:
        """Take the immediate data and open the first R2Ts (write commands only)."""
        if not self.write:
            return
        p = self.session.params
        immediate = self.cmd.data
        if immediate:
            immediate = immediate[: min(self.edtl, p.first_burst_length)]
            self.fragments.append((0, immediate))
            self.received = self.unsolicited_received = len(immediate)
        if p.initial_r2t:
            self.unsolicited_end = len(immediate)
        else:
            self.unsolicited_end = min(p.first_burst_length, self.edtl)
            # F bit on the command: no unsolicited Data-Out follows the immediate data.
            if self.cmd.final:
                self.unsolicited_end = len(immediate)
        self.next_r2t_offset = self.unsolicited_end
        self.open_r2ts()

    @property
    def complete(self) -> bool:
        return not self.write or self.received >= self.edtl

    def open_r2ts(self) -> None:
        """Send R2Ts until MaxOutstandingR2T are open or the whole range is asked for."""
        p = self.session.params
        while (self.next_r2t_offset < self.edtl and len(self.r2ts) < p.max_outstanding_r2t
               and not self.aborted):

            length = min(p.max_burst_length, self.edtl - self.next_r2t_offset)
            burst = R2tBurst(next_target_transfer_tag(), self.next_r2t_offset, length)
            self.r2ts[burst.ttt] = burst
            exp, max_ = self.session.window()
            self.conn.send(codec.R2T(lun=self.lun_field, initiator_task_tag=self.itt,
                                     target_transfer_tag=burst.ttt, stat_sn=self.conn.stat_sn,
                                     exp_cmd_sn=exp, max_cmd_sn=max_, r2t_sn=self.r2t_sn,
                                     buffer_offset=burst.offset,
                                     desired_data_transfer_length=length))
            self.r2t_sn += 1
            self.next_r2t_offset += length

    def data_out(self, pdu: codec.DataOut) -> None:
        """Place one Data-Out PDU; raises DataOutError when it breaks the rules."""
        from harness.iscsi.codes import RejectReason

        data = pdu.data
        offset = pdu.buffer_offset
        end = offset + len(data)
        if end > self.edtl:
            raise DataOutError(RejectReason.PROTOCOL_ERROR,
                               f"Data-Out past the expected length ({end} > {self.edtl})")
        if pdu.target_transfer_tag == NO_TAG:
            if end > self.unsolicited_end:
                raise DataOutError(RejectReason.PROTOCOL_ERROR,
                                   "unsolicited Data-Out beyond FirstBurstLength or InitialR2T")
            if pdu.data_sn != self.unsolicited_data_sn:
                raise DataSequenceError(f"unsolicited DataSN {pdu.data_sn}, expected "
                                        f"{self.unsolicited_data_sn}")
            self.unsolicited_data_sn += 1
            self.unsolicited_received += len(data)
        else:
            burst = self.r2ts.get(pdu.target_transfer_tag)
            if burst is None:
                raise DataOutError(RejectReason.INVALID_PDU_FIELD,
                                   f"Data-Out for unknown TTT 0x{pdu.target_transfer_tag:08x}")
            if offset < burst.offset or end > burst.offset + burst.length:
                raise DataOutError(RejectReason.PROTOCOL_ERROR,
                                   "Data-Out outside the burst its R2T asked for")
            if pdu.data_sn != burst.data_sn:
                raise DataSequenceError(f"DataSN {pdu.data_sn} in the burst of R2T "
                                        f"0x{burst.ttt:08x}, expected {burst.data_sn}")
            burst.data_sn += 1
            burst.received += len(data)
            if burst.received >= burst.length or pdu.final:
                del self.r2ts[burst.ttt]
        if data:
            self.fragments.append((offset, data))
            self.received += len(data)
        if not self.complete:
            self.open_r2ts()

    def data_buffer(self) -> bytes | bytearray:
        """The complete data-out, joined once."""
        if not self.write:
            return b""
        frags = self.fragments
        if len(frags) == 1 and frags[0][0] == 0 and len(frags[0][1]) == self.edtl:
            return frags[0][1]
        buf = bytearray(self.edtl)
        view = memoryview(buf)
        for offset, data in frags:
            view[offset : offset + len(data)] = data
        self.fragments = []
        return buf

    # -- answer -----------------------------------------------------------------------------

    def respond(self, status: int, data_in: bytes | bytearray | memoryview,
                sense: bytes) -> None:
        """Send Data-In (if any) and the status, with residuals against the EDTL."""
        conn, session = self.conn, self.session
        edtl = self.edtl
        n = len(data_in)
        overflow = underflow = False
        residual = 0
        if self.cmd.read:
            if n > edtl:
                overflow, residual, n = True, n - edtl, edtl
            elif n < edtl:
                underflow, residual = True, edtl - n
        elif self.cmd.write and self.write_length is not None:
            # SCSI residual of a write: what the CDB asks for against what was expected.
            if self.write_length > edtl:
                overflow, residual = True, self.write_length - edtl
            elif self.write_length < edtl:
                underflow, residual = True, edtl - self.write_length
        collapse = status == 0 and not sense and n > 0
        if n:
            chunk = conn.max_send_dsl
            burst = session.params.max_burst_length
            if n <= chunk and n <= burst:
                # One Data-In carries everything (the common case): no slicing, no copy.
                data = data_in if len(data_in) == n and isinstance(data_in, bytes) \
                    else bytes(memoryview(data_in)[:n])
                exp, max_ = session.window()
                conn.send(codec.DataIn(
                    final=True, status_present=collapse, status=status if collapse else 0,
                    residual_overflow=overflow and collapse,
                    residual_underflow=underflow and collapse,
                    residual_count=residual if collapse else 0, lun=self.lun_field,
                    initiator_task_tag=self.itt, data_sn=self.data_sn,
                    stat_sn=conn.take_stat_sn() if collapse else 0, exp_cmd_sn=exp,
                    max_cmd_sn=max_, data=data))
                self.data_sn += 1
                if collapse:
                    return
            else:
                self._send_data_in(data_in, n, chunk, burst, status if collapse else None,
                                   (residual, overflow, underflow))
                if collapse:
                    return
        data = (len(sense).to_bytes(2, "big") + sense) if sense else b""
        exp, max_ = session.window()
        conn.send(codec.ScsiResponse(status=status, initiator_task_tag=self.itt,
                                     stat_sn=conn.take_stat_sn(), exp_cmd_sn=exp,
                                     max_cmd_sn=max_, exp_data_sn=self.data_sn,
                                     residual_overflow=overflow, residual_underflow=underflow,
                                     residual_count=residual, data=data))

    def _send_data_in(self, data_in: bytes | bytearray | memoryview, n: int, chunk: int,
                      burst: int, status: int | None,
                      residual: tuple[int, bool, bool]) -> None:
        """Data-In PDUs of at most ``chunk`` bytes, F bit at each MaxBurstLength sequence end;
        the last carries ``status`` (phase collapse) unless it is None."""
        conn, session = self.conn, self.session
        view = memoryview(data_in)[:n]
        offset = 0
        while offset < n:
            size = min(chunk, n - offset, burst - offset % burst)
            last = offset + size >= n
            collapse = last and status is not None
            exp, max_ = session.window()
            conn.send(codec.DataIn(
                final=last or (offset + size) % burst == 0, status_present=collapse,
                status=status if collapse else 0,  # type: ignore[arg-type]
                residual_count=residual[0] if collapse else 0,
                residual_overflow=residual[1] and collapse,
                residual_underflow=residual[2] and collapse, lun=self.lun_field,
                initiator_task_tag=self.itt, data_sn=self.data_sn, buffer_offset=offset,
                stat_sn=conn.take_stat_sn() if collapse else 0, exp_cmd_sn=exp,
                max_cmd_sn=max_, data=bytes(view[offset : offset + size])))
            self.data_sn += 1
            offset += size
