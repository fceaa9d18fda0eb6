"""A history read as a stream: operations in numpy chunks, never as Python objects.

``load_history`` joins every record into an ``Operation`` (about 4 KB of memory
per operation); a one-hour run at 2,000 operations a second would need tens of
GB. This module reads the same JSON lines in one pass and hands the checkers
*chunks*: the operations completed in the last ``chunk`` completion records,
joined with their invocations, as numpy columns (``OpChunk``). Only operations
still in flight are held between chunks (a dict bounded by the concurrency), so
memory does not grow with the length of the history; a checker keeps whatever
per-block or per-time-bucket state it needs and lets each chunk go.

``outline(path)`` reads only the few records that are not operations (header,
faults, replica states, path events) with a fast byte search, so a checker can
know every fault window before the operations stream past. Each operation keeps
the byte offsets of its invoke and completion lines, and ``read_records`` fetches
them again when a problem needs to cite them.

An operation that never completed is emitted at the end with outcome
``PENDING`` and completion ``NEVER``. Times are the history's
``time.monotonic_ns()`` values.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.workload.errors import HistoryError
from harness.workload.history import (
    ABANDONED,
    FaultWindow,
    HistoryHeader,
    PathEvent,
    ReplicaState,
)

try:  # orjson parses a record in ~1 us, json in ~5 us
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a dependency; json is the fallback
    from json import loads as _loads

READ, WRITE, OTHER = 0, 1, 2
OK, INFO, FAIL, PENDING = 0, 1, 2, 3
OUTCOME_CODES = {"ok": OK, "info": INFO, "fail": FAIL}
OUTCOME_NAMES = ("ok", "info", "fail", "pending")
NEVER = np.iinfo(np.int64).max
CHUNK = 1 << 16
_BLOCK = 8 << 20
_SPECIAL = tuple(f'"type":{sp}"{kind}"'.encode() for kind in ("header", "fault", "replica",
                                                                 "path") for sp in ("", " "))


@dataclass(slots=True)
class HistoryOutline:
    """Everything in a history except its operations (small, read first)."""

    header: HistoryHeader
    faults: list[FaultWindow] = field(default_factory=list)
    replicas: list[ReplicaState] = field(default_factory=list)
    paths: list[PathEvent] = field(default_factory=list)


@dataclass(slots=True)
class OpChunk:
    """Operations joined with their invocations, as columns (one row per operation)."""

    op: np.ndarray  # int64
    f: np.ndarray  # int8: READ, WRITE, OTHER
    process: np.ndarray  # int64
    lba: np.ndarray  # int64
    count: np.ndarray  # int64
    writer: np.ndarray  # int64, -1 for reads
    seq: np.ndarray  # int64, -1 for reads
    generation: np.ndarray  # int64
    invoke: np.ndarray  # int64 ns
    complete: np.ndarray  # int64 ns, NEVER when it never completed
    outcome: np.ndarray  # int8: OK, INFO, FAIL, PENDING
    path: np.ndarray  # int16: index into the stream's path names, -1 for none
    invoke_at: np.ndarray  # int64 byte offset of the invoke line
    complete_at: np.ndarray  # int64 byte offset of the completion line, -1 for none
    values: list[Any]  # per operation: what a read observed (``writers.observe``), or None

    def __len__(self) -> int:
        return len(self.op)


def outline(path: str | os.PathLike[str]) -> HistoryOutline:
    """Header, faults, replica states and path events, found by a byte search."""
    header: HistoryHeader | None = None
    faults: dict[int, FaultWindow] = {}
    replicas: list[ReplicaState] = []
    paths: list[PathEvent] = []
    for _off, rec in _special_records(Path(path)):
        kind = rec.get("type")
        if header is None:
            if kind != "header":
                break
            header = HistoryHeader.from_record(rec, str(path))
            continue
        try:
            if kind == "fault":
                fid = int(rec["fault"])
                if rec["f"] == "start":
                    attrs = {k: v for k, v in rec.items()
                             if k not in ("type", "f", "fault", "name", "time", "index")}
                    faults[fid] = FaultWindow(fid, str(rec["name"]), int(rec["time"]), None,
                                              attrs, [rec])
                elif fid in faults:
                    faults[fid].stop_ns = int(rec["time"])
                    faults[fid].records.append(rec)
            elif kind == "replica":
                replicas.append(ReplicaState(int(rec["time"]), str(rec["replica"]),
                                             str(rec["state"])))
            elif kind == "path":
                paths.append(PathEvent(int(rec["time"]), str(rec["path"]), str(rec["state"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise HistoryError(f"{path}: record {rec.get('index', '?')} ({kind}) is malformed: "
                               f"{exc}") from exc
    if header is None:
        raise HistoryError(f"{path}: first record is not a history header; not a history file")
    return HistoryOutline(header, sorted(faults.values(), key=lambda f: f.start_ns),
                          replicas, paths)


def _open(path: Path) -> Any:
    try:
        return path.open("rb")
    except FileNotFoundError as exc:
        raise HistoryError(f"history {path} does not exist; pass the file `workload` wrote") \
            from exc
    except OSError as exc:
        raise HistoryError(f"cannot read history {path}: {exc.strerror}") from exc


def _special_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(offset, record) of every non-operation line, in file order."""
    with _open(path) as fh:
        base = 0
        carry = b""
        while True:
            block = fh.read(_BLOCK)
            if not block and not carry:
                return
            buf = carry + block
            if block:
                cut = buf.rfind(b"\n") + 1
                if cut == 0:
                    carry = buf
                    continue
                buf, carry = buf[:cut], buf[cut:]
            else:
                carry = b""
            hits: list[int] = []
            for marker in _SPECIAL:
                i = buf.find(marker)
                while i >= 0:
                    hits.append(buf.rfind(b"\n", 0, i) + 1)
                    i = buf.find(marker, i + 1)
            for start in sorted(set(hits)):
                end = buf.find(b"\n", start)
                line = buf[start:] if end < 0 else buf[start:end]
                try:
                    rec = _loads(line)
                except ValueError:
                    continue  # a torn last line; stream_ops reports damage elsewhere
                if isinstance(rec, dict):
                    yield base + start, rec
            base += len(buf)


