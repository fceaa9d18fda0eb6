"""Heal on the way out: SIGINT/SIGTERM handlers and the journal sweep.

``heal_on_signals()`` installs handlers that heal every live fault of this
process, then restore the previous handler and deliver the signal again, so
the program still ends the way it would have (KeyboardInterrupt, exit 143...).
``signals_ignored()`` keeps them from interrupting a teardown that must finish
(heal, then lab down). ``heal_journal(path)`` is what ``splitbrain heal`` and
the session-start sweep run: heal every open fault of a journal, newest first,
and report each.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from harness.errors import SplitbrainError
from harness.faults.fault import (
    FAULT_KINDS,
    HealError,
    forget_healed,
    heal_live,
    heal_with_retries,
)
from harness.faults.journal import FaultJournal
from harness.faults.kinds import KINDS  # noqa: F401  (registers every fault kind)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM are ignored while active (teardown: heal and lab down finish)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextmanager
def heal_on_signals() -> Iterator[None]:
    """While active, SIGINT/SIGTERM heal this process's live faults before acting."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may own signal handlers
        return
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        for failure in heal_live():
            print(f"splitbrain: {failure}", file=sys.stderr)
        signal.signal(signum, previous[signum])
        os.kill(os.getpid(), signum)  # the previous handler now acts on it

    for sig in SIGNALS:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, old)


@dataclass(frozen=True)
class HealOutcome:
    id: str
    kind: str
    target: str
    healed: bool
    error: str = ""


def heal_journal(journal: FaultJournal, deadline_s: float = 30.0) -> list[HealOutcome]:
    """Heal every open fault in ``journal`` (newest first); never stops at a failure."""
    outcomes: list[HealOutcome] = []
    for fault in reversed(journal.open_faults()):
        cls = FAULT_KINDS.get(fault.kind)
        if cls is None:
            outcomes.append(
                HealOutcome(
                    fault.id,
                    fault.kind,
                    fault.target,
                    False,
                    f"unknown fault kind {fault.kind!r}; heal it by hand",
                )
            )
            continue
        try:
            heal_with_retries(cls, fault.undo, journal, fault.id, deadline_s)
        except HealError as exc:
            outcomes.append(HealOutcome(fault.id, fault.kind, fault.target, False, str(exc)))
        except (SplitbrainError, KeyError, TypeError) as exc:
            journal.append("heal_failed", fault.id, error=str(exc))
            outcomes.append(HealOutcome(fault.id, fault.kind, fault.target, False, str(exc)))
        else:
            forget_healed(fault.id)
            outcomes.append(HealOutcome(fault.id, fault.kind, fault.target, True))
    return outcomes
