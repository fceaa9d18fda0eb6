"""RemoteHost.connect through paramiko's own connect, against a closed loopback port."""

from __future__ import annotations

import socket

import pytest

from harness.remote.errors import HostUnreachable
from harness.remote.ssh import (
    RemoteHost,
    RetryPolicy,
    SshTarget,
)


def test_a_closed_loopback_port_through_paramikos_own_connect():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    host = RemoteHost(SshTarget(name="loop", address="127.0.0.1", port=port, connect_timeout=2),
                      retry=RetryPolicy(attempts=2, deadline_s=10, wait_initial_s=0.01))
    with pytest.raises(HostUnreachable, match=r"after 2 attempts \(connection refused\)"):
        host.connect()
