"""One TCP connection to a portal: login phase, then full feature phase.

Model: a ``Connection`` reads whole PDUs with ``harness.iscsi.codec.read_pdu``
(bounded by the MaxRecvDataSegmentLength it declared, so a peer cannot make it
allocate more) and writes encoded PDUs straight to the transport. During the
login phase it feeds Login Requests to a ``LoginNegotiation`` under the node's
login deadline; once the session is bound it hands every PDU to its ``Session``.

What a bad peer gets (RFC 7143 sections 7 and 11.17):

- an unknown opcode, a data digest error, a PDU a target never receives, a Login
  in full feature phase: a Reject PDU quoting the header, and the connection lives;
- a header digest error, a DataSegmentLength above the declared limit, a
  truncated header or EOF: the connection is closed (the stream cannot be trusted
  or resynchronised), and only this connection;
- a silent peer: a NOP-In ping after ``nop_in_interval_s``; no NOP-Out answer
  within ``nop_in_timeout_s`` closes the connection.

A connection never raises into the node: every failure ends in ``abort()`` and
the session decides what that means for its tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any

from harness.iscsi import codec
from harness.iscsi.codes import Opcode, RejectReason
from harness.iscsi.errors import (
    ConnectionClosed,
    DigestError,
    PduTooLarge,
    ProtocolError,
    TruncatedPdu,
    UnknownOpcode,
)
from harness.iscsi.pdu import BHS_LENGTH, NO_TAG

if TYPE_CHECKING:
    from harness.target.node import Node
    from harness.target.portal import Portal
    from harness.target.session import Session

log = logging.getLogger("splitbrain.target.connection")

LOGIN_MAX_RECV_DATA_SEGMENT_LENGTH = 8192  # RFC 7143 default until negotiated
_HIGH_WATER = 1 << 20
_ttt = itertools.count(0x10000000)


def next_target_transfer_tag() -> int:
    """A Target Transfer Tag unique on this node (never 0xffffffff)."""
    return next(_ttt) & 0x7FFFFFFF


class Connection:
    """A TCP connection and its iSCSI state."""

    def __init__(self, node: Node, portal: Portal, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.node, self.portal = node, portal
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        self.cid = 0
        self.session: Session | None = None
        self.header_digest = False
        self.data_digest = False
        self.max_recv_dsl = LOGIN_MAX_RECV_DATA_SEGMENT_LENGTH   # what we accept
        self.max_send_dsl = LOGIN_MAX_RECV_DATA_SEGMENT_LENGTH   # what the initiator accepts
        self.stat_sn = 0
        self.exp_stat_sn = 0
        self.full_feature = False
        self.closing = False
        self.close_reason = ""
        self.rejects_sent = 0
        self.last_rx_ns = time.monotonic_ns()
        self._ping_ttt: int | None = None
        self._pong = asyncio.Event()
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- output -----------------------------------------------------------------------------

    def send(self, pdu: codec.Pdu) -> None:
        """Encode and queue ``pdu`` (callers set StatSN/ExpCmdSN/MaxCmdSN first)."""
        if self.closing:
            return
        try:
            self.writer.write(codec.encode(pdu, header_digest=self.header_digest,
                                           data_digest=self.data_digest))
        except (ConnectionError, RuntimeError) as exc:
            self.abort(f"write failed: {exc}")

    def take_stat_sn(self) -> int:
        """The StatSN for a status-bearing PDU; advances it."""
        sn = self.stat_sn
        self.stat_sn = (sn + 1) & 0xFFFFFFFF
        return sn

    async def drain(self) -> None:
        transport = self.writer.transport
        if transport.get_write_buffer_size() > _HIGH_WATER:
            try:
                await self.writer.drain()
            except ConnectionError as exc:
                self.abort(f"write failed: {exc}")

    def reject(self, reason: int, bhs: bytes | None) -> None:
        """Send a Reject PDU quoting the offending header (RFC 7143 section 11.17)."""
        self.rejects_sent += 1
        session = self.session
        exp, max_ = session.window() if session is not None else (0, 0)
        self.send(codec.Reject(reason=reason, stat_sn=self.take_stat_sn(), exp_cmd_sn=exp,
                               max_cmd_sn=max_, data=(bhs or b"")[:BHS_LENGTH]))

    # -- lifecycle --------------------------------------------------------------------------

    def abort(self, reason: str) -> None:
        """Close this connection now; the session is told once."""
        if self.closing:
            return
        self.closing = True
        self.close_reason = reason
        log.info("connection %s on %s closed: %s", self.peer, self.portal.name, reason)
        with contextlib.suppress(Exception):
            self.writer.close()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def finish(self, reason: str) -> None:
        """Flush what is queued (a Logout Response, say), then close."""
        await self._flush_then_close(reason)

    async def closed(self) -> None:
        await self._done.wait()

    async def run(self) -> None:
        """Serve the connection until it ends; never raises."""
        self._task = asyncio.current_task()
        keepalive: asyncio.Task[None] | None = None
        try:
            if await self._login():
                keepalive = asyncio.create_task(self._keepalive())
                await self._full_feature()
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a bug must cost one connection, never the node
            log.exception("connection %s: internal error", self.peer)
            self.abort(f"internal error: {exc!r}")
        finally:
            if keepalive is not None:
                keepalive.cancel()
            self.abort(self.close_reason or "ended")
            if self.session is not None:
                self.session.connection_lost(self)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 1)
            self._done.set()

    async def _read(self) -> codec.Pdu:
        pdu = await codec.read_pdu(self.reader, header_digest=self.header_digest,
                                   data_digest=self.data_digest,
                                   max_data_segment_length=self.max_recv_dsl)
        self.last_rx_ns = time.monotonic_ns()
        return pdu

    async def _login(self) -> bool:
        from harness.target.login import LoginNegotiation

        negotiation = LoginNegotiation(self.node, self.portal, self)
        deadline = self.node.limits.login_timeout_s
        try:
            async with asyncio.timeout(deadline):
                while True:
                    try:
                        pdu = await self._read()
                    except UnknownOpcode:
                        self.abort("unknown opcode during login")
                        return False
                    except ProtocolError as exc:
                        self.abort(f"during login: {exc}")
                        return False
                    if pdu.opcode != Opcode.LOGIN_REQUEST:
                        # RFC 7143 section 6.1: only Login Requests before full feature phase.
                        self.abort(f"{type(pdu).__name__} before login completed")
                        return False
                    reply = negotiation.step(pdu)
                    self.send(reply)
                    await self.drain()
                    if negotiation.failed:
                        await self._flush_then_close(f"login refused: {negotiation.failure}")
                        return False
                    if negotiation.session is not None:
                        self.header_digest, self.data_digest = negotiation.digests
                        self.session = negotiation.session
                        self.full_feature = True
                        return True
        except TimeoutError:
            self.abort(f"login not completed within {deadline:g} s")
            return False

    async def _flush_then_close(self, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.drain(), 2)
        self.abort(reason)

    async def _full_feature(self) -> None:
        assert self.session is not None
        session = self.session
        while not self.closing:
            try:
                pdu = await self._read()
            except ConnectionClosed:
                self.abort("peer closed the connection")
                return
            except TruncatedPdu:
                self.abort("truncated PDU (peer dropped mid-PDU)")
                return
            except PduTooLarge as exc:
                # The data segment was not read: the stream cannot be resynchronised.
                self.reject(RejectReason.PROTOCOL_ERROR, exc.bhs)
                await self._flush_then_close(f"DataSegmentLength {exc.length} > {exc.limit}")
                return
            except DigestError as exc:
                if exc.header:
                    self.abort("header digest error")
                    return
                self.reject(RejectReason.DATA_DIGEST_ERROR, exc.bhs)
                session.data_digest_error(self, exc.bhs)
                continue
            except UnknownOpcode as exc:
                self.reject(RejectReason.COMMAND_NOT_SUPPORTED, exc.bhs)
                continue
            except ProtocolError as exc:
                if exc.bhs is None:
                    self.abort(f"unreadable PDU: {exc}")
                    return
                self.reject(RejectReason.PROTOCOL_ERROR, exc.bhs)
                continue
            if (pdu.opcode == Opcode.NOP_OUT and pdu.target_transfer_tag != NO_TAG
                    and pdu.target_transfer_tag == self._ping_ttt):
                self._ping_ttt = None
                self._pong.set()
            session.dispatch(self, pdu)
            await self.drain()

    async def _keepalive(self) -> None:
        """NOP-In pings on an idle connection; an unanswered ping closes it."""
        interval = self.node.limits.nop_in_interval_s
        timeout = self.node.limits.nop_in_timeout_s
        if interval <= 0:
            return
        while not self.closing:
            await asyncio.sleep(interval)
            idle_s = (time.monotonic_ns() - self.last_rx_ns) / 1e9
            if idle_s < interval or self.session is None or self.session.discovery:
                continue
            ttt = next_target_transfer_tag()
            self._ping_ttt = ttt
            self._pong.clear()
            exp, max_ = self.session.window()
            # An unsolicited NOP-In carries the next StatSN without advancing it.
            self.send(codec.NopIn(initiator_task_tag=NO_TAG, target_transfer_tag=ttt,
                                  stat_sn=self.stat_sn, exp_cmd_sn=exp, max_cmd_sn=max_))
            try:
                await asyncio.wait_for(self._pong.wait(), timeout)
            except TimeoutError:
                self.abort(f"no answer to NOP-In within {timeout:g} s")
                return

    def describe(self) -> dict[str, Any]:
        return {"cid": self.cid, "peer": self.peer, "portal": self.portal.name,
                "header_digest": self.header_digest, "data_digest": self.data_digest}
