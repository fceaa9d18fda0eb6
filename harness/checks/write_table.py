"""The writes of a streamed history, in numpy columns per writer, sorted by ``seq``.

A read records which write each block held as ``[writer, seq]`` (the block's
stamp), and judging it needs that write's times, outcome and blocks. Each
write is one row of its writer's columns, 57 bytes (seq, invoke and completion
time, first and stop checker block, outcome, op id and the byte offsets of its
two records, to cite them), no Python object. A writer's writes complete
almost in ``seq`` order (out of order only as deep as its queue), so each
chunk's rows are appended, and only the few rows they overtake are re-sorted;
the columns grow by half when full, never copied per chunk.

A write not yet completed when a read returns it is simply not in the table
yet: its completion is later than anything already streamed, which is what the
checkers assume for a missing write.

So that memory grows with the device and not with the run, ``compact`` drops
the rows of *dead* writes: ``ok`` writes that later ``ok`` writes (invoked after
each completed) overwrote on every block they wrote, every such overwrite
complete before the stream's horizon (the earliest invoke of an operation still
in flight). No read still to come began before that horizon, so a read that
returns a dead write is certainly stale, and a block that holds one at the end
is stale: that is all a checker needs to know of it. A dead write keeps only its
seq, in ranges of consecutive dead seqs per writer (a range is broken only by a
write still live, so there are about as many as live writes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from harness.workload.history_stream import NEVER, PENDING, WRITE, OpChunk

_INT32_MAX = np.iinfo(np.int32).max
_INT64_MAX = int(np.iinfo(np.int64).max)
COLUMNS = (("seq", np.int64), ("invoke", np.int64), ("end", np.int64), ("first", np.int32),
           ("stop", np.int32), ("outcome", np.int8), ("op", np.int64), ("invoke_at", np.int64),
           ("complete_at", np.int64))


class _Writer:
    """One writer's rows, sorted by seq, in arrays with room to grow; the seqs of its
    dead writes as sorted, disjoint ranges [start, stop)."""

    def __init__(self) -> None:
        self.n = 0
        self.cols = {name: np.empty(0, dtype=dt) for name, dt in COLUMNS}
        self.dead_start = np.empty(0, dtype=np.int64)
        self.dead_stop = np.empty(0, dtype=np.int64)

    def is_dead(self, seq: np.ndarray) -> np.ndarray:
        if not len(self.dead_start):
            return np.zeros(len(seq), dtype=bool)
        pos = np.searchsorted(self.dead_start, seq, side="right") - 1
        return (pos >= 0) & (seq < self.dead_stop[np.maximum(pos, 0)])

    def drop(self, rows: np.ndarray, floor: int | None = None) -> None:
        """Forget the rows ``rows`` (sorted indexes), keeping their seqs as dead ranges.
        Below ``floor`` (no write of a lower seq is still in flight; None: unknown) two
        ranges also join across seqs that no row holds: those were reads (a writer's
        reads and writes share one seq counter), so the ranges stay about as many as
        the live writes. A stamp with such a read's seq cannot be a write, so calling it
        dead (stale) instead of never issued changes no verdict, only its wording."""
        if not len(rows):
            return
        seqs = self.cols["seq"][rows]
        keep = np.ones(self.n, dtype=bool)
        keep[rows] = False
        k = int(keep.sum())
        for name, _ in COLUMNS:
            self.cols[name][:k] = self.cols[name][:self.n][keep]
        self.n = k
        if len(self.cols["seq"]) > 4 * max(k, 1024):  # give back the room it grew to
            size = max(2 * k, 1024)
            for name, _ in COLUMNS:
                self.cols[name] = self.cols[name][:size].copy()
        breaks = np.flatnonzero(np.diff(seqs) != 1) + 1
        starts = np.concatenate([self.dead_start, seqs[np.r_[0, breaks]]])
        stops = np.concatenate([self.dead_stop, seqs[np.r_[breaks - 1, len(seqs) - 1]] + 1])
        order = np.argsort(starts, kind="stable")
        starts, stops = starts[order], stops[order]
        # merge touching ranges: a range starts anew where it does not reach the next one
        reach = np.maximum.accumulate(stops)
        new = np.r_[True, starts[1:] > reach[:-1]]
        idx = np.flatnonzero(new)
        self.dead_start = starts[idx]
        self.dead_stop = np.maximum.reduceat(stops, idx) if len(idx) else stops[:0]
        if floor is not None and len(self.dead_start) > 1:
            live = self.cols["seq"][:self.n]
            gap_a, gap_b = self.dead_stop[:-1], self.dead_start[1:]
            empty = np.searchsorted(live, gap_b) == np.searchsorted(live, gap_a)
            empty &= gap_b <= floor
            keep = np.r_[True, ~empty]  # a range whose gap before it is empty joins it
            first = np.flatnonzero(keep)
            self.dead_stop = np.r_[self.dead_stop[first[1:] - 1], self.dead_stop[-1]]
            self.dead_start = self.dead_start[first]

    def add(self, rows: dict[str, np.ndarray]) -> None:
        k = len(rows["seq"])
        if self.n + k > len(self.cols["seq"]):
            size = max(self.n + k, len(self.cols["seq"]) * 3 // 2, 1024)
            for name, dt in COLUMNS:
                grown = np.empty(size, dtype=dt)
                grown[:self.n] = self.cols[name][:self.n]
                self.cols[name] = grown
        seq = self.cols["seq"]
        at = int(np.searchsorted(seq[:self.n], rows["seq"][0])) if self.n else 0
        if at == self.n:  # the usual case: every new row comes after the old ones
            for name, _ in COLUMNS:
                self.cols[name][self.n:self.n + k] = rows[name]
        else:  # re-sort the overtaken tail with the new rows
            merged = {name: np.concatenate([self.cols[name][at:self.n], rows[name]])
                      for name, _ in COLUMNS}
            order = np.argsort(merged["seq"], kind="stable")
            for name, _ in COLUMNS:
                self.cols[name][at:self.n + k] = merged[name][order]
        self.n += k

    def find(self, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, found) of each seq."""
        have = self.cols["seq"][:self.n]
        if not self.n:
            return np.zeros(len(seq), dtype=np.int64), np.zeros(len(seq), dtype=bool)
        pos = np.minimum(np.searchsorted(have, seq), self.n - 1)
        return pos, have[pos] == seq


