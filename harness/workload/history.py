"""The recorded history of a run: every operation and every fault, as JSON lines.

The model is Jepsen's. Each operation is logged twice: an ``invoke`` record
written *before* the I/O is issued, then exactly one completion:

- ``ok``: it happened (the device acknowledged it);
- ``fail``: it certainly did not happen (refused before it could take effect);
- ``info``: unknown (timeout, lost connection mid-command): a write that ended
  ``info`` may or may not be on the device, now or later.

An operation with an ``invoke`` and no completion (the run crashed) loads as
``info``. Faults live in the same history as ``fault`` records (``start`` and
``stop`` with a name), path changes as ``path`` records and HA replica
synchronization states as ``replica`` records, so checkers can say
which fault was active when something went wrong and plots can shade the fault
windows. The first record is a ``header`` describing the run (seed,
generation, device geometry, checker block size, initial content).

Every record is one line appended with a single ``write(2)`` on an ``O_APPEND``
descriptor, so a crash keeps everything before it; the loader ignores a torn
last line. Times are ``time.monotonic_ns()`` of the recording host.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.workload.errors import HistoryError

FORMAT_VERSION = 1
OUTCOMES = ("ok", "fail", "info")
#: the error of an operation its client abandoned by crashing (never re-driven, its fate
#: unknown): the caller that would have seen it is gone, so it is no error returned to one
ABANDONED = "abandoned: the client crashed"


@dataclass(frozen=True, slots=True)
class HistoryHeader:
    """What the checkers need to know about the run that wrote a history."""

    seed: int
    generation: int
    block_size: int  # the checker's block: every write is a multiple of it, aligned
    logical_block_size: int  # the device's LBA unit (history lba/count are in it)
    num_blocks: int  # device size in logical blocks
    device: str
    initial: str = "unknown"  # "zero" when the device was created empty by the workload
    start_ns: int = 0
    wall_clock: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.num_blocks * self.logical_block_size

    def to_record(self) -> dict[str, Any]:
        return {
            "type": "header",
            "version": FORMAT_VERSION,
            "seed": self.seed,
            "generation": self.generation,
            "block_size": self.block_size,
            "logical_block_size": self.logical_block_size,
            "num_blocks": self.num_blocks,
            "device": self.device,
            "initial": self.initial,
            "start_ns": self.start_ns,
            "wall_clock": self.wall_clock,
            "options": self.options,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any], where: str) -> HistoryHeader:
        if rec.get("version") != FORMAT_VERSION:
            raise HistoryError(
                f"{where}: history format version {rec.get('version')!r} is not "
                f"{FORMAT_VERSION}; record it again with this splitbrain"
            )
        try:
            return cls(
                seed=int(rec["seed"]),
                generation=int(rec["generation"]),
                block_size=int(rec["block_size"]),
                logical_block_size=int(rec["logical_block_size"]),
                num_blocks=int(rec["num_blocks"]),
                device=str(rec["device"]),
                initial=str(rec.get("initial", "unknown")),
                start_ns=int(rec.get("start_ns", 0)),
                wall_clock=float(rec.get("wall_clock", 0.0)),
                options=dict(rec.get("options", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HistoryError(f"{where}: header record is missing {exc}; not a history") from exc


@dataclass(slots=True)
class Operation:
    """One operation, its invocation and completion joined."""

    op: int
    process: int
    f: str  # "write" or "read"
    lba: int
    count: int
    invoke_ns: int
    writer: int = -1
    seq: int = -1
    generation: int = 0
    outcome: str = "info"
    complete_ns: int | None = None  # None: never completed (treated as +infinity)
    path: str | None = None
    value: Any = None  # for reads: what each checker block held (see writers.observe)
    error: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def latency_ns(self) -> int | None:
        return None if self.complete_ns is None else self.complete_ns - self.invoke_ns

    def end_ns(self) -> float:
        """Completion time, +inf when the outcome is unknown (it may still land)."""
        if self.outcome == "info" or self.complete_ns is None:
            return float("inf")
        return float(self.complete_ns)


@dataclass(slots=True)
class FaultWindow:
    """One fault: from ``start`` until ``stop`` (None: never healed in this history)."""

    fault: int
    name: str
    start_ns: int
    stop_ns: int | None
    attrs: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)

    def covers(self, start_ns: float, end_ns: float) -> bool:
        stop = float("inf") if self.stop_ns is None else self.stop_ns
        return self.start_ns <= end_ns and start_ns <= stop


@dataclass(frozen=True, slots=True)
class PathEvent:
    time_ns: int
    path: str
    state: str  # "up" or "down" (or any state word the multipath layer uses)


@dataclass(frozen=True, slots=True)
class ReplicaState:
    time_ns: int
    replica: str
    state: str  # "synchronized", "synchronizing", "not synchronized"


class History:
    """A history being recorded: append-only JSON lines, safe from any thread."""

    def __init__(self, path: str | os.PathLike[str], header: HistoryHeader, *, fsync: bool = False):
        self.path = Path(path)
        self.header = header
        self._fsync = fsync
        self._lock = threading.Lock()
        self._index = 0
        self._next_op = 0
        self._next_fault = 0
        self._open_faults: dict[str, list[int]] = {}  # name -> ids, oldest first
        try:
            self._fd: int | None = os.open(
                self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644
            )
        except OSError as exc:
            raise HistoryError(
                f"cannot create history {self.path}: {exc.strerror}; choose a writable path"
            ) from exc
        self._append(header.to_record())

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _append(self, rec: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._fd is None:
                raise HistoryError(f"history {self.path} is closed; cannot record {rec['type']}")
            rec["index"] = self._index
            self._index += 1
            os.write(self._fd, (json.dumps(rec, separators=(",", ":")) + "\n").encode())
            if self._fsync:
                os.fsync(self._fd)
        return rec

    def invoke(self, process: int, f: str, lba: int, count: int, *, writer: int = -1,
               seq: int = -1, time_ns: int | None = None) -> int:
        """Record an invocation (before the I/O is issued); returns the op id."""
        with self._lock:
            op = self._next_op
            self._next_op += 1
        rec: dict[str, Any] = {
            "type": "invoke", "op": op, "process": process, "f": f, "lba": lba, "count": count,
            "time": time.monotonic_ns() if time_ns is None else time_ns,
        }
        if writer >= 0:
            rec["writer"] = writer
            rec["seq"] = seq
            rec["generation"] = self.header.generation
        self._append(rec)
        return op

    def complete(self, op: int, outcome: str, *, invoke_ns: int, path: str | None = None,
                 value: Any = None, error: str | None = None,
                 time_ns: int | None = None) -> None:
        """Record an operation's completion: ``ok``, ``fail`` or ``info``."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of {OUTCOMES}")
        now = time.monotonic_ns() if time_ns is None else time_ns
        rec: dict[str, Any] = {"type": outcome, "op": op, "time": now, "latency": now - invoke_ns}
        if path is not None:
            rec["path"] = path
        if value is not None:
            rec["value"] = value
        if error is not None:
            rec["error"] = error
        self._append(rec)

    def fault_start(self, name: str, *, time_ns: int | None = None, **attrs: Any) -> int:
        """Record that a fault is about to be injected; returns its id."""
        with self._lock:
            fid = self._next_fault
            self._next_fault += 1
            self._open_faults.setdefault(name, []).append(fid)
        self._append({"type": "fault", "f": "start", "fault": fid, "name": name,
                      "time": time.monotonic_ns() if time_ns is None else time_ns, **attrs})
        return fid

    def fault_stop(self, name: str, *, time_ns: int | None = None, **attrs: Any) -> None:
        """Record that a fault was healed (the oldest open fault of that name)."""
        with self._lock:
            open_ids = self._open_faults.get(name)
            fid = open_ids.pop(0) if open_ids else None
        if fid is None:
            raise HistoryError(f"fault {name!r} was never started in {self.path}; cannot stop it")
        self._append({"type": "fault", "f": "stop", "fault": fid, "name": name,
                      "time": time.monotonic_ns() if time_ns is None else time_ns, **attrs})

    def replica_state(self, replica: str, state: str, *, time_ns: int | None = None,
                      **attrs: Any) -> None:
        """Record an HA replica's synchronization state as the storage reports it."""
        self._append({"type": "replica", "replica": replica, "state": state,
                      "time": time.monotonic_ns() if time_ns is None else time_ns, **attrs})

    def path_event(self, path: str, state: str, *, time_ns: int | None = None,
                   **attrs: Any) -> None:
        """Record a path state change reported by the multipath layer."""
        self._append({"type": "path", "path": path, "state": state,
                      "time": time.monotonic_ns() if time_ns is None else time_ns, **attrs})


