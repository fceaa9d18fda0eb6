"""``RemoteHost``: one real host driven over SSH with fabric.

The model: an ``SshTarget`` says where a host is and how to log in (user, key
file, and a password or key passphrase only as a ``${ENV}`` reference, resolved
at connect time). ``RemoteHost.connect`` opens the connection under a
``RetryPolicy``: transient failures (refused, timed out, no route, a banner that
never came) are retried by tenacity within a bounded number of attempts *and* an
explicit deadline, then reported as one ``HostUnreachable`` line. Failures that
another attempt cannot fix (wrong key or password, a changed host key, a name
that does not resolve) are raised at once as ``AuthenticationFailed`` or
``HostUnreachable``.

Every command goes out through ``RemoteHost.execute`` as one command line and
comes back as a ``CommandResult`` (exit status, stdout, stderr, duration in ns).
Subclasses build those lines safely: ``LinuxHost`` from argument vectors with
``shlex.join``; ``WindowsHost`` as ``powershell.exe -EncodedCommand``.
"""

from __future__ import annotations

import io
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut as InvokeTimedOut
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from harness.remote.errors import (
    AuthenticationFailed,
    CommandTimedOut,
    HostUnreachable,
    MissingSecret,
    RemoteError,
)
from harness.remote.result import CommandResult

SocketFactory = Callable[[str, int, float], socket.socket]
"""Opens the TCP connection for SSH (address, port, timeout): a jump host, or a
socket inside a lab network namespace. ``None`` lets paramiko connect directly."""

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve_secret(ref: object, *, what: str, host: str) -> str | None:
    """The value of a ``${ENV}`` reference (or of an inventory ``Secret``), or None.

    A plain string that is not exactly ``${NAME}`` is refused: secrets are never
    written inline.
    """
    if ref is None:
        return None
    if hasattr(ref, "resolve"):
        return str(ref.resolve())
    match = _ENV_REF.fullmatch(str(ref))
    if not match:
        raise MissingSecret(
            f"the ssh {what} of {host} is written inline: give it as a ${{ENV}} reference "
            f'(e.g. "${{SPLITBRAIN_{what.upper()}}}") and export that variable'
        )
    value = os.environ.get(match.group(1))
    if value is None:
        raise MissingSecret(
            f"the ssh {what} of {host} comes from ${{{match.group(1)}}}, which is not set: "
            f"export {match.group(1)}=... before running"
        )
    return value


@dataclass(frozen=True)
class SshTarget:
    """Where a host is and how to log in; secrets only as ``${ENV}`` references."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    key_filename: str | None = None
    password: object | None = None
    passphrase: object | None = None
    connect_timeout: float = 10.0
    known_hosts: str | None = None
    sudo: bool = False
    #: with no ``known_hosts``: False trusts an unknown key on first use (fabric's way),
    #: True checks ``~/.ssh/known_hosts`` and refuses a host missing from it
    strict_host_keys: bool = False

    @property
    def where(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.name} at {host}:{self.port}"

    @classmethod
    def from_inventory(cls, host: Any, **overrides: Any) -> SshTarget:
        """Build from an inventory ``Host`` (``harness.lab.inventory``) with an ``access``."""
        access = host.access
        if access is None:
            raise HostUnreachable(
                f"inventory host {host.name} has no [hosts.{host.name}.access] table: add "
                "user (and key or password) so the harness can reach it over ssh"
            )
        fields: dict[str, Any] = dict(
            name=host.name, address=str(access.host), port=int(access.port),
            user=access.user, key_filename=access.key_path(), password=access.password,
            passphrase=access.passphrase, sudo=bool(getattr(access, "sudo", False)),
            known_hosts=getattr(access, "known_hosts", None),
            strict_host_keys=not getattr(access, "trust_on_first_use", False),
        )
        fields.update(overrides)
        return cls(**fields)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try to connect: at most ``attempts``, never past ``deadline_s``."""

    attempts: int = 3
    deadline_s: float = 60.0
    wait_initial_s: float = 0.5
    wait_max_s: float = 5.0


