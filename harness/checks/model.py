"""The per-block register model the checkers share.

Every checker block (the history header's ``block_size``; every write covers
whole, aligned checker blocks) is an independent register, as in
``jepsen.independent``. Its possible values are the initial content and the
writes of this run that cover it. A write ``W`` is *certainly overwritten* on
block ``b`` by an acknowledged (``ok``) write ``W'`` to ``b`` that was invoked
after ``W`` completed (real-time order). ``fail`` writes never happened.
``info`` writes never complete: they may land at any time, so nothing
certainly overwrites them.

So after the run, block ``b`` may hold exactly the non-``fail`` writes ``W``
with ``end(W) >= M[b]``, where ``M[b]`` is the latest invoke time of an ``ok``
write to ``b`` (``end`` is the completion time, +inf for ``info``), or its
initial content when no ``ok`` write touched it. ``WriteIndex`` holds the
history's writes in numpy arrays so a whole device is judged vectorised; it is
built from a loaded history or, for long runs, from a streamed one's
``write_table.WriteTable`` (no Python object per write).
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.workload.history import HistoryHeader, Operation, RecordedHistory
from harness.workload.history_stream import read_records

if TYPE_CHECKING:
    from harness.checks.write_table import WriteTable

INF = np.iinfo(np.int64).max
OUTCOME_CODE = {"ok": 0, "info": 1, "fail": 2}


def _key(writer: np.ndarray | int, seq: np.ndarray | int) -> np.ndarray:
    return (np.asarray(writer, dtype=np.int64) << np.int64(40)) | np.asarray(seq, dtype=np.int64)


@dataclass(slots=True)
class BlockWrites:
    """The ``ok`` writes to one block, by invoke time, for real-time questions."""

    invoke: list[int]
    complete: list[int]
    suffix_min_complete: list[int]  # min completion over the ok writes from i on
    ops: list[int]  # write indexes

    def overwriter(self, after_ns: float, before_ns: float) -> int | None:
        """An ok write invoked after ``after_ns`` and complete before ``before_ns``, if any."""
        if after_ns >= INF:
            return None
        i = bisect.bisect_right(self.invoke, after_ns)
        if i >= len(self.invoke) or self.suffix_min_complete[i] >= before_ns:
            return None
        return next(self.ops[k] for k in range(i, len(self.invoke))
                    if self.complete[k] < before_ns)


class WriteIndex:
    """The writes of one run, indexed by stamp id and by checker block."""

    def __init__(self, history: RecordedHistory) -> None:
        h = history.header
        self.history: RecordedHistory | None = history
        gen = h.generation
        self.writes: list[Operation] | None = [o for o in history.writes
                                                if o.generation == gen]
        lbs = h.logical_block_size
        w = self.writes
        self._build(
            h,
            writer=np.array([o.writer for o in w], dtype=np.int64),
            seq=np.array([o.seq for o in w], dtype=np.int64),
            first=np.array([o.lba * lbs // h.block_size for o in w], dtype=np.int64),
            stop=np.array([(o.lba + o.count) * lbs // h.block_size for o in w], dtype=np.int64),
            invoke=np.array([o.invoke_ns for o in w], dtype=np.int64),
            end=np.array([INF if o.outcome == "info" or o.complete_ns is None
                          else o.complete_ns for o in w], dtype=np.int64),
            outcome=np.array([OUTCOME_CODE[o.outcome] for o in w], dtype=np.int8),
            op=np.array([o.op for o in w], dtype=np.int64))

    @classmethod
    def from_table(cls, header: HistoryHeader, table: WriteTable,
                   history_path: str | os.PathLike[str]) -> WriteIndex:
        """The same index from a streamed history's ``WriteTable`` (no ``Operation``s);
        records are read back from the file when a problem cites them."""
        self = cls.__new__(cls)
        self.history = None
        self.writes = None
        self._path = history_path
        c = table.columns()
        self._build(header, writer=c["writer"], seq=c["seq"],
                    first=c["first"].astype(np.int64), stop=c["stop"].astype(np.int64),
                    invoke=c["invoke"], end=c["end"], outcome=c["outcome"], op=c["op"])
        self._at = (c["invoke_at"], c["complete_at"])
        self._dead = table.is_dead
        return self

    _dead: Any = None  # the table's ``is_dead`` (writes it dropped, certainly overwritten)

    def is_dead(self, writer: np.ndarray, seq: np.ndarray) -> np.ndarray:
        """Which stamps are writes the streamed table dropped as overwritten everywhere
        (not in this index, yet issued and certainly overwritten: stale wherever found)."""
        if self._dead is None:
            return np.zeros(np.shape(writer), dtype=bool)
        return self._dead(np.asarray(writer, dtype=np.int64), np.asarray(seq, dtype=np.int64))

    def _build(self, h: HistoryHeader, *, writer: np.ndarray, seq: np.ndarray,
               first: np.ndarray, stop: np.ndarray, invoke: np.ndarray, end: np.ndarray,
               outcome: np.ndarray, op: np.ndarray) -> None:
        self.header = h
        self.block_size = h.block_size
        self.num_blocks = h.size // h.block_size
        n = len(writer)
        self.writer, self.seq, self.first, self.stop = writer, seq, first, stop
        self.invoke, self.end, self.outcome, self.op = invoke, end, outcome, op
        keys = _key(self.writer, self.seq)
        self._order = np.argsort(keys, kind="stable")
        self._sorted_keys = keys[self._order]
        # M[b]: latest invoke of an ok write covering b; who[b]: that write (-1: none)
        self.latest_ok_invoke = np.full(self.num_blocks, -1, dtype=np.int64)
        self.latest_ok = np.full(self.num_blocks, -1, dtype=np.int64)
        for i in np.flatnonzero(self.outcome == OUTCOME_CODE["ok"]).tolist():
            s, e, t = int(self.first[i]), int(self.stop[i]), int(self.invoke[i])
            seg = self.latest_ok_invoke[s:e]
            newer = seg < t
            seg[newer] = t
            self.latest_ok[s:e][newer] = i
        self.n = n
        self._block_writes: dict[int, BlockWrites] = {}

    def lookup(self, writer: np.ndarray, seq: np.ndarray) -> np.ndarray:
        """Write index for each (writer, seq) stamp, -1 when this run never issued it."""
        keys = _key(writer, seq)
        if self.n == 0:
            return np.full(keys.shape, -1, dtype=np.int64)
        pos = np.searchsorted(self._sorted_keys, keys)
        pos = np.minimum(pos, self.n - 1)
        found = self._sorted_keys[pos] == keys
        return np.where(found, self._order[pos], -1)

    def lookup_one(self, writer: int, seq: int) -> int:
        return int(self.lookup(np.array([writer]), np.array([seq]))[0])

    def records(self, i: int) -> list[dict[str, Any]]:
        if self.writes is not None:
            return list(self.writes[i].records)
        return read_records(self._path, [int(self._at[0][i]), int(self._at[1][i])])

    def writes_covering(self, block: int) -> list[int]:
        hits = (self.first <= block) & (block < self.stop)
        return np.flatnonzero(hits).tolist()

    def prepare_blocks(self, blocks: set[int]) -> None:
        """Index the ok writes of many blocks in one pass (before many ``block_writes``)."""
        todo = {b for b in blocks if b not in self._block_writes}
        if not todo:
            return
        found: dict[int, list[int]] = {b: [] for b in todo}
        ok = np.flatnonzero(self.outcome == 0)
        order = ok[np.argsort(self.invoke[ok], kind="stable")]
        for i, s, e in zip(order.tolist(), self.first[order].tolist(),
                           self.stop[order].tolist(), strict=True):
            if e - s > len(found):
                for b in found:
                    if s <= b < e:
                        found[b].append(i)
            else:
                for b in range(s, e):
                    hit = found.get(b)
                    if hit is not None:
                        hit.append(i)
        for b, idx in found.items():
            self._block_writes[b] = self._make_block_writes(idx)

    def _make_block_writes(self, idx: list[int]) -> BlockWrites:
        complete = [int(self.end[i]) for i in idx]
        suffix: list[int] = complete[:]
        for k in range(len(suffix) - 2, -1, -1):
            suffix[k] = min(suffix[k], suffix[k + 1])
        return BlockWrites([int(self.invoke[i]) for i in idx], complete, suffix, idx)

    def block_writes(self, block: int) -> BlockWrites:
        """The ok writes of one block, by invoke time, with suffix minima of completion."""
        bw = self._block_writes.get(block)
        if bw is None:
            idx = [i for i in self.writes_covering(block) if self.outcome[i] == 0]
            idx.sort(key=lambda i: int(self.invoke[i]))
            bw = self._make_block_writes(idx)
            self._block_writes[block] = bw
        return bw

    def describe(self, i: int) -> str:
        outcome = ("ok", "info", "fail")[int(self.outcome[i])]
        return f"write w{int(self.writer[i])}#{int(self.seq[i])} (op {int(self.op[i])}, {outcome})"
