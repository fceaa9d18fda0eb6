"""SshTunnels: a socket factory whose connections the remote host's sshd opens."""

from __future__ import annotations

import socket
import threading

import paramiko
import pytest

from harness.remote.tunnel import SshTunnels


class Channel:
    """A direct-tcpip channel stand-in: echoes what it receives, upper-cased."""

    def __init__(self) -> None:
        self.inbox: list[bytes] = []
        self.ready = threading.Condition()
        self.closed = False

    def sendall(self, data: bytes) -> None:
        with self.ready:
            self.inbox.append(data.upper())
            self.ready.notify_all()

    def recv(self, n: int) -> bytes:
        with self.ready:
            self.ready.wait_for(lambda: self.inbox or self.closed)
            return self.inbox.pop(0) if self.inbox else b""

    def shutdown_write(self) -> None:
        with self.ready:
            self.closed = True
            self.ready.notify_all()

    def close(self) -> None:
        self.shutdown_write()


class Driver:
    name = "Node1"

    def __init__(self, refuse: bool = False) -> None:
        self.opened: list[tuple] = []
        self.refuse = refuse
        driver = self

        class Transport:
            def open_channel(self, kind, dest, src, timeout=None):
                driver.opened.append((kind, dest))
                if driver.refuse:
                    raise paramiko.ChannelException(2, "Connect failed")
                return Channel()

        class Client:
            def get_transport(self):
                return Transport()

        class Connection:
            client = Client()

        self.connection = Connection()

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_connections_are_opened_by_the_remote_host():
    driver = Driver()
    sock = SshTunnels(driver)("198.51.100.11", 3260)
    assert driver.opened == [("direct-tcpip", ("198.51.100.11", 3260))]
    assert sock.type == socket.SOCK_STREAM
    sock.sendall(b"login")
    assert sock.recv(100) == b"LOGIN"
    sock.close()


def test_a_refused_tunnel_is_a_connection_error():
    with pytest.raises(ConnectionRefusedError, match=r"Node1 could not open 198\.51\.100\.11:3260"):
        SshTunnels(Driver(refuse=True))("198.51.100.11", 3260)