class _Transient(Exception):
    """A connection failure another attempt may fix; carries the short reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def classify_connect_error(exc: BaseException, target: SshTarget) -> Exception:
    """Map what paramiko/socket raised to a ``_Transient`` or a final typed error."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return AuthenticationFailed(
            f"the host key of {target.where} does not match "
            f"{target.known_hosts or '~/.ssh/known_hosts'}: if the host "
            "was reinstalled, update that known_hosts entry; otherwise stop, this may be an attack"
        )
    if isinstance(exc, paramiko.PasswordRequiredException):
        return AuthenticationFailed(
            f"the ssh key {target.key_filename} for {target.where} is encrypted: set its "
            "passphrase as a ${ENV} reference in the host's access table"
        )
    if isinstance(exc, paramiko.AuthenticationException):
        how = f"key {target.key_filename}" if target.key_filename else "the given credentials"
        return AuthenticationFailed(
            f"{target.where} refused ssh login as {target.user} with {how} ({exc}): check that "
            "the public key is in that user's authorized_keys, or the password variable"
        )
    if isinstance(exc, socket.gaierror):
        return HostUnreachable(
            f"cannot resolve {target.address} (host {target.name}): fix the address in the "
            "inventory or the resolver"
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return _Transient("timed out")
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        causes = [e for e in exc.errors.values() if isinstance(e, OSError) and e.strerror]
        if causes and not isinstance(causes[0], ConnectionRefusedError):
            return _Transient(causes[0].strerror or "no route")
        return _Transient("connection refused")
    if isinstance(exc, ConnectionRefusedError):
        return _Transient("connection refused")
    if isinstance(exc, paramiko.SSHException) and "known_hosts" in str(exc):
        return AuthenticationFailed(
            f"{target.where} is not in {target.known_hosts or '~/.ssh/known_hosts'}: add its "
            "host key there (ssh-keyscan, checked by hand), or set trust_on_first_use = true "
            "in the host's access table"
        )
    if isinstance(exc, paramiko.SSHException | EOFError):
        return _Transient(f"ssh handshake failed: {exc}")
    if isinstance(exc, OSError):
        return _Transient(exc.strerror or str(exc))
    return _Transient(f"{type(exc).__name__}: {exc}")


class RemoteHost:
    """A host reached over SSH; the base of ``LinuxHost`` and ``WindowsHost``."""

    def __init__(self, target: SshTarget, *, retry: RetryPolicy | None = None,
                 sock_factory: SocketFactory | None = None) -> None:
        self.target = target
        self.retry = retry or RetryPolicy()
        self.sock_factory = sock_factory
        self.connection: Connection | None = None
        self.attempts = 0  # connection attempts made by the last connect()

    @property
    def name(self) -> str:
        return self.target.name

    def __enter__(self) -> RemoteHost:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _open_once(self, timeout: float) -> Connection:
        t = self.target
        connect_kwargs: dict[str, Any] = {"allow_agent": False, "look_for_keys": False,
                                          "banner_timeout": timeout, "auth_timeout": timeout}
        if t.key_filename:
            connect_kwargs["key_filename"] = [t.key_filename]
        password = resolve_secret(t.password, what="password", host=t.name)
        passphrase = resolve_secret(t.passphrase, what="passphrase", host=t.name)
        if password is not None:
            connect_kwargs["password"] = password
        if passphrase is not None:
            connect_kwargs["passphrase"] = passphrase
        if self.sock_factory is not None:
            connect_kwargs["sock"] = self.sock_factory(t.address, t.port, timeout)
        conn = Connection(
            t.address, user=t.user, port=t.port, connect_timeout=max(1, round(timeout)),
            connect_kwargs=connect_kwargs,
            config=Config(ssh_config=paramiko.SSHConfig()),  # no ~/.ssh/config surprises
        )
        if t.known_hosts is not None:
            conn.client.load_host_keys(t.known_hosts)
            conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        elif t.strict_host_keys:
            conn.client.load_system_host_keys()
            conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            conn.open()
        except BaseException:
            conn.close()
            if "sock" in connect_kwargs:
                connect_kwargs["sock"].close()
            raise
        return conn

    def connect(self) -> None:
        """Open the SSH connection (a no-op when open), retrying transient failures."""
        if self.connection is not None and self.connection.is_connected:
            return
        policy = self.retry
        deadline = time.monotonic() + policy.deadline_s
        self.attempts = 0
        last_reason = "no attempt made"

        def attempt() -> Connection:
            nonlocal last_reason
            self.attempts += 1
            remaining = max(0.5, deadline - time.monotonic())
            try:
                return self._open_once(min(self.target.connect_timeout, remaining))
            except RemoteError:
                raise
            except Exception as exc:
                verdict = classify_connect_error(exc, self.target)
                if isinstance(verdict, _Transient):
                    last_reason = verdict.reason
                raise verdict from exc

        retrying = Retrying(
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.deadline_s),
            wait=wait_exponential(multiplier=policy.wait_initial_s, max=policy.wait_max_s),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            self.connection = retrying(attempt)
        except _Transient:
            plural = "attempt" if self.attempts == 1 else "attempts"
            raise HostUnreachable(
                f"cannot reach {self.target.where} over ssh after {self.attempts} {plural} "
                f"({last_reason}): check the address and that sshd runs"
            ) from None

    def execute(self, command: str, *, check: bool = True, timeout: float | None = None,
                stdin: str | None = None) -> CommandResult:
        """Run one command line on the host (connecting first if needed)."""
        def run(connection: Connection) -> tuple[int, str, str]:
            try:
                result = connection.run(
                    command, hide=True, warn=True, pty=False, timeout=timeout,
                    in_stream=io.StringIO(stdin) if stdin is not None else False,
                )
            except InvokeTimedOut:
                raise CommandTimedOut(
                    f"{command[:120]!r} did not finish within {timeout} s on "
                    f"{self.target.where}: check what it waits for, or give it a longer timeout"
                ) from None
            return int(result.exited), result.stdout, result.stderr
        return self.over_connection(command, run, check)

    def over_connection(self, command: str, run: Callable[[Connection], tuple[int, str, str]],
                        check: bool) -> CommandResult:
        """``command``'s result, timed, from ``run`` (exit status, stdout, stderr) on the
        open connection (connecting first if needed). A connection lost meanwhile is closed
        and reported as ``HostUnreachable``; ``check`` raises on a non-zero exit."""
        self.connect()
        assert self.connection is not None
        started = time.monotonic_ns()
        try:
            exit_status, stdout, stderr = run(self.connection)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            raise HostUnreachable(
                f"lost the ssh connection to {self.target.where} while running "
                f"{command[:80]!r} ({exc or type(exc).__name__}): check that the host is up"
            ) from None
        outcome = CommandResult(host=self.name, command=command, exit_status=exit_status,
                                stdout=stdout, stderr=stderr,
                                duration_ns=time.monotonic_ns() - started)
        return outcome.check() if check else outcome

    def run_argv(self, argv: Sequence[str], *, check: bool = True,
                 timeout: float | None = None) -> CommandResult:
        """Run an argument vector; each platform's driver says how (shell or PowerShell)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not know how to quote commands: use LinuxHost or "
            "WindowsHost")
