"""Shells kept open on a Linux host: commands through SSH session channels already open.

The model: opening an SSH session channel costs the host a fork of sshd's session
process, a login shell and, on most hosts, a PAM session (``pam_systemd`` asks
logind for one); measured on the namespace site, 0.2-0.6 s per command, against
a fraction of a millisecond for a line through a channel that is already open. A
fault that must take effect inside a 0.8 s window, and prove it did, cannot pay
that three or four times. So ``ShellPool`` keeps a few ``sh`` processes open on
the host, one per session channel, and runs each command line through an idle
one (a new shell is opened only when every kept one is busy, up to ``size``).

Each command runs in a subshell with stdin from ``/dev/null`` (it can neither
read the protocol's own input nor change the kept shell's directory or
environment), then the shell prints a marker unique to that command on stdout
(with the exit status) and on stderr. The reader splits both streams at their
markers. A command line must be complete shell text (``shlex.join`` builds every
one ``LinuxHost`` sends; an unbalanced quote would make the shell wait for more
input, so it is refused before it is sent). A command that overruns its timeout
closes its shell (sshd hangs it up); a shell whose channel or connection is gone
is dropped and the next command opens a new one.
"""

from __future__ import annotations

import secrets
import select
import shlex
import threading
import time
from dataclasses import dataclass
from typing import Any

from harness.remote.errors import CommandTimedOut, HostUnreachable, UnsafeArgument

#: shells kept per host: a fault's verification, the replica watch and a log read at once
DEFAULT_SIZE = 4
_CHUNK = 65536


class ShellLost(HostUnreachable):
    """The kept shell's channel closed before the command's markers came back."""


@dataclass
class Output:
    exit_status: int
    stdout: str
    stderr: str


class KeptShell:
    """One ``sh`` reading command lines from an open SSH session channel."""

    def __init__(self, transport: Any, where: str) -> None:
        self.transport, self.where = transport, where
        self.channel = transport.open_session()
        self.channel.exec_command("exec sh")

    @property
    def usable(self) -> bool:
        ch = self.channel
        return self.transport.is_active() and not ch.closed and not ch.exit_status_ready()

    def close(self) -> None:
        self.channel.close()

    def run(self, line: str, timeout: float | None) -> Output:
        mark = "splitbrain-done-" + secrets.token_hex(8)
        self.channel.sendall(
            f"( {line}\n) </dev/null; printf '\\n%s:%s\\n' {mark} \"$?\"; "
            f"printf '\\n%s\\n' {mark} >&2\n".encode())
        deadline = None if timeout is None else time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        out_end, err_end = f"\n{mark}:".encode(), f"\n{mark}\n".encode()
        while True:
            ch = self.channel
            while ch.recv_ready():
                out += ch.recv(_CHUNK)
            while ch.recv_stderr_ready():
                err += ch.recv_stderr(_CHUNK)
            o, e = out.find(out_end), err.find(err_end)
            if o >= 0 and e >= 0 and out.find(b"\n", o + 1) >= 0:
                status = out[o + len(out_end):].split(b"\n", 1)[0]
                return Output(int(status), out[:o].decode("utf-8", "replace"),
                              err[:e].decode("utf-8", "replace"))
            if ch.closed or ch.eof_received or not self.transport.is_active():
                self.close()
                raise ShellLost(f"the kept shell on {self.where} closed while running "
                                f"{line[:80]!r}: check that the host is up")
            wait = 1.0 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                self.close()
                raise CommandTimedOut(
                    f"{line[:120]!r} did not finish within {timeout} s on {self.where}: "
                    "check what it waits for, or give it a longer timeout")
            select.select([ch], [], [], min(wait, 1.0))


class ShellPool:
    """Up to ``size`` kept shells on one SSH transport, lent one command at a time."""

    def __init__(self, where: str, size: int = DEFAULT_SIZE) -> None:
        self.where, self.size = where, size
        self._idle: list[KeptShell] = []
        self._open = 0
        self._cond = threading.Condition()

    def _borrow(self, transport: Any) -> KeptShell:
        with self._cond:
            while True:
                while self._idle:
                    shell = self._idle.pop()
                    if shell.transport is transport and shell.usable:
                        return shell
                    shell.close()
                    self._open -= 1
                if self._open < self.size:
                    self._open += 1
                    break
                self._cond.wait(1.0)
        try:
            return KeptShell(transport, self.where)
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def _give_back(self, shell: KeptShell, ok: bool) -> None:
        with self._cond:
            if ok and shell.usable:
                self._idle.append(shell)
            else:
                shell.close()
                self._open -= 1
            self._cond.notify()

    def run(self, transport: Any, line: str, timeout: float | None) -> Output:
        """Run one complete command line in a kept shell on ``transport``."""
        try:
            shlex.split(line)
        except ValueError as exc:
            raise UnsafeArgument(f"{line[:80]!r} is not complete shell text ({exc})") from None
        shell = self._borrow(transport)
        ok = False
        try:
            result = shell.run(line, timeout)
            ok = True
            return result
        finally:
            self._give_back(shell, ok)

    def close(self) -> None:
        with self._cond:
            for shell in self._idle:
                shell.close()
            self._open -= len(self._idle)
            self._idle.clear()
            self._cond.notify_all()


def stream(transport: Any, line: str, on_line: Any, *, timeout: float | None,
           where: str) -> Output:
    """Run ``line`` in a session channel of its own and hand every complete stdout line to
    ``on_line`` as it arrives (a long-running command's output, e.g. the workload agent's
    history, reaches the controller while it runs, not at its end). A last line without
    its newline (the command was cut off) is not handed over; it stays in ``stdout``."""
    channel = transport.open_session()
    try:
        channel.exec_command(line)
        deadline = None if timeout is None else time.monotonic() + timeout
        out, err, pending = bytearray(), bytearray(), bytearray()
        while True:
            while channel.recv_ready():
                chunk = channel.recv(_CHUNK)
                out += chunk
                pending += chunk
                *lines, rest = bytes(pending).split(b"\n")
                pending[:] = rest
                for text in lines:
                    on_line(text.decode("utf-8", "replace"))
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(_CHUNK)
            if channel.exit_status_ready() and not channel.recv_ready() \
                    and not channel.recv_stderr_ready():
                return Output(channel.recv_exit_status(), out.decode("utf-8", "replace"),
                              err.decode("utf-8", "replace"))
            if channel.closed or not transport.is_active():
                raise ShellLost(f"the channel to {where} closed while running {line[:80]!r}: "
                                "check that the host is up")
            wait = 1.0 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                raise CommandTimedOut(
                    f"{line[:120]!r} did not finish within {timeout} s on {where}: "
                    "check what it waits for, or give it a longer timeout")
            select.select([channel], [], [], min(wait, 1.0))
    finally:
        channel.close()