@dataclass(slots=True)
class Found:
    """Columns of the writes looked up, aligned with the question (valid where ``found``;
    ``dead``: not found because ``compact`` dropped it, certainly overwritten)."""

    found: np.ndarray
    invoke: np.ndarray
    end: np.ndarray
    outcome: np.ndarray
    first: np.ndarray
    stop: np.ndarray
    dead: np.ndarray


# what ``compact`` asks of the per-block state: for each (block, after, before), did an ok
# write invoked after ``after`` and completed before ``before`` certainly reach the block?
Overwritten = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class WriteTable:
    """Every completed write of this run's generation, by writer and seq."""

    def __init__(self, generation: int, block_size: int, logical_block_size: int) -> None:
        self.generation = generation
        self.lbs = logical_block_size
        self.block_size = block_size
        self._writers: dict[int, _Writer] = {}
        self.added = 0  # rows ever added
        self.dropped = 0  # rows ``compact`` forgot (dead writes)

    @property
    def writes(self) -> int:
        """Writes of this run's generation taken (live or dead)."""
        return self.added

    @property
    def live(self) -> int:
        """Rows held (writes not dropped)."""
        return sum(w.n for w in self._writers.values())

    def compact(self, overwritten: Overwritten, horizon: int,
                floors: Mapping[int, int] | None = None) -> int:
        """Drop every dead write (see the module docstring): ``ok``, completed before
        ``horizon``, and on every block it wrote ``overwritten`` by an ``ok`` write invoked
        after it completed that itself completed before ``horizon``. ``floors``: writer ->
        its lowest seq still in flight (``OpStream.pending_floor``), so dead ranges join
        across read seqs below it. Returns how many."""
        dropped = 0
        for writer, tab in self._writers.items():
            c, n = tab.cols, tab.n
            idx = np.flatnonzero((c["outcome"][:n] == 0) & (c["end"][:n] < horizon))
            if not len(idx):
                continue
            first = c["first"][idx].astype(np.int64)
            nblk = np.maximum(c["stop"][idx].astype(np.int64) - first, 0)
            total = int(nblk.sum())
            row = np.repeat(np.arange(len(idx)), nblk)
            block = np.repeat(first, nblk) + (np.arange(total) - np.repeat(np.cumsum(nblk)
                                                                             - nblk, nblk))
            certainly = overwritten(block, np.repeat(c["end"][idx], nblk),
                                    np.full(total, horizon, dtype=np.int64))
            alive = np.bincount(row[~certainly], minlength=len(idx))
            dead = idx[(alive == 0) & (nblk > 0)]
            # a writer with no write in flight: every seq below its dead ones was issued
            tab.drop(dead, None if floors is None else floors.get(writer, _INT64_MAX))
            dropped += len(dead)
        self.dropped += dropped
        return dropped

    def add(self, chunk: OpChunk) -> None:
        """Take the writes of a chunk (``info`` writes may still land: end = NEVER)."""
        mine = (chunk.f == WRITE) & (chunk.generation == self.generation) & (chunk.seq >= 0) \
            & (chunk.writer >= 0)
        if not mine.any():
            return
        writer, seq = chunk.writer[mine], chunk.seq[mine]
        order = np.lexsort((seq, writer))
        writer, seq = writer[order], seq[order]
        lba, count = chunk.lba[mine][order], chunk.count[mine][order]
        outcome = chunk.outcome[mine][order]
        rows = {
            "seq": seq,
            "invoke": chunk.invoke[mine][order],
            "end": np.where((outcome == 0) | (outcome == 2), chunk.complete[mine][order],
                            NEVER),
            "first": np.minimum(lba * self.lbs // self.block_size, _INT32_MAX).astype(np.int32),
            "stop": np.minimum((lba + count) * self.lbs // self.block_size,
                               _INT32_MAX).astype(np.int32),
            "outcome": np.where(outcome == PENDING, 1, outcome).astype(np.int8),
            "op": chunk.op[mine][order],
            "invoke_at": chunk.invoke_at[mine][order],
            "complete_at": chunk.complete_at[mine][order],
        }
        starts = np.flatnonzero(np.append(True, writer[1:] != writer[:-1]))
        for a, b in zip(starts.tolist(), [*starts[1:].tolist(), len(writer)], strict=True):
            w = int(writer[a])
            tab = self._writers.get(w)
            if tab is None:
                tab = self._writers[w] = _Writer()
            tab.add({name: col[a:b] for name, col in rows.items()})
        self.added += int(mine.sum())

    def lookup(self, writer: np.ndarray, seq: np.ndarray) -> Found:
        """The writes (writer[i], seq[i]), vectorised per writer."""
        n = len(writer)
        out = Found(np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64),
                    np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int8),
                    np.zeros(n, dtype=np.int32), np.zeros(n, dtype=np.int32),
                    np.zeros(n, dtype=bool))
        for w in np.unique(writer).tolist():
            tab = self._writers.get(w)
            if tab is None:
                continue
            sel = np.flatnonzero(writer == w)
            pos, found = tab.find(seq[sel])
            out.found[sel] = found
            out.dead[sel] = ~found & tab.is_dead(seq[sel])
            for name in ("invoke", "end", "outcome", "first", "stop"):
                getattr(out, name)[sel] = tab.cols[name][pos]
        return out

    def get(self, writer: int, seq: int) -> tuple[int, int, int, int, int] | None:
        """(invoke, end, outcome, first block, stop block) of a write, or None."""
        tab = self._writers.get(writer)
        if tab is None or not tab.n or seq < 0:
            return None
        i = int(tab.cols["seq"][:tab.n].searchsorted(seq))
        if i >= tab.n or int(tab.cols["seq"][i]) != seq:
            return None
        c = tab.cols
        return (int(c["invoke"][i]), int(c["end"][i]), int(c["outcome"][i]), int(c["first"][i]),
                int(c["stop"][i]))

    def is_dead(self, writer: np.ndarray, seq: np.ndarray) -> np.ndarray:
        """Which writes (writer[i], seq[i]) ``compact`` dropped (certainly overwritten)."""
        out = np.zeros(len(writer), dtype=bool)
        for w in np.unique(writer).tolist():
            tab = self._writers.get(w)
            if tab is not None:
                sel = np.flatnonzero(writer == w)
                out[sel] = tab.is_dead(np.asarray(seq)[sel])
        return out

    def columns(self) -> dict[str, np.ndarray]:
        """Every write in (writer, seq) order, one array per column plus ``writer``."""
        tabs = sorted(self._writers.items())
        out = {name: np.concatenate([np.zeros(0, dtype=dt),
                                     *(t.cols[name][:t.n] for _, t in tabs)])
               for name, dt in COLUMNS}
        out["writer"] = np.concatenate([np.zeros(0, dtype=np.int64),
                                        *(np.full(t.n, w, dtype=np.int64) for w, t in tabs)])
        return out

    def nbytes(self) -> int:
        return sum(a.nbytes for t in self._writers.values() for a in
                   (*t.cols.values(), t.dead_start, t.dead_stop))
