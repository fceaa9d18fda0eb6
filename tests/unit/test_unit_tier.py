"""The unit tier's guard refuses what belongs in tests/integration, and only that."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

from tests.support.unit_tier import UnitTierViolation


def test_starting_a_process_is_refused():
    with pytest.raises(UnitTierViolation, match="start a process"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_a_socket_peer_is_refused_but_a_free_port_probe_is_not():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))  # asking for a free port: no peer
    with pytest.raises(UnitTierViolation, match="listen"):
        probe.listen()
    with pytest.raises(UnitTierViolation, match="connect"):
        probe.connect(("127.0.0.1", 9))
    probe.close()


def test_an_asyncio_server_is_refused_and_a_socketpair_is_not():
    async def serve() -> None:
        await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)

    with pytest.raises(UnitTierViolation):
        asyncio.run(serve())
    left, right = socket.socketpair()  # in-process streams: no peer
    left.sendall(b"x")
    assert right.recv(1) == b"x"
    left.close()
    right.close()
