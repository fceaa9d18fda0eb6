"""One TCP connection to a portal: login phase, then full feature phase.

Model: a ``Connection`` is an asyncio ``Protocol``. Bytes from the socket go into
one buffer; every whole PDU in it is cut out (``harness.iscsi.codec``:
``pdu_length`` then ``decode``) and handled synchronously, so a burst of
pipelined commands costs no coroutine switch per PDU. The DataSegmentLength of a
header is checked against the MaxRecvDataSegmentLength this side declared
*before* the segment is waited for, so a peer cannot make the node buffer more
than one legal PDU plus one socket read. During the login phase PDUs go to a
``LoginNegotiation`` under the node's login deadline; once the session is bound
they go to its ``Session``. Outgoing PDUs queued in one turn of the event loop
leave in one ``send``; when the socket's send buffer fills up the connection
stops reading (``pause_writing``), which bounds memory per connection.

What a bad peer gets (RFC 7143 sections 7 and 11.17):

- an unknown opcode, a data digest error, a PDU a target never receives, a Login
  in full feature phase: a Reject PDU quoting the header, and the connection lives;
- a header digest error, a DataSegmentLength above the declared limit (after a
  Reject), a PDU cut short by the end of the stream: the connection is closed
  (the stream cannot be trusted or resynchronised), and only this connection;
- a silent peer: a NOP-In ping after ``nop_in_interval_s`` of silence; no NOP-Out
  answer within ``nop_in_timeout_s`` closes the connection.

A connection never raises into the node: every failure ends in ``abort()`` and
the session decides what that means for its tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

from harness.iscsi import codec
from harness.iscsi.codes import AsyncEvent, Opcode, RejectReason
from harness.iscsi.errors import DigestError, PduTooLarge, ProtocolError, UnknownOpcode
from harness.iscsi.pdu import BHS_LENGTH, NO_TAG
from harness.target.task import next_target_transfer_tag

if TYPE_CHECKING:
    from harness.target.login import LoginNegotiation
    from harness.target.node import Node
    from harness.target.portal import Portal
    from harness.target.session import Session

log = logging.getLogger("splitbrain.target.connection")

LOGIN_MAX_RECV_DATA_SEGMENT_LENGTH = 8192  # RFC 7143 default until negotiated
_LENGTHS = struct.Struct(">I")
OUTPUT_HIGH_WATER = 1 << 20   # answers queued but not yet handed to the socket
class Connection(asyncio.Protocol):
    """A TCP connection and its iSCSI state."""

    def __init__(self, node: Node, portal: Portal) -> None:
        self.node, self.portal = node, portal
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.cid = 0
        self.session: Session | None = None
        self.header_digest = False
        self.data_digest = False
        self.max_recv_dsl = LOGIN_MAX_RECV_DATA_SEGMENT_LENGTH   # what we accept
        self.max_send_dsl = LOGIN_MAX_RECV_DATA_SEGMENT_LENGTH   # what the initiator accepts
        self.stat_sn = 0
        self.full_feature = False
        self.closing = False
        self.close_reason = ""
        self.rejects_sent = 0
        self.last_rx_ns = time.monotonic_ns()
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush_scheduled = False
        self._input_paused = False    # PDUs held back until the answers drain
        self._writing_paused = False  # the transport's send buffer is full
        self._negotiation: LoginNegotiation | None = None
        self._timer: asyncio.TimerHandle | None = None   # login deadline, then keepalive
        self._ping_ttt: int | None = None
        self._done = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        if not self.node.admit_connection():
            self.closing = True
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.node.connections.add(self)
        from harness.target.login import LoginNegotiation

        self._negotiation = LoginNegotiation(self.node, self.portal, self)
        deadline = self.node.limits.login_timeout_s
        self._timer = self._loop.call_later(
            deadline, self.abort, f"login not completed within {deadline:g} s")

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_rx_ns = time.monotonic_ns()
        if self._buf:
            self._buf += data
            self._process(self._buf)
        else:
            # Usually ``data`` holds whole PDUs: cut them straight from it (one copy
            # each); only what is left over is kept for the next read.
            self._process(data)

    def _process(self, src: bytes | bytearray) -> None:
        """Handle every whole PDU in ``src`` until the answers waiting to be sent reach
        the high-water mark; what is not handled stays buffered (and reading pauses)."""
        size = len(src)
        offset = 0
        try:
            while not self.closing and size - offset >= BHS_LENGTH:
                if self._out_bytes > OUTPUT_HIGH_WATER:
                    self._input_paused = True   # resume_writing() picks up from here
                    if self.transport is not None:
                        self.transport.pause_reading()
                    break
                dsl = _LENGTHS.unpack_from(src, offset + 4)[0] & 0xFFFFFF
                if dsl > self.max_recv_dsl:
                    bhs = bytes(src[offset : offset + BHS_LENGTH])
                    self._too_large(PduTooLarge(dsl, self.max_recv_dsl, bhs=bhs))
                    return
                total = codec.pdu_length(src[offset : offset + 8],
                                         header_digest=self.header_digest,
                                         data_digest=self.data_digest)
                if size - offset < total:
                    break
                raw = src[offset : offset + total]
                offset += total
                self._received(raw if type(raw) is bytes else bytes(raw))
        except Exception as exc:  # a bug must cost one connection, never the node
            log.exception("connection %s: internal error", self.peer)
            self.abort(f"internal error: {exc!r}")
        finally:
            if src is self._buf:
                if offset:
                    del self._buf[:offset]
            elif offset < size and not self.closing:
                self._buf = bytearray(src[offset:])

    def eof_received(self) -> bool:
        self.abort("truncated PDU (peer closed mid-PDU)" if self._buf
                   else "peer closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.closing = True
            self.close_reason = f"connection lost: {exc}" if exc else "peer closed"
        if self._timer is not None:
            self._timer.cancel()
        self._out.clear()
        self._buf = bytearray()
        self.node.connections.discard(self)
        if self.session is not None:
            self.session.connection_lost(self)
        self._done.set()

    def pause_writing(self) -> None:
        """The peer does not read: stop reading its commands until it does."""
        self._writing_paused = True
        if self.transport is not None and not self.closing:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._continue_input()

    def _continue_input(self) -> None:
        """The answers drained: handle what was held back, then read again."""
        if self.closing or self.transport is None or self._writing_paused:
            return
        if self._out_bytes > OUTPUT_HIGH_WATER:
            return
        self._input_paused = False
        if self._buf:
            self._process(self._buf)
        if not self._input_paused and not self.closing:
            self.transport.resume_reading()

    # -- input ------------------------------------------------------------------------------

    def _received(self, raw: bytes) -> None:
        try:
            pdu = codec.decode(raw, header_digest=self.header_digest,
                               data_digest=self.data_digest)
        except DigestError as exc:
            if exc.header or not self.full_feature:
                self.abort("header digest error" if exc.header else "digest error in login")
                return
            self.reject(RejectReason.DATA_DIGEST_ERROR, exc.bhs)
            return
        except UnknownOpcode as exc:
            if not self.full_feature:
                self.abort("unknown opcode during login")
                return
            self.reject(RejectReason.COMMAND_NOT_SUPPORTED, exc.bhs)
            return
        except ProtocolError as exc:
            if not self.full_feature:
                self.abort(f"during login: {exc}")
                return
            self.reject(RejectReason.PROTOCOL_ERROR, exc.bhs or raw[:BHS_LENGTH])
            return
        if self.full_feature:
            assert self.session is not None
            if (pdu.opcode == Opcode.NOP_OUT and self._ping_ttt is not None
                    and pdu.target_transfer_tag == self._ping_ttt):
                self._ping_answered()
            self.session.dispatch(self, pdu)
        else:
            self._login(pdu)

    def _too_large(self, exc: PduTooLarge) -> None:
        """The segment was not read: the stream cannot be resynchronised."""
        if self.full_feature:
            self.reject(RejectReason.PROTOCOL_ERROR, exc.bhs)
        self.finish(f"DataSegmentLength {exc.length} > {exc.limit}")

    def _login(self, pdu: codec.Pdu) -> None:
        if pdu.opcode != Opcode.LOGIN_REQUEST:
            # RFC 7143 section 6.1: only Login Requests before full feature phase.
            self.abort(f"{type(pdu).__name__} before login completed")
            return
        negotiation = self._negotiation
        assert negotiation is not None
        self.send(negotiation.step(pdu))  # type: ignore[arg-type]
        if negotiation.failed:
            self.finish(f"login refused: {negotiation.failure}")
        elif negotiation.session is not None:
            self.flush()   # the final Login Response goes out without digests
            self.header_digest, self.data_digest = negotiation.digests
            self.session = negotiation.session
            self.full_feature = True
            self._negotiation = None
            if self._timer is not None:
                self._timer.cancel()
            self._schedule_keepalive()

    # -- output -----------------------------------------------------------------------------

    def send(self, pdu: codec.Pdu) -> None:
        """Encode and queue ``pdu`` (callers set StatSN/ExpCmdSN/MaxCmdSN first).

        PDUs queued in one turn of the event loop leave in one ``send`` at the end of
        the turn: under load many responses share a system call.
        """
        if self.closing:
            return
        wire = codec.encode(pdu, header_digest=self.header_digest, data_digest=self.data_digest)
        self._out.append(wire)
        self._out_bytes += len(wire)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand every queued PDU to the transport now."""
        self._flush_scheduled = False
        if not self._out:
            return
        out, self._out = self._out, []
        self._out_bytes = 0
        if self.closing or self.transport is None:
            return
        try:
            # One buffer, one send(2): uvloop's writelines would try a send per PDU.
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        except (ConnectionError, RuntimeError) as exc:
            self.abort(f"write failed: {exc}")
            return
        if self._input_paused:
            self._continue_input()

    def take_stat_sn(self) -> int:
        """The StatSN for a status-bearing PDU; advances it."""
        sn = self.stat_sn
        self.stat_sn = (sn + 1) & 0xFFFFFFFF
        return sn

    def reject(self, reason: int, bhs: bytes | None) -> None:
        """Send a Reject PDU quoting the offending header (RFC 7143 section 11.17)."""
        self.rejects_sent += 1
        session = self.session
        exp, max_ = session.window() if session is not None else (0, 0)
        self.send(codec.Reject(reason=reason, stat_sn=self.take_stat_sn(), exp_cmd_sn=exp,
                               max_cmd_sn=max_, data=(bhs or b"")[:BHS_LENGTH]))

    # -- lifecycle --------------------------------------------------------------------------

    def abort(self, reason: str) -> None:
        """Close this connection now, dropping anything not yet sent."""
        if self.closing:
            return
        self.closing = True
        self.close_reason = reason
        log.info("connection %s on %s closed: %s", self.peer, self.portal.name, reason)
        if self.transport is not None:
            self.transport.abort()

    def finish(self, reason: str) -> None:
        """Send what is queued (a Reject, a Logout Response), then close."""
        if self.closing:
            return
        self.flush()
        self.closing = True
        self.close_reason = reason
        log.info("connection %s on %s closed: %s", self.peer, self.portal.name, reason)
        if self.transport is not None:
            self.transport.close()   # closes once the send buffer is flushed

    def announce_drop(self, *, time2wait: int, time2retain: int) -> None:
        """Asynchronous Message, AsyncEvent 3 (all connections of the session will be
        dropped), before a graceful stop; nothing for a connection still logging in."""
        if self.closing or not self.full_feature or self.session is None:
            return
        exp, max_ = self.session.window()
        self.send(codec.AsyncMessage(lun=0, stat_sn=self.take_stat_sn(), exp_cmd_sn=exp,
                                     max_cmd_sn=max_,
                                     async_event=AsyncEvent.SESSION_WILL_BE_DROPPED,
                                     parameter2=time2wait, parameter3=time2retain))

    async def closed(self) -> None:
        await self._done.wait()

    # -- keepalive --------------------------------------------------------------------------

    def _schedule_keepalive(self) -> None:
        interval = self.node.limits.nop_in_interval_s
        if interval > 0 and not self.closing:
            self._timer = self._loop.call_later(interval, self._keepalive)

    def _keepalive(self) -> None:
        """NOP-In ping on an idle connection; an unanswered ping closes it."""
        if self.closing or self.session is None:
            return
        interval = self.node.limits.nop_in_interval_s
        idle_s = (time.monotonic_ns() - self.last_rx_ns) / 1e9
        if idle_s < interval or self.session.discovery:
            self._timer = self._loop.call_later(max(interval - idle_s, 0.05), self._keepalive)
            return
        ttt = next_target_transfer_tag()
        self._ping_ttt = ttt
        exp, max_ = self.session.window()
        # An unsolicited NOP-In carries the next StatSN without advancing it.
        self.send(codec.NopIn(initiator_task_tag=NO_TAG, target_transfer_tag=ttt,
                              stat_sn=self.stat_sn, exp_cmd_sn=exp, max_cmd_sn=max_))
        timeout = self.node.limits.nop_in_timeout_s
        self._timer = self._loop.call_later(
            timeout, self.abort, f"no answer to NOP-In within {timeout:g} s")

    def _ping_answered(self) -> None:
        self._ping_ttt = None
        if self._timer is not None:
            self._timer.cancel()
        self._schedule_keepalive()

    def describe(self) -> dict[str, Any]:
        return {"cid": self.cid, "peer": self.peer, "portal": self.portal.name,
                "header_digest": self.header_digest, "data_digest": self.data_digest}
