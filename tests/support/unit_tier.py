"""The unit tier's guard: no process, no socket peer, no namespace while a unit test runs.

While a unit test runs (setup, call and teardown), starting a process
(``subprocess``, and so ``asyncio`` subprocesses, ``ip netns``, tgtd, sshd) or
connecting or listening on a socket fails the test with a message saying where
it belongs. Binding a socket without a peer (asking the kernel for a free port)
is allowed. This is what keeps ``make test-fast`` fast and free of peers; ``tests/unit/conftest.py``
turns it on for every unit test.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)


class UnitTierViolation(AssertionError):
    """A unit test started a process or a socket peer."""


def _refuse(what: str) -> UnitTierViolation:
    return UnitTierViolation(
        f"a unit test may not {what}; move the test to tests/integration/ "
        "(the unit tier runs no process, socket peer or namespace)")


@contextmanager
def unit_tier_guard() -> Iterator[None]:
    """Refuse processes and socket peers while active."""
    popen_init = subprocess.Popen.__init__
    connect, connect_ex, listen = socket.socket.connect, socket.socket.connect_ex, \
        socket.socket.listen

    def no_process(self: Any, args: Any, *a: Any, **k: Any) -> None:
        raise _refuse(f"start a process ({args if isinstance(args, str) else args[0]})")

    def no_connect(self: socket.socket, address: Any) -> Any:
        if self.family in _FAMILIES:
            raise _refuse(f"connect a socket ({address})")
        return connect(self, address)

    def no_connect_ex(self: socket.socket, address: Any) -> Any:
        if self.family in _FAMILIES:
            raise _refuse(f"connect a socket ({address})")
        return connect_ex(self, address)

    def no_listen(self: socket.socket, *backlog: int) -> Any:
        if self.family in _FAMILIES:
            raise _refuse("listen on a socket")
        return listen(self, *backlog)

    subprocess.Popen.__init__ = no_process  # type: ignore[method-assign]
    socket.socket.connect = no_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = no_connect_ex  # type: ignore[method-assign]
    socket.socket.listen = no_listen  # type: ignore[method-assign]
    try:
        yield
    finally:
        subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]
        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
        socket.socket.listen = listen  # type: ignore[method-assign]