@dataclass(slots=True)
class RecordedHistory:
    """A loaded history: the header, operations in invoke order, faults, path events."""

    header: HistoryHeader
    ops: list[Operation]
    faults: list[FaultWindow]
    paths: list[PathEvent]
    records: list[dict[str, Any]]
    torn_tail: bool = False
    replicas: list[ReplicaState] = field(default_factory=list)

    @property
    def writes(self) -> list[Operation]:
        return [o for o in self.ops if o.f == "write"]

    @property
    def reads(self) -> list[Operation]:
        return [o for o in self.ops if o.f == "read"]

    @property
    def end_ns(self) -> int:
        return max((int(r["time"]) for r in self.records if "time" in r),
                   default=self.header.start_ns)

    def faults_during(self, start_ns: float, end_ns: float) -> list[FaultWindow]:
        return [f for f in self.faults if f.covers(start_ns, end_ns)]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            yield from enumerate(fh, start=1)
    except FileNotFoundError as exc:
        raise HistoryError(f"history {path} does not exist; pass the file `workload` wrote") \
            from exc
    except OSError as exc:
        raise HistoryError(f"cannot read history {path}: {exc.strerror}") from exc


def parse_records(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], bool]:
    """All records of a history file; a torn (unparseable) last line is dropped."""
    path = Path(path)
    records: list[dict[str, Any]] = []
    bad: tuple[int, str] | None = None
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        if bad is not None:  # a bad line followed by more lines: not a crash tail
            raise HistoryError(f"{path}:{bad[0]}: not a JSON record ({bad[1]}); file is damaged")
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or "type" not in rec:
                raise ValueError("no record type")
        except ValueError as exc:
            bad = (lineno, str(exc).split(":")[0])
            continue
        records.append(rec)
    return records, bad is not None