HORIZON_SLACK_NS = 1_000_000_000  # records of concurrent writers are not in exact time order


class OpStream:
    """Iterates a history's operations in ``OpChunk``s (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, chunk: int = CHUNK) -> None:
        self.path = Path(path)
        self.chunk = chunk
        self.path_names: list[str] = []
        self._path_codes: dict[str, int] = {}
        self.end_ns = 0  # latest time of any record (known once the stream is consumed)
        self.first_ns: int | None = None  # earliest invoke of any operation
        self.torn_tail = False
        self.operations = 0
        self.records = 0
        # after each chunk: no operation still to come was invoked before this (the
        # earliest invoke still in flight, less a slack for records written out of order)
        self.horizon_ns = 0
        # after each chunk: writer -> the lowest seq of its writes still in flight (a
        # writer issues its seqs in order, so every lower seq has completed or was a read)
        self.pending_floor: dict[int, int] = {}

    def path_code(self, name: str | None) -> int:
        if name is None:
            return -1
        code = self._path_codes.get(name)
        if code is None:
            code = self._path_codes[name] = len(self.path_names)
            self.path_names.append(name)
        return code

    def __iter__(self) -> Iterator[OpChunk]:
        pending: dict[int, tuple[int, ...]] = {}
        invoked: list[int] = []  # per completed op, flat: its 9 invoke fields
        done: list[int] = []  # per completed op, flat: op, time, outcome, path, offset
        values: list[Any] = []
        codes = self._path_codes
        end = 0
        bad: tuple[int, str] | None = None
        offset = 0
        with _open(self.path) as fh:
            for lineno, line in enumerate(fh, start=1):
                at = offset
                offset += len(line)
                if bad is not None:
                    raise HistoryError(f"{self.path}:{bad[0]}: not a JSON record ({bad[1]}); "
                                       "file is damaged")
                if line[0] != 123 and not line.strip():  # 123: "{"
                    continue
                try:
                    rec = _loads(line)
                    kind = rec["type"]
                except (ValueError, TypeError, KeyError) as exc:
                    bad = (lineno, str(exc).split(":")[0])
                    continue
                self.records += 1
                t = rec.get("time", 0)
                if t > end:
                    end = t
                try:
                    if kind == "invoke":
                        f = rec["f"]
                        pending[rec["op"]] = (
                            READ if f == "read" else WRITE if f == "write" else OTHER,
                            rec["process"], rec["lba"], rec["count"], rec.get("writer", -1),
                            rec.get("seq", -1), rec.get("generation", 0), t, at)
                    elif kind in OUTCOME_CODES:
                        op = rec["op"]
                        inv = pending.pop(op, None)
                        if inv is None:
                            raise KeyError(f"op {op} completes but was never invoked")
                        name = rec.get("path")
                        code = -1 if name is None else codes.get(name)
                        if code is None:
                            code = self.path_code(name)
                        invoked.extend(inv)
                        done.extend((op, t, OUTCOME_CODES[kind], code, at))
                        values.append(rec.get("value") if inv[0] == READ else None)
                        if len(values) >= self.chunk:
                            self.horizon_ns = min((v[7] for v in pending.values()),
                                                  default=end) - HORIZON_SLACK_NS
                            floor: dict[int, int] = {}
                            for v in pending.values():
                                if v[0] == WRITE and v[5] < floor.get(v[4], v[5] + 1):
                                    floor[v[4]] = v[5]
                            self.pending_floor = floor
                            yield self._flush(invoked, done, values)
                except (KeyError, TypeError) as exc:
                    raise HistoryError(f"{self.path}: record {rec.get('index', '?')} ({kind}) "
                                       f"is malformed: {exc}") from exc
        self.torn_tail = bad is not None
        for op, inv in sorted(pending.items()):
            invoked.extend(inv)
            done.extend((op, NEVER, PENDING, -1, -1))
            values.append(None)
        self.end_ns = end
        self.horizon_ns = end + 1  # nothing is left to come
        self.pending_floor = {}
        if values:
            yield self._flush(invoked, done, values)

    def _flush(self, invoked: list[int], done: list[int], values: list[Any]) -> OpChunk:
        a = np.array(invoked, dtype=np.int64).reshape(-1, 9)
        b = np.array(done, dtype=np.int64).reshape(-1, 5)
        first = int(a[:, 7].min())
        self.first_ns = first if self.first_ns is None else min(self.first_ns, first)
        self.operations += len(a)
        out = OpChunk(
            op=b[:, 0].copy(), f=a[:, 0].astype(np.int8), process=a[:, 1].copy(),
            lba=a[:, 2].copy(), count=a[:, 3].copy(), writer=a[:, 4].copy(),
            seq=a[:, 5].copy(), generation=a[:, 6].copy(), invoke=a[:, 7].copy(),
            complete=b[:, 1].copy(), outcome=b[:, 2].astype(np.int8),
            path=b[:, 3].astype(np.int16), invoke_at=a[:, 8].copy(), complete_at=b[:, 4].copy(),
            values=list(values))
        invoked.clear()
        done.clear()
        values.clear()
        return out


def stream_ops(path: str | os.PathLike[str], *, chunk: int = CHUNK) -> OpStream:
    """An ``OpStream`` over a history file (iterate it once)."""
    return OpStream(path, chunk=chunk)


def read_records(path: str | os.PathLike[str], offsets: list[int]) -> list[dict[str, Any]]:
    """The records at these byte offsets (to cite an operation in a problem)."""
    out: list[dict[str, Any]] = []
    with _open(Path(path)) as fh:
        for off in offsets:
            if off < 0:
                continue
            fh.seek(off)
            try:
                rec = _loads(fh.readline())
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
    return out


def abandoned_at(path: str | os.PathLike[str], offsets: list[int]) -> list[bool]:
    """For each completion record offset: whether its client abandoned it by crashing
    (error ``ABANDONED``: no caller saw that error)."""
    out = []
    with _open(Path(path)) as fh:
        for off in offsets:
            rec: Any = None
            if off >= 0:
                fh.seek(off)
                try:
                    rec = _loads(fh.readline())
                except ValueError:
                    rec = None
            out.append(isinstance(rec, dict) and rec.get("error") == ABANDONED)
    return out


@dataclass(slots=True)
class OpIndex:
    """Every operation of a history as columns, in invoke order, to answer "which operations
    were invoked (or completed) in this window" by binary search instead of a pass over the
    history: built once (``StreamedHistory.index``), asked once per fault window."""

    invoke: np.ndarray  # int64 ns, ascending
    complete: np.ndarray  # int64 ns, NEVER when it never completed
    outcome: np.ndarray  # int8: OK, INFO, FAIL, PENDING
    f: np.ndarray  # int8: READ, WRITE, OTHER
    path: np.ndarray  # int16: index into ``path_names``, -1 for none
    complete_at: np.ndarray  # int64 byte offset of the completion line, -1 for none
    order: np.ndarray  # int64: the operation's position in the history's own order
    path_names: list[str]
    by_complete: np.ndarray = field(init=False)  # rows in completion order
    completes: np.ndarray = field(init=False)  # ``complete`` in that order

    def __post_init__(self) -> None:
        self.by_complete = np.argsort(self.complete, kind="stable")
        self.completes = self.complete[self.by_complete]

    @classmethod
    def of(cls, columns: dict[str, np.ndarray], path_names: list[str]) -> OpIndex:
        """From columns in the history's own order (``order`` is that position)."""
        rows = np.argsort(columns["invoke"], kind="stable")
        return cls(**{k: np.asarray(columns[k])[rows] for k in (
            "invoke", "complete", "outcome", "f", "path", "complete_at")},
            order=rows.astype(np.int64), path_names=list(path_names))

    @classmethod
    def of_stream(cls, stream: OpStream) -> OpIndex:
        """One pass over a history's operations."""
        keys = ("invoke", "complete", "outcome", "f", "path", "complete_at")
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for chunk in stream:
            for k in keys:
                parts[k].append(getattr(chunk, k))
        empty = {"outcome": np.int8, "f": np.int8, "path": np.int16}
        columns = {k: np.concatenate(v) if v else np.empty(0, dtype=empty.get(k, np.int64))
                   for k, v in parts.items()}
        return cls.of(columns, stream.path_names)

    def invoked(self, lo: int, hi: int) -> np.ndarray:
        """Rows invoked in [lo, hi] (ascending invoke)."""
        a = np.searchsorted(self.invoke, lo, side="left")
        b = np.searchsorted(self.invoke, hi, side="right")
        return np.arange(a, b)

    def completed(self, lo: int, hi: int) -> np.ndarray:
        """Rows completed in [lo, hi] (ascending completion; never-completed ones excluded
        unless ``hi`` is ``NEVER``)."""
        a = np.searchsorted(self.completes, lo, side="left")
        b = np.searchsorted(self.completes, hi, side="right")
        return self.by_complete[a:b]

    def paths_ending(self, suffix: str) -> np.ndarray:
        """Path codes whose name ends with ``suffix``."""
        return np.array([i for i, n in enumerate(self.path_names) if n.endswith(suffix)],
                        dtype=np.int16)


