"""SIGINT and SIGTERM during a chaos run: stop cleanly, and never interrupt the heal."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from harness.faults.guard import signals_ignored


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM ended the run; faults were healed on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGINT) raise ``RunInterrupted`` in the main thread while active."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise RunInterrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


__all__ = ["RunInterrupted", "signals_ignored", "signals_interrupt"]
