"""A cluster node (a client of the storage) that crashes: the writes it had in flight die
with it and are never re-driven.

Model: MPIO re-drives every I/O a failed path held, so a storage node that dies under a
live client loses nothing the client still waits for. A client that dies in the same
instant (one rack losing power; DRBD's model, where the writer runs on the primary)
re-drives nothing: whatever its in-flight writes left on one replica only stays so
unless the storage knows where to look (its activity log). The client is the harness's
own workload in this process, so the fault is two callbacks the chaos run hands in:
``crash`` (abandon everything in flight, start nothing) and ``restart`` (the node is
back: its application goes on). Nothing outlives this process, so another process
that heals the journal has nothing to undo.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from harness.faults.fault import Fault
from harness.faults.journal import FaultJournal

_restarts: dict[str, Callable[[], None]] = {}
_lock = threading.Lock()


class ClientCrash(Fault):
    """A cluster node's client crashes now and restarts at the heal."""

    kind = "client-crash"

    def __init__(self, host: str, *, crash: Callable[[], None], restart: Callable[[], None],
                 journal: FaultJournal | None = None) -> None:
        super().__init__(host, {"action": "client-crash"}, journal=journal)
        self._crash, self._restart = crash, restart

    def apply(self) -> None:
        with _lock:
            _restarts[self.id] = self._restart
        self._crash()

    def undo_record(self) -> dict[str, Any]:
        return {"id": self.id}

    @classmethod
    def heal_from(cls, undo: dict[str, Any]) -> None:
        with _lock:
            restart = _restarts.pop(str(undo.get("id")), None)
        if restart is not None:  # None: healed already, or the client's process is gone
            restart()
