"""iSCSI (or any TCP) from a remote host, carried over its SSH connection.

``SshTunnels`` is a socket factory (``harness.initiator.connection.SocketFactory``):
each call asks the host's sshd to open a TCP connection to ``address:port``
(an SSH ``direct-tcpip`` channel, what ``ssh -L`` uses) and returns one end of a
local socket pair whose other end is pumped to that channel. The harness's
initiator then logs in *from the cluster node*: its packets leave the node's own
addresses on the node's own networks, and the controller needs to reach
nothing but the node's sshd. The host's sshd must allow TCP forwarding
(``AllowTcpForwarding yes``, OpenSSH's default).

This carries the harness's own initiator, not the node's (the node's initiator
and MPIO stack are exercised by the workload agent, ``harness.remote.agent``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import paramiko


class SshTunnels:
    """Connections to ``address:port`` opened by ``driver``'s host (a ``RemoteHost``)."""

    def __init__(self, driver: Any, *, timeout: float = 10.0) -> None:
        self.driver, self.timeout = driver, timeout
        self._lock = threading.Lock()

    def __call__(self, address: str, port: int, timeout: float | None = None) -> socket.socket:
        with self._lock:
            self.driver.connect()
            transport = self.driver.connection.client.get_transport()
        try:
            channel = transport.open_channel("direct-tcpip", (address, int(port)),
                                             ("127.0.0.1", 0),
                                             timeout=timeout or self.timeout)
        except paramiko.ChannelException as exc:
            raise ConnectionRefusedError(
                exc.code, f"{self.driver.name} could not open {address}:{port} ({exc.text})"
            ) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionError(f"ssh tunnel through {self.driver.name} to {address}:{port} "
                                  f"failed: {exc}") from None
        ours, theirs = socket.socketpair()
        for pump in (self._to_channel, self._from_channel):
            threading.Thread(target=pump, args=(theirs, channel), daemon=True,
                             name=f"ssh-tunnel-{address}:{port}").start()
        return ours

    @staticmethod
    def _to_channel(local: socket.socket, channel: Any) -> None:
        try:
            while data := local.recv(65536):
                channel.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(Exception):
                channel.shutdown_write()

    @staticmethod
    def _from_channel(local: socket.socket, channel: Any) -> None:
        try:
            while data := channel.recv(65536):
                local.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(Exception):
                channel.close()
            with contextlib.suppress(OSError):
                local.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                local.close()

    def close(self) -> None:
        self.driver.close()
