"""SSH connections kept for the life of the process, one per (inventory, host).

Faults and replica-state readers talk to the same few hosts many times a second
during a chaos run; a new SSH handshake each time costs more than the command.
``kept_host`` returns a context manager over a driver that stays connected
(leaving the ``with`` does not close it; a dropped connection reconnects on the
next command), and every kept connection is closed at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Callable
from typing import Any


class _Kept:
    """A context manager over a kept driver: leaving it does not close the connection."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def __enter__(self) -> Any:
        self.driver.connect()
        return self.driver

    def __exit__(self, *exc: object) -> None:
        return None


_kept: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def kept_host(inventory: str, host: str, inventory_host: Callable[[], Any]) -> _Kept:
    """The kept driver of ``host`` (``inventory_host()`` gives its inventory entry)."""
    from harness.remote import open_host

    key = (inventory, host)
    with _lock:
        if key not in _kept:
            _kept[key] = open_host(inventory_host())
            if len(_kept) == 1:
                atexit.register(close_kept)
        return _Kept(_kept[key])


def close_kept() -> None:
    """Close every kept connection (at exit; tests call it too)."""
    with _lock:
        for driver in _kept.values():
            with contextlib.suppress(Exception):
                driver.close()
        _kept.clear()
