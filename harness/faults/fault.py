"""The ``Fault`` base class: inject, heal, journal, and the registry of live faults.

A subclass says how to apply itself (``apply``), what a *different* process needs
to undo it (``undo_record``, plain JSON) and how to undo from that record alone
(``heal_from``, a classmethod, idempotent, verifying the result). The base class
does the rest in one order that cannot be skipped:

1. ``inject``: append ``inject`` (with the undo record) to the journal and fsync,
   register the fault as live in this process, apply, append ``injected``.
   If applying fails half way, heal at once and re-raise.
2. ``heal``: run ``heal_from(undo_record)`` (the very code ``splitbrain heal``
   runs), retried with tenacity up to a deadline, then append ``healed``. A heal
   of a fault that is not injected, or already healed, does nothing.

Every subclass registers its ``kind`` so the journal can be healed by kind.
"""

from __future__ import annotations

import threading
import time
import uuid
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from harness.errors import SplitbrainError
from harness.faults.journal import FaultJournal

HEAL_DEADLINE_S = 30.0


class FaultError(SplitbrainError):
    """A fault could not be injected, or its target is wrong."""


class HealError(SplitbrainError):
    """A fault could not be healed; the journal keeps it open for ``splitbrain heal``."""


FAULT_KINDS: dict[str, type[Fault]] = {}
_live: dict[str, Fault] = {}
_live_lock = threading.Lock()


class Fault(ABC):
    """A deliberate break of one target (a link, a process, a disk, a node)."""

    kind: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            FAULT_KINDS[cls.kind] = cls

    def __init__(
        self,
        target: str,
        params: dict[str, Any] | None = None,
        *,
        journal: FaultJournal | None = None,
    ) -> None:
        self.target = target
        self.params = dict(params or {})
        self.journal = journal if journal is not None else FaultJournal()
        self.id = f"{self.kind}-{uuid.uuid4().hex[:12]}"
        self.injected_ns: int | None = None
        self.healed_ns: int | None = None

    @property
    def name(self) -> str:
        """What it does, to what: ``blackhole iscsi1/SWS-Store1``."""
        return f"{self.params.get('action', self.kind)} {self.target}"

    @property
    def active(self) -> bool:
        return self.injected_ns is not None and self.healed_ns is None

    @abstractmethod
    def apply(self) -> None:
        """Break the target (may raise ``FaultError``)."""

    @abstractmethod
    def undo_record(self) -> dict[str, Any]:
        """Plain JSON from which ``heal_from`` can undo this fault in any process."""

    @classmethod
    @abstractmethod
    def heal_from(cls, undo: dict[str, Any]) -> None:
        """Undo a fault from its record; idempotent; raise ``HealError`` if not restored."""

    def inject(self) -> Fault:
        if self.injected_ns is not None:
            raise FaultError(
                f"fault {self.name} ({self.id}) was already injected; "
                "create a new fault to inject it again"
            )
        self.journal.append(
            "inject",
            self.id,
            kind=self.kind,
            target=self.target,
            params=self.params,
            undo=self.undo_record(),
        )
        self.injected_ns = time.monotonic_ns()
        with _live_lock:
            _live[self.id] = self
        try:
            self.apply()
        except BaseException:
            self.heal()
            raise
        self.journal.append("injected", self.id)
        return self

    def heal(self) -> None:
        if not self.active:
            return
        heal_with_retries(type(self), self.undo_record(), self.journal, self.id)
        self.healed_ns = time.monotonic_ns()
        with _live_lock:
            _live.pop(self.id, None)

    def __enter__(self) -> Fault:
        return self.inject()

    def __exit__(self, *exc: object) -> None:
        self.heal()

    def __repr__(self) -> str:
        state = "active" if self.active else ("healed" if self.healed_ns else "new")
        return f"<{type(self).__name__} {self.name} {self.id} {state}>"


def heal_with_retries(
    cls: type[Fault],
    undo: dict[str, Any],
    journal: FaultJournal,
    fault_id: str,
    deadline_s: float = HEAL_DEADLINE_S,
) -> None:
    """Heal from a record until it works or the deadline passes; journal the outcome."""
    try:
        for attempt in Retrying(
            stop=stop_after_delay(deadline_s),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            retry=retry_if_exception_type(SplitbrainError),
            reraise=True,
        ):
            with attempt:
                cls.heal_from(undo)
    except SplitbrainError as exc:
        journal.append("heal_failed", fault_id, error=str(exc))
        raise HealError(
            f"could not heal {cls.kind} fault {fault_id}: {exc}; "
            f"run `splitbrain heal --journal {journal.path}` once it is reachable"
        ) from None
    journal.append("healed", fault_id)


def forget_healed(fault_id: str) -> None:
    """A journal sweep healed this fault: the live object in this process is healed too."""
    with _live_lock:
        fault = _live.pop(fault_id, None)
    if fault is not None and fault.healed_ns is None:
        fault.healed_ns = time.monotonic_ns()


def live_faults() -> list[Fault]:
    """Faults injected by this process and not yet healed, oldest first."""
    with _live_lock:
        return list(_live.values())


def heal_live() -> list[HealError]:
    """Heal every live fault of this process, newest first; return (not raise) failures."""
    failures: list[HealError] = []
    for fault in reversed(live_faults()):
        try:
            fault.heal()
        except HealError as exc:
            failures.append(exc)
    return failures


class CompositeFault(Fault):
    """Several faults injected together and healed together (newest first)."""

    kind = "composite"

    def __init__(
        self,
        target: str,
        parts: list[Fault],
        *,
        action: str = "composite",
        journal: FaultJournal | None = None,
    ) -> None:
        if not parts:
            raise FaultError(f"composite fault {action} {target} has no parts")
        super().__init__(
            target, {"action": action, "parts": [p.name for p in parts]}, journal=journal
        )
        self.parts = parts

    def apply(self) -> None:
        for part in self.parts:
            part.apply()

    def undo_record(self) -> dict[str, Any]:
        return {"parts": [{"kind": p.kind, "undo": p.undo_record()} for p in self.parts]}

    @classmethod
    def heal_from(cls, undo: dict[str, Any]) -> None:
        errors = []
        for part in reversed(undo["parts"]):
            try:
                FAULT_KINDS[part["kind"]].heal_from(part["undo"])
            except SplitbrainError as exc:
                errors.append(str(exc))
        if errors:
            raise HealError("; ".join(errors))
