"""RemoteHost.connect: which failures are retried, how often, and what the user reads.

The socket factory stands in for the network, so these run without touching it.
"""

from __future__ import annotations

import socket

import paramiko
import pytest

from fixtures.settings import INVENTORIES
from harness.lab.inventory import load
from harness.remote.errors import AuthenticationFailed, HostUnreachable, MissingSecret
from harness.remote.ssh import (
    RemoteHost,
    RetryPolicy,
    SshTarget,
    classify_connect_error,
    resolve_secret,
)

TARGET = SshTarget(name="SWS-Store1", address="203.0.113.10", port=22, user="Administrator")
FAST = RetryPolicy(attempts=3, deadline_s=30, wait_initial_s=0.01, wait_max_s=0.02)


class Failing:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.calls = 0

    def __call__(self, address: str, port: int, timeout: float) -> socket.socket:
        self.calls += 1
        assert (address, port) == ("203.0.113.10", 22) and timeout <= TARGET.connect_timeout
        raise self.exc


@pytest.mark.parametrize("exc, reason", [
    (TimeoutError(), "timed out"),
    (paramiko.SSHException("Error reading SSH protocol banner"),
     "ssh handshake failed: Error reading SSH protocol banner"),
    (paramiko.ssh_exception.NoValidConnectionsError(
        {("203.0.113.10", 22): ConnectionRefusedError(111, "Connection refused")}),
     "connection refused"),
    (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
    (OSError(113, "No route to host"), "No route to host"),
])
def test_transient_failures_are_retried_then_reported_in_one_line(exc, reason):
    factory = Failing(exc)
    host = RemoteHost(TARGET, retry=FAST, sock_factory=factory)
    with pytest.raises(HostUnreachable) as err:
        host.connect()
    assert factory.calls == host.attempts == 3
    assert str(err.value) == (
        f"cannot reach SWS-Store1 at 203.0.113.10:22 over ssh after 3 attempts ({reason}): "
        "check the address and that sshd runs")


def test_the_deadline_bounds_attempts_too():
    factory = Failing(TimeoutError())
    policy = RetryPolicy(attempts=1000, deadline_s=0.3, wait_initial_s=0.05, wait_max_s=0.1)
    host = RemoteHost(TARGET, retry=policy, sock_factory=factory)
    with pytest.raises(HostUnreachable, match="timed out"):
        host.connect()
    assert 1 <= factory.calls < 1000


def test_a_name_that_does_not_resolve_is_not_retried():
    factory = Failing(socket.gaierror(-2, "Name or service not known"))
    host = RemoteHost(TARGET, retry=FAST, sock_factory=factory)
    with pytest.raises(HostUnreachable, match=r"cannot resolve 203\.0\.113\.10"):
        host.connect()
    assert factory.calls == 1


@pytest.mark.parametrize("exc, text", [
    (paramiko.AuthenticationException("Authentication failed."), "refused ssh login"),
    (paramiko.PasswordRequiredException("encrypted"), "is encrypted"),
    (paramiko.BadHostKeyException("h", paramiko.RSAKey.generate(1024),
                                  paramiko.RSAKey.generate(1024)), "host key"),
])
def test_credential_failures_are_final(exc, text):
    verdict = classify_connect_error(exc, TARGET)
    assert isinstance(verdict, AuthenticationFailed)
    assert text in str(verdict)


def test_secrets_come_only_from_the_environment(monkeypatch):
    monkeypatch.setenv("SWS_ADMIN_PASSWORD", "s3cret")
    assert resolve_secret("${SWS_ADMIN_PASSWORD}", what="password", host="h") == "s3cret"
    assert resolve_secret(None, what="password", host="h") is None
    with pytest.raises(MissingSecret, match="inline"):
        resolve_secret("s3cret", what="password", host="h")
    monkeypatch.delenv("SWS_ADMIN_PASSWORD")
    with pytest.raises(MissingSecret, match=r"export SWS_ADMIN_PASSWORD"):
        resolve_secret("${SWS_ADMIN_PASSWORD}", what="password", host="h")


def test_target_from_an_inventory_host():
    site = load(INVENTORIES / "example-site.toml")
    target = SshTarget.from_inventory(site.hosts["SWS-Store1"])
    assert (target.name, target.address, target.port, target.user) == \
        ("SWS-Store1", "192.0.2.11", 22, "Administrator")
    assert repr(target.password) == "Secret(${SWS_ADMIN_PASSWORD})"




def test_open_host_picks_the_driver_by_the_inventorys_os():
    from harness.remote import open_host
    from harness.remote.windows import WindowsHost

    site = load(INVENTORIES / "example-site.toml")
    host = open_host(site.hosts["Demo1"], connect_timeout=3.0)
    assert isinstance(host, WindowsHost)
    assert (host.target.address, host.target.connect_timeout) == ("192.0.2.21", 3.0)
    assert host.connection is None  # nothing was contacted