@dataclass(frozen=True, slots=True)
class OpView:
    """One operation as a small value, made while streaming and let go after use."""

    f: str  # "read", "write" or "other"
    outcome: str  # "ok", "fail" or "info" (never completed counts as info)
    invoke_ns: int
    complete_ns: int | None
    path: str | None
    complete_at: int  # byte offset of the completion line, -1 when none

    @property
    def latency_ns(self) -> int | None:
        return None if self.complete_ns is None else self.complete_ns - self.invoke_ns


class StreamedHistory:
    """A history's outline (faults, replica states, path events) plus its operations as a
    stream that is read again on each pass over ``ops``: the same surface the chaos
    evidence and verdict read from a ``RecordedHistory``, in memory that does not grow
    with the number of operations."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        found = outline(self.path)
        self.header = found.header
        self.faults = found.faults
        self.replicas = found.replicas
        self.paths = found.paths
        self._index: OpIndex | None = None

    def index(self) -> OpIndex:
        """Every operation as columns in invoke order (one pass, the first time only)."""
        if self._index is None:
            self._index = OpIndex.of_stream(stream_ops(self.path))
        return self._index

    @property
    def ops(self) -> Iterator[OpView]:
        stream = stream_ops(self.path)
        fnames = ("read", "write", "other")
        for chunk in stream:
            names = stream.path_names
            for i in range(len(chunk)):
                done = int(chunk.complete[i])
                code = int(chunk.outcome[i])
                p = int(chunk.path[i])
                yield OpView(fnames[int(chunk.f[i])],
                             "info" if code == PENDING else OUTCOME_NAMES[code],
                             int(chunk.invoke[i]), None if done == NEVER else done,
                             names[p] if p >= 0 else None, int(chunk.complete_at[i]))

    def abandoned(self, complete_at: list[int]) -> list[bool]:
        """For each completion line offset: whether its client abandoned it by crashing."""
        return abandoned_at(self.path, complete_at)

    def error_at(self, complete_at: int) -> str | None:
        """The error text of the completion record at this byte offset."""
        recs = read_records(self.path, [complete_at])
        return str(recs[0].get("error")) if recs and recs[0].get("error") is not None else None

    def error(self, op: OpView) -> str | None:
        """The error text an operation completed with (read back from its record)."""
        return self.error_at(op.complete_at)
