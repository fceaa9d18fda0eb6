"""One iSCSI TCP connection: PDU framing on an asyncio protocol, with recording.

The connection turns the byte stream into whole PDUs as bytes arrive (no reader
task, no per-PDU task switch: ``data_received`` frames and decodes with
:func:`harness.iscsi.codec.decode` and hands each PDU to the session's callback
synchronously) and queues PDUs to write, flushing all PDUs queued in one event
loop iteration with a single write (fewer system calls and TCP segments when
many commands are in flight). Digests apply once the
session switches them on after login. Every way the stream can go wrong
(garbage, truncation, an oversized segment, a wrong digest, an unknown opcode, a
closed socket) reaches the session exactly once, through ``on_lost``, as a
typed exception; after that the connection is closed and ignores further bytes.

Where the connection comes from: by default the harness's own network stack
dials the portal. A ``sock_factory`` (a :data:`SocketFactory`) supplies the
socket instead, for example one created inside a lab host's network namespace,
so a cluster node's initiator connects from that node's own addresses;
``local_addr`` binds the source address (the "initiator IP" of a path). Either
way the connect has the same deadline and the same typed errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Sequence

from harness.errors import SplitbrainError
from harness.initiator.errors import ConnectionLost, Timeout
from harness.initiator.recorder import PcapRecorder, TcpStream
from harness.iscsi import codec
from harness.iscsi.errors import PduTooLarge, ProtocolError, TruncatedPdu
from harness.iscsi.pdu import BHS_LENGTH, Pdu

LOGIN_MAX_SEGMENT = 65536
"""Data segment limit while logging in (RFC 7143 allows 8192; be lenient)."""

SocketFactory = Callable[[str, int], socket.socket]
"""Makes the TCP socket of one connection to the portal ``(host, port)``.

