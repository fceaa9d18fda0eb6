"""Peers for the lab tests: a loopback echo server that records what it saw, and a lab of
stand-in storage nodes (``standin_node.py``) for tests of the lab's own mechanics."""

from __future__ import annotations

import socket
import socketserver
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.lab.inventory import Inventory, load
from harness.lab.loopback import LoopbackLab


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


STANDIN = Path(__file__).with_name("standin_node.py")


def standin_command(config: Path, ready_file: Path) -> tuple[str, ...]:
    return (sys.executable, str(STANDIN), str(config), str(ready_file))


def lab_processes(state_dir: Path) -> list[int]:
    """Pids of every process whose command line mentions the lab's state directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(state_dir) in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


@pytest.fixture
def lab_inventory() -> Inventory:
    return load(Path(__file__).parents[3] / "fixtures" / "inventories" / "lab.toml")


@pytest.fixture
def standin_lab(tmp_path: Path, lab_inventory: Inventory) -> Iterator[LoopbackLab]:
    lab = LoopbackLab(tmp_path / "lab", node_command=standin_command, ha=False)
    lab.up(lab_inventory)
    try:
        yield lab
    finally:
        lab.down()
