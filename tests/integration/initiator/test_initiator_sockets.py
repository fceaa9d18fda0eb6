"""Where a connection comes from: ``Connection.open`` (and Session, SessionConnector) with
a socket factory and a source address, on loopback (the netns lab proves the same across
namespaces).

Each test runs a tiny TCP listener on 127.0.0.1 (a free port) that records the
peer address of every connection it accepts, so the source a connection really
used is observed at the far end, not taken from our own socket.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest

from harness.errors import SplitbrainError
from harness.initiator.connection import Connection
from harness.initiator.errors import ConnectionLost, Timeout
from harness.initiator.mpio.errors import MultipathConfigError
from harness.initiator.mpio.link import PathLost, PathSpec
from harness.initiator.mpio.session_link import SessionConnector, multipath_from_sessions
from harness.initiator.mpio.timers import MpioTimers
from harness.initiator.session import Session


class Listener:
    """A loopback listener that accepts in the event loop and records peers."""

    def __init__(self) -> None:
        self.peers: list[tuple[str, int]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.peers.append(writer.get_extra_info("peername")[:2])
            writer.close()

        self.server = await asyncio.start_server(accepted, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def wait_peer(self) -> tuple[str, int]:
        async with asyncio.timeout(5):
            while not self.peers:
                await asyncio.sleep(0.01)
        return self.peers[0]

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Factory:
    """A socket factory that remembers what it was asked and what it made."""

    def __init__(self, make: Callable[[], socket.socket] | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.made: list[socket.socket] = []
        self._make = make or (lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))

    def __call__(self, host: str, port: int) -> socket.socket:
        self.calls.append((host, port))
        sock = self._make()
        self.made.append(sock)
        return sock


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Sockets a test opens itself; closed at the end whatever happens."""
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


async def _open(port: int, **options: object) -> Connection:
    lost: list[BaseException] = []
    return await Connection.open("127.0.0.1", port, timeout=2.0, on_pdu=lambda pdu: None,
                                 on_lost=lost.append, **options)  # type: ignore[arg-type]


def test_factory_socket_is_connected_with_the_source_address_asked_for() -> None:
    async def scenario() -> None:
        listener = Listener()
        port = await listener.start()
        factory = Factory()
        try:
            conn = await _open(port, sock_factory=factory, local_addr="127.0.0.2")
            peer = await listener.wait_peer()
            sock = conn.transport.get_extra_info("socket")  # type: ignore[union-attr]
            assert factory.calls == [("127.0.0.1", port)]
            assert sock.fileno() == factory.made[0].fileno()  # the factory's socket itself
            assert peer == sock.getsockname()[:2]
            assert peer[0] == "127.0.0.2"
            conn.close()
        finally:
            listener.close()

    asyncio.run(scenario())


def test_source_address_without_a_factory() -> None:
    async def scenario() -> None:
        listener = Listener()
        port = await listener.start()
        try:
            conn = await _open(port, local_addr=("127.0.0.3", 0))
            assert (await listener.wait_peer())[0] == "127.0.0.3"
            conn.close()
        finally:
            listener.close()

    asyncio.run(scenario())


def test_an_already_connected_socket_is_used_as_it_is() -> None:
    async def scenario() -> None:
        listener = Listener()
        port = await listener.start()
        connected = socket.create_connection(("127.0.0.1", port))
        factory = Factory(lambda: connected)
        try:
            conn = await _open(port, sock_factory=factory)
            sock = conn.transport.get_extra_info("socket")  # type: ignore[union-attr]
            assert sock.getsockname() == connected.getsockname()
            assert len(await asyncio.gather(listener.wait_peer())) == 1
            assert len(listener.peers) == 1  # no second connection was made
            conn.close()
        finally:
            connected.close()
            listener.close()

    asyncio.run(scenario())


def test_refused_connect_is_connection_lost_and_closes_the_socket() -> None:
    factory = Factory()
    port = closed_port()
    with pytest.raises(ConnectionLost, match=rf"127\.0\.0\.1:{port}.*refused"):
        asyncio.run(_open(port, sock_factory=factory))
    assert factory.made[0].fileno() == -1


def test_a_silent_portal_times_out_and_closes_the_socket(sockets: list[socket.socket]) -> None:
    # a listener that never accepts, its queue full: Linux drops further SYNs (a black hole)
    full = socket.socket()
    sockets.append(full)
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    for _ in range(3):
        filler = socket.socket()
        sockets.append(filler)
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
    factory = Factory()
    lost: list[BaseException] = []
    with pytest.raises(Timeout, match="TCP connect"):
        asyncio.run(Connection.open("127.0.0.1", port, timeout=0.3, on_pdu=lambda pdu: None,
                                    on_lost=lost.append, sock_factory=factory))
    assert factory.made[0].fileno() == -1
    assert lost == []


@pytest.mark.parametrize("error", [OSError(24, "Too many open files"),
                                   SplitbrainError("namespace sb-x-Demo1 is gone")])
def test_a_factory_that_fails_is_connection_lost(error: Exception) -> None:
    def broken(host: str, port: int) -> socket.socket:
        raise error

    with pytest.raises(ConnectionLost, match="cannot make a socket for iSCSI portal"):
        asyncio.run(_open(closed_port(), sock_factory=broken))


def test_a_datagram_socket_is_refused_and_closed() -> None:
    factory = Factory(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    with pytest.raises(ConnectionLost, match="non-TCP socket"):
        asyncio.run(_open(closed_port(), sock_factory=factory))
    assert factory.made[0].fileno() == -1


def test_session_login_connects_through_its_factory() -> None:
    factory = Factory()
    port = closed_port()
    session = Session("127.0.0.1", port, "iqn.2026-11.test:t", sock_factory=factory,
                      local_addr="127.0.0.4")
    with pytest.raises(ConnectionLost, match=r"from 127\.0\.0\.4"):
        asyncio.run(session.login())
    assert factory.calls == [("127.0.0.1", port)]
    assert session.failed


def test_multipath_over_sessions_refuses_sessions_from_different_factories() -> None:
    sessions = [Session("127.0.0.1", 3260, "iqn.2026-11.test:t", sock_factory=Factory())
                for _ in range(2)]
    with pytest.raises(MultipathConfigError, match="different socket factories"):
        asyncio.run(multipath_from_sessions(sessions))


def test_session_connector_makes_sessions_with_its_factory() -> None:
    factory = Factory()
    connector = SessionConnector.for_timers(MpioTimers(login_timeout_s=1.0),
                                            sock_factory=factory)
    port = closed_port()
    with pytest.raises(PathLost, match="refused"):
        asyncio.run(connector(PathSpec("127.0.0.1", port, "iqn.2026-11.test:t")))
    assert factory.calls == [("127.0.0.1", port)]