It returns a stream socket that is either not yet connected (``Connection.open``
binds it to ``local_addr`` if given and connects it, non-blocking, within the
connect deadline) or already connected (used as it is). The socket may belong to
another network namespace: it keeps that namespace whichever thread uses it.
"""

LocalAddress = str | tuple[str, int]
"""A source address to bind before connecting: ``"10.0.0.5"`` or ``("10.0.0.5", port)``."""


class Connection(asyncio.Protocol):
    """A connected iSCSI TCP connection delivering PDUs to callbacks."""

    def __init__(self, where: str, on_pdu: Callable[[Pdu], None],
                 on_lost: Callable[[BaseException], None],
                 recorder: PcapRecorder | None = None) -> None:
        self.where = where
        self._on_pdu = on_pdu
        self._on_lost = on_lost
        self._recorder = recorder
        self._stream: TcpStream | None = None
        self.transport: asyncio.Transport | None = None
        self.header_digest = False
        self.data_digest = False
        self.max_recv_data_segment_length = LOGIN_MAX_SEGMENT
        self._buffer = bytearray()
        self._outgoing: list[bytes] = []
        self._held = False
        self._closed = False
        self._paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self.bytes_sent = 0
        self.bytes_received = 0

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, host: str, port: int, *, timeout: float,
                   on_pdu: Callable[[Pdu], None], on_lost: Callable[[BaseException], None],
                   recorder: PcapRecorder | None = None,
                   sock_factory: SocketFactory | None = None,
                   local_addr: LocalAddress | None = None) -> Connection:
        """Connect to the portal ``host:port`` within ``timeout`` seconds.

        ``sock_factory`` supplies the socket (see :data:`SocketFactory`);
        ``local_addr`` binds the source address of a socket this method connects.
        Raises :class:`Timeout` when the connect does not finish in time (a black
        hole) and :class:`ConnectionLost` when it fails (refused, unreachable, or
        the factory could not make a socket).
        """
        where = f"{host}:{port}"
        loop = asyncio.get_running_loop()

        def protocol() -> Connection:
            return cls(where, on_pdu, on_lost, recorder)

        try:
            async with asyncio.timeout(timeout):
                if sock_factory is None:
                    _, conn = await loop.create_connection(
                        protocol, host, port,
                        local_addr=_local(local_addr) if local_addr is not None else None)
                else:
                    sock = await _connect(loop, sock_factory, host, port, local_addr, where)
                    try:
                        _, conn = await loop.create_connection(protocol, sock=sock)
                    except BaseException:
                        sock.close()
                        raise
        except TimeoutError:
            raise Timeout("TCP connect", timeout, where) from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror):
                reason = os.strerror(exc.errno)  # asyncio's sock_connect says only "failed"
            source = f" from {_local(local_addr)[0]}" if local_addr is not None else ""
            raise ConnectionLost(
                f"cannot connect to iSCSI portal {where}{source}: {reason}; check the address, "
                "that the target is running and that this side is on the portal's network"
            ) from None
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # asyncio and uvloop set it already
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._recorder is not None:
            local = transport.get_extra_info("sockname")
            remote = transport.get_extra_info("peername")
            self._stream = self._recorder.stream(local[:2], remote[:2])

    # -- receiving -------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self.bytes_received += len(data)
        buf = self._buffer
        if self._held:
            buf += data
            return
        if buf:
            buf += data
            source: bytes | bytearray = buf
        else:
            source = data
        offset, end = 0, len(source)
        hd, dd = self.header_digest, self.data_digest
        try:
            while end - offset >= BHS_LENGTH:
                data_length = int.from_bytes(source[offset + 5 : offset + 8], "big")
                if data_length > self.max_recv_data_segment_length:
                    raise PduTooLarge(data_length, self.max_recv_data_segment_length,
                                      bhs=bytes(source[offset : offset + BHS_LENGTH]))
                total = codec.pdu_length(source[offset : offset + 8] if offset else source,
                                         header_digest=hd, data_digest=dd)
                if end - offset < total:
                    break
                raw = source[offset : offset + total] if (offset or total != end) else source
                if not isinstance(raw, bytes):
                    raw = bytes(raw)
                offset += total
                pdu = codec.decode(raw, header_digest=hd, data_digest=dd)
                if self._stream is not None:
                    self._stream.received(raw, pdu)
                self._on_pdu(pdu)
                if self._closed:
                    return
                if self._held:
                    break
        except ProtocolError as exc:
            self._lose(exc)
            return
        except Exception as exc:  # a bug in a handler must still end the session cleanly
            self._lose(ProtocolError(
                f"initiator failed handling a PDU from {self.where}: "
                f"{type(exc).__name__}: {exc}; this is a bug, please report it"))
            return
        if source is buf:
            del buf[:offset]
        elif offset < end:
            buf += source[offset:]

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        if self._closed:
            return
        if self._buffer:
            self._lose(TruncatedPdu(
                f"iSCSI connection to {self.where} ended {len(self._buffer)} bytes into a PDU; "
                "the target dropped the connection mid-PDU", bhs=bytes(self._buffer[:48])))
        else:
            reason = f": {exc}" if exc else ""
            self._lose(ConnectionLost(
                f"iSCSI connection to {self.where} was closed by the target{reason}; "
                "log in again"))

    def hold(self) -> None:
        """Stop decoding after the current PDU (the login ended: the session must switch
        digests and limits before the PDUs that follow are decoded)."""
        self._held = True

    def release(self) -> None:
        """Decode again, starting with whatever arrived while held."""
        self._held = False
        if self._buffer and not self._closed:
            self.data_received(b"")

    # -- sending ---------------------------------------------------------------------------

    def send(self, pdu: Pdu) -> None:
        """Encode and write one PDU (raises ConnectionLost once the connection is gone)."""
        if self._closed or self.transport is None:
            raise ConnectionLost(f"iSCSI connection to {self.where} is closed; log in again")
        raw = codec.encode(pdu, header_digest=self.header_digest, data_digest=self.data_digest)
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(raw)
        self.bytes_sent += len(raw)
        if self._stream is not None:
            self._stream.sent(raw, pdu)

    def _flush(self) -> None:
        """Write every PDU queued in this loop iteration with one system call."""
        outgoing, self._outgoing = self._outgoing, []
        if self._closed or self.transport is None or not outgoing:
            return
        self.transport.write(outgoing[0] if len(outgoing) == 1 else b"".join(outgoing))

    def send_many(self, pdus: Sequence[Pdu]) -> None:
        for pdu in pdus:
            self.send(pdu)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        if not self._paused or self._closed:
            return
        self._drain_waiter = asyncio.get_running_loop().create_future()
        await self._drain_waiter

    # -- closing ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def _lose(self, exc: BaseException) -> None:
        if self._closed:
            return
        self.close()
        self._on_lost(exc)

    def close(self) -> None:
        """Close now (abort, no FIN handshake wait); no callback is made."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        if self._stream is not None:
            self._stream.close()
        if self.transport is not None:
            self.transport.abort()


def _local(local_addr: LocalAddress) -> tuple[str, int]:
    return (local_addr, 0) if isinstance(local_addr, str) else local_addr


def _is_connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


async def _connect(loop: asyncio.AbstractEventLoop, sock_factory: SocketFactory, host: str,
                   port: int, local_addr: LocalAddress | None, where: str) -> socket.socket:
    """The factory's socket for ``host:port``, connected without blocking the loop.

    The socket is closed if anything goes wrong, including the deadline passing
    (cancellation) while the connect is in progress.
    """
    try:
        sock = sock_factory(host, port)
    except (SplitbrainError, OSError) as exc:
        raise ConnectionLost(
            f"cannot make a socket for iSCSI portal {where}: {exc}; check the socket factory "
            "(for a lab host: that its namespace still exists)"
        ) from None
    try:
        if sock.type != socket.SOCK_STREAM:
            raise ConnectionLost(
                f"the socket factory for iSCSI portal {where} made a non-TCP socket "
                f"({sock.type!r}); iSCSI needs a stream socket"
            )
        sock.setblocking(False)
        if not _is_connected(sock):
            if local_addr is not None:
                sock.bind(_local(local_addr))
            infos = await loop.getaddrinfo(host, port, family=sock.family,
                                           type=socket.SOCK_STREAM)
            if not infos:  # pragma: no cover - getaddrinfo raises rather than answer nothing
                raise OSError(f"no {sock.family.name} address for {host}")
            await loop.sock_connect(sock, infos[0][4])
    except BaseException:
        sock.close()
        raise
    return sock
