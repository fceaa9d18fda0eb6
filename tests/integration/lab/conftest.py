"""Peers for the fault proxy's tests: a loopback echo server that records what it saw."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class EchoLog:
    accepted: int = 0
    resets: int = 0
    eofs: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        log: EchoLog = self.server.log  # type: ignore[attr-defined]
        with log.lock:
            log.accepted += 1
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
            with log.lock:
                log.eofs += 1
        except ConnectionResetError:
            with log.lock:
                log.resets += 1


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.log = EchoLog()

    @property
    def port(self) -> int:
        return self.server_address[1]


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
