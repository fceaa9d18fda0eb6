"""The fault journal: a durable ledger of every fault, written before it is applied.

One JSON object per line, appended under an exclusive ``flock`` and fsynced
before the call returns, so a record survives the harness being killed on the
next instruction. The life of a fault is a sequence of events sharing its ``id``:

- ``inject``: written *before* anything is changed. It carries everything a
  different process needs to undo the fault (``undo``), so a crash between this
  line and the change is harmless (healing something never broken is a no-op).
- ``injected``: the change was applied.
- ``healed``: the change was undone and verified.
- ``heal_failed``: an attempt to heal failed (with the error); the fault stays open.

A fault is *open* while its ``inject`` has no ``healed``. ``splitbrain heal``
reads the journal and heals every open fault, newest first; since healing is
idempotent it can be run any number of times.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import SplitbrainError

ENV_JOURNAL = "SPLITBRAIN_FAULT_JOURNAL"


class JournalError(SplitbrainError):
    """The fault journal cannot be read or written."""


def default_journal_path() -> Path:
    """``$SPLITBRAIN_FAULT_JOURNAL``, else ``$XDG_STATE_HOME/splitbrain/faults.jsonl``."""
    if os.environ.get(ENV_JOURNAL):
        return Path(os.environ[ENV_JOURNAL])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "splitbrain" / "faults.jsonl"


@dataclass(frozen=True)
class OpenFault:
    """An ``inject`` record with no ``healed`` after it."""

    id: str
    kind: str
    target: str
    params: dict[str, Any]
    undo: dict[str, Any]
    injected: bool
    record: dict[str, Any]


class FaultJournal:
    """Append-only, fsynced JSON lines; safe to share between processes."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_journal_path()

    @contextlib.contextmanager
    def _locked(self, mode: str) -> Iterator[Any]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise JournalError(
                f"cannot open fault journal {self.path}: {exc.strerror}; "
                "check the directory exists and is writable"
            ) from None
        with os.fdopen(fd, mode) as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def append(self, event: str, fault_id: str, **fields: Any) -> dict[str, Any]:
        record = {
            "event": event,
            "id": fault_id,
            "time_ns": time.monotonic_ns(),
            "wall": time.time(),
            "pid": os.getpid(),
            **fields,
        }
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with self._locked("a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        return record

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        with self._locked("r") as f:
            f.seek(0)
            for number, line in enumerate(f, start=1):
                if not line.endswith("\n"):
                    break  # a torn last line from a crash mid-write: nothing after it
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    raise JournalError(
                        f"{self.path}:{number}: not a JSON record; the journal "
                        "was edited or corrupted, fix or move that line"
                    ) from None
        return out

    def open_faults(self) -> list[OpenFault]:
        """Faults injected (or about to be) and not healed, oldest first."""
        opened: dict[str, OpenFault] = {}
        for rec in self.records():
            fid = str(rec.get("id"))
            event = rec.get("event")
            if event == "inject":
                opened[fid] = OpenFault(
                    fid,
                    rec.get("kind", "?"),
                    rec.get("target", "?"),
                    rec.get("params", {}),
                    rec.get("undo", {}),
                    False,
                    rec,
                )
            elif event == "injected" and fid in opened:
                o = opened[fid]
                opened[fid] = OpenFault(o.id, o.kind, o.target, o.params, o.undo, True, o.record)
            elif event == "healed":
                opened.pop(fid, None)
        return list(opened.values())