def load_history(path: str | os.PathLike[str]) -> RecordedHistory:
    """Load and join a history file written by ``History``."""
    records, torn = parse_records(path)
    if not records or records[0].get("type") != "header":
        raise HistoryError(f"{path}: first record is not a history header; not a history file")
    header = HistoryHeader.from_record(records[0], str(path))
    ops: dict[int, Operation] = {}
    faults: dict[int, FaultWindow] = {}
    paths: list[PathEvent] = []
    replicas: list[ReplicaState] = []
    for rec in records[1:]:
        kind = rec["type"]
        try:
            if kind == "invoke":
                op = Operation(
                    op=int(rec["op"]), process=int(rec["process"]), f=str(rec["f"]),
                    lba=int(rec["lba"]), count=int(rec["count"]), invoke_ns=int(rec["time"]),
                    writer=int(rec.get("writer", -1)), seq=int(rec.get("seq", -1)),
                    generation=int(rec.get("generation", header.generation)),
                    records=[rec],
                )
                ops[op.op] = op
            elif kind in OUTCOMES:
                op = ops[int(rec["op"])]
                op.outcome = kind
                op.complete_ns = int(rec["time"])
                op.path = rec.get("path")
                op.value = rec.get("value")
                op.error = rec.get("error")
                op.records.append(rec)
            elif kind == "fault":
                fid = int(rec["fault"])
                if rec["f"] == "start":
                    attrs = {k: v for k, v in rec.items()
                             if k not in ("type", "f", "fault", "name", "time", "index")}
                    faults[fid] = FaultWindow(fid, str(rec["name"]), int(rec["time"]), None,
                                              attrs, [rec])
                else:
                    faults[fid].stop_ns = int(rec["time"])
                    faults[fid].records.append(rec)
            elif kind == "path":
                paths.append(PathEvent(int(rec["time"]), str(rec["path"]), str(rec["state"])))
            elif kind == "replica":
                replicas.append(ReplicaState(int(rec["time"]), str(rec["replica"]),
                                             str(rec["state"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise HistoryError(
                f"{path}: record {rec.get('index', '?')} ({kind}) is malformed: {exc}"
            ) from exc
    ordered = sorted(ops.values(), key=lambda o: (o.invoke_ns, o.op))
    return RecordedHistory(header, ordered, sorted(faults.values(), key=lambda f: f.start_ns),
                           paths, records, torn, replicas)
