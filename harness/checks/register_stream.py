"""Reads during the run, judged from a stream: ``register``'s semantics in per-block arrays.

The model is ``harness.checks.register``'s (each checker block a register; a
read may return a write that did not fail, was invoked before the read
completed and that no ``ok`` write certainly overwrote before the read began, or
the initial content when no ``ok`` write completed before it began). Here the
history is streamed, so instead of every write of every block the checker keeps
per block:

- the last ``RING`` ``ok`` writes to reach it (invoke and completion time);
- for the writes pushed out of that ring, the latest invoke and the latest
  completion (enough to prove an overwrite when all of them completed before
  the read began; otherwise the read is counted ``unjudged``, never guessed);
- the first ``ok`` completion (a read of initial content after it is stale).

A write's own times, outcome and blocks come from ``write_table.WriteTable``
(a write it dropped as dead was overwritten everywhere before any read still to
come began: a read that returns it is a ``stale_read``). A
read that returned a write not completed yet is judged when that write
completes (or at the end of the history, where a write never issued is a
``phantom_read``). Problems are ``register``'s kinds: ``stale_read``,
``future_read``, ``phantom_read``, ``torn_read``, ``misplaced_read``,
``corrupt_read``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.checks.verdict import Problem, Verdict
from harness.checks.write_table import WriteTable
from harness.workload.history_stream import NEVER, OK, READ, WRITE, OpChunk, read_records

RING = 4
MAX_PROBLEMS = 1000
INITIAL = -1
FAIL_CODE = 2


@dataclass(slots=True)
class ReadBlocks:
    """What a chunk's ``ok`` reads returned, one row per block: (chunk row, block, writer,
    seq), the initial content as writer and seq ``INITIAL``; blocks that are not one
    write or the initial content (torn, corrupt, another run's) are in ``odd``."""

    rows: np.ndarray  # (n, 4) int64, reads in completion order
    odd: list[tuple[int, int, Any]]
    reads: int
    blocks: int


def read_blocks(chunk: OpChunk, block_size: int, lbs: int, initial_zero: bool) -> ReadBlocks:
    """Decode the values a chunk's ``ok`` reads recorded (``writers.observe``)."""
    reads = np.flatnonzero((chunk.f == READ) & (chunk.outcome == OK))
    reads = reads[np.argsort(chunk.complete[reads], kind="stable")]
    rows: list[tuple[int, int, int, int]] = []
    odd: list[tuple[int, int, Any]] = []
    n_reads = n_blocks = 0
    values, lba = chunk.values, chunk.lba
    for i in reads.tolist():
        value = values[i]
        if not isinstance(value, list):
            continue
        n_reads += 1
        n_blocks += len(value)
        first = int(lba[i]) * lbs // block_size
        for k, v in enumerate(value):
            if v is None:
                rows.append((i, first + k, INITIAL, INITIAL))
            elif type(v) is list and len(v) == 2:
                rows.append((i, first + k, v[0], v[1]))
            elif isinstance(v, dict) and "torn" not in v and not initial_zero:
                rows.append((i, first + k, INITIAL, INITIAL))  # another run's: initial
            else:
                odd.append((i, first + k, v))
    arr = np.array(rows, dtype=np.int64).reshape(-1, 4)
    return ReadBlocks(arr, odd, n_reads, n_blocks)


class StreamRegisterCheck:
    """Feeds on ``OpChunk``s after the ``WriteTable`` took them (see the module docstring)."""

    def __init__(self, num_blocks: int, block_size: int, logical_block_size: int,
                 table: WriteTable, history_path: str | os.PathLike[str] | None = None,
                 initial: str = "unknown") -> None:
        self.nb = num_blocks
        self.block_size = block_size
        self.lbs = logical_block_size
        self.table = table
        self.history_path = history_path
        self.initial_zero = initial == "zero"
        self.ring_invoke = np.full((num_blocks, RING), -1, dtype=np.int64)
        self.ring_complete = np.full((num_blocks, RING), NEVER, dtype=np.int64)
        self.ring_next = np.zeros(num_blocks, dtype=np.int8)
        self.out_invoke = np.full(num_blocks, -1, dtype=np.int64)
        self.out_complete = np.full(num_blocks, -1, dtype=np.int64)
        self.first_ok = np.full(num_blocks, NEVER, dtype=np.int64)
        self.deferred: list[tuple[int, int, int, int, int, int, int, int]] = []
        self.problems: list[Problem] = []
        self.count = 0
        self.reads = 0
        self.blocks = 0
        self.unjudged = 0
        self.paths: list[str] = []

    # -- the per-block state ------------------------------------------------------------
    def _take_writes(self, chunk: OpChunk) -> None:
        ok = np.flatnonzero((chunk.f == WRITE) & (chunk.outcome == OK)
                            & (chunk.generation == self.table.generation))
        if not len(ok):
            return
        ok = ok[np.argsort(chunk.complete[ok], kind="stable")]
        first = chunk.lba[ok] * self.lbs // self.block_size
        stop = np.minimum((chunk.lba[ok] + chunk.count[ok]) * self.lbs // self.block_size,
                          self.nb)
        n = stop - first
        keep = n > 0
        first, n = first[keep], n[keep]
        blocks = np.repeat(first, n) + (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n,
                                                                             n))
        inv = np.repeat(chunk.invoke[ok][keep], n)
        cmp_ = np.repeat(chunk.complete[ok][keep], n)
        np.minimum.at(self.first_ok, blocks, cmp_)
        # one slot per round: a block written several times in this chunk takes its writes
        # in completion order, round after round
        order = np.lexsort((cmp_, blocks))
        blocks, inv, cmp_ = blocks[order], inv[order], cmp_[order]
        start = np.flatnonzero(np.append(True, blocks[1:] != blocks[:-1]))
        rank = np.arange(len(blocks)) - np.repeat(start, np.diff(np.append(start,
                                                                         len(blocks))))
        for r in range(int(rank.max()) + 1):
            sel = rank == r
            b = blocks[sel]
            slot = self.ring_next[b].astype(np.int64)
            old_inv, old_cmp = self.ring_invoke[b, slot], self.ring_complete[b, slot]
            used = old_cmp != NEVER
            self.out_invoke[b[used]] = np.maximum(self.out_invoke[b[used]], old_inv[used])
            self.out_complete[b[used]] = np.maximum(self.out_complete[b[used]], old_cmp[used])
            self.ring_invoke[b, slot] = inv[sel]
            self.ring_complete[b, slot] = cmp_[sel]
            self.ring_next[b] = ((slot + 1) % RING).astype(np.int8)

    def _overwritten(self, blocks: np.ndarray, after: np.ndarray,
                     before: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(certainly, unknown): an ok write invoked after ``after`` completed before
        ``before`` on each block; unknown where only the evicted writes could tell."""
        ri, rc = self.ring_invoke[blocks], self.ring_complete[blocks]
        certainly = ((ri > after[:, None]) & (rc < before[:, None])).any(axis=1)
        out = (self.out_invoke[blocks] > after) & (self.out_invoke[blocks] >= 0)
        certainly |= out & (self.out_complete[blocks] < before)
        unknown = ~certainly & out & (self.out_complete[blocks] >= before)
        return certainly, unknown

    def certainly_overwritten(self, blocks: np.ndarray, after: np.ndarray,
                              before: np.ndarray) -> np.ndarray:
        """``WriteTable.compact``'s question: an ok write invoked after ``after`` and
        completed before ``before`` on each block (False past the device's end)."""
        out = np.zeros(len(blocks), dtype=bool)
        inside = (blocks >= 0) & (blocks < self.nb)
        if inside.any():
            out[inside] = self._overwritten(blocks[inside], after[inside], before[inside])[0]
        return out

    # -- reads ----------------------------------------------------------------------------
    def add(self, chunk: OpChunk, path_names: list[str] | None = None,
            blocks: ReadBlocks | None = None) -> None:
        """Judge a chunk's ``ok`` reads (``blocks``: already decoded by the caller)."""
        if path_names is not None:
            self.paths = path_names
        self._take_writes(chunk)
        if blocks is None:
            blocks = read_blocks(chunk, self.block_size, self.lbs, self.initial_zero)
        self.reads += blocks.reads
        self.blocks += blocks.blocks
        for i, b, v in blocks.odd:
            self._odd(chunk, i, b, v)
        if len(blocks.rows):
            self._judge(chunk, blocks.rows)
        self._retry_deferred(final=False)

    def _judge(self, chunk: OpChunk, rows: np.ndarray) -> None:
        i, b, w, s = rows.T
        inb = b < self.nb
        i, b, w, s = i[inb], b[inb], w[inb], s[inb]
        ri, rc = chunk.invoke[i], chunk.complete[i]
        initial = w == INITIAL
        stale_initial = initial & (self.first_ok[b] < ri)
        for j in np.flatnonzero(stale_initial).tolist():
            self._report(chunk, int(i[j]), int(b[j]), "stale_read",
                         "returned initial content after an ok write to it completed")
        wr = ~initial
        if not wr.any():
            return
        i, b, w, s, ri, rc = i[wr], b[wr], w[wr], s[wr], ri[wr], rc[wr]
        rows = self.table.lookup(w, s)
        found = rows.found
        for j in np.flatnonzero(rows.dead).tolist():  # dropped: overwritten before the read
            self._report(chunk, int(i[j]), int(b[j]), "stale_read",
                         f"returned write w{int(w[j])}#{int(s[j])}, which ok writes invoked "
                         "after it completed had overwritten on every block it wrote before "
                         "the read began")
        for j in np.flatnonzero(~found & ~rows.dead).tolist():  # not completed: judge later
            self.deferred.append((int(chunk.op[i[j]]), int(b[j]), int(w[j]), int(s[j]),
                                  int(ri[j]), int(rc[j]), int(chunk.invoke_at[i[j]]),
                                  int(chunk.complete_at[i[j]])))
        i, b, w, s, ri, rc = (a[found] for a in (i, b, w, s, ri, rc))
        invoke, end, outcome, first, stop = (a[found] for a in (
            rows.invoke, rows.end, rows.outcome, rows.first, rows.stop))
        bad = np.zeros(len(b), dtype=np.int8)  # 0: a possible value of the block
        bad[invoke >= rc] = 3  # invoked after the read
        bad[(b < first) | (b >= stop)] = 2  # never wrote this block
        bad[outcome == FAIL_CODE] = 1  # failed
        for j in np.flatnonzero(bad > 0).tolist():
            kind, note = self._bad_note(int(bad[j]), int(w[j]), int(s[j]))
            self._report(chunk, int(i[j]), int(b[j]), kind, note)
        fine = bad == 0
        certainly, unknown = self._overwritten(b, np.where(end == NEVER, NEVER - 1, end), ri)
        self.unjudged += int((unknown & fine).sum())
        for j in np.flatnonzero(certainly & fine).tolist():
            self._report(chunk, int(i[j]), int(b[j]), "stale_read",
                         f"returned write w{int(w[j])}#{int(s[j])} after an ok write "
                         "invoked after it completed had overwritten it")

    @staticmethod
    def _bad_note(code: int, w: int, s: int) -> tuple[str, str]:
        name = f"write w{w}#{s}"
        return {1: ("phantom_read", f"returned {name}, which failed"),
                2: ("phantom_read", f"returned {name}, which never wrote here"),
                3: ("future_read", f"returned {name}, invoked after the read")}[code]

    def _retry_deferred(self, *, final: bool) -> None:
        if not self.deferred:
            return
        still = []
        for op, b, w, s, ri, rc, at_i, at_c in self.deferred:
            row = self.table.get(w, s)
            if row is None:
                if final:
                    self._report_at(op, b, at_i, at_c, "phantom_read",
                                    f"returned stamp w{w}#{s} never issued")
                else:
                    still.append((op, b, w, s, ri, rc, at_i, at_c))
                continue
            invoke, _end, outcome, first, stop = row
            code = 1 if outcome == FAIL_CODE else 2 if not first <= b < stop else \
                3 if invoke >= rc else 0
            if code:
                kind, note = self._bad_note(code, w, s)
                self._report_at(op, b, at_i, at_c, kind, note)
        self.deferred = still

    def _odd(self, chunk: OpChunk, i: int, b: int, v: Any) -> None:
        if isinstance(v, str):
            self._report(chunk, i, b, f"{v}_read", f"returned a {v} block")
        elif isinstance(v, dict) and "torn" in v:
            parts = v["torn"]
            if any(p == "x" for p in parts):
                self._report(chunk, i, b, "torn_read", "returned a torn block with damaged "
                             "sectors")
            else:
                self.unjudged += 1  # tearing at logical-block boundaries: register judges it
        elif isinstance(v, dict) and self.initial_zero:
            self._report(chunk, i, b, "misplaced_read", "returned a block of another run")

    # -- problems -------------------------------------------------------------------------
    def _report(self, chunk: OpChunk, i: int, b: int, kind: str, note: str) -> None:
        p = int(chunk.path[i])
        via = self.paths[p] if 0 <= p < len(self.paths) else None
        self._report_at(int(chunk.op[i]), b, int(chunk.invoke_at[i]),
                        int(chunk.complete_at[i]), kind, note, via)

    def _report_at(self, op: int, b: int, at_i: int, at_c: int, kind: str, note: str,
                   via: str | None = None) -> None:
        self.count += 1
        if len(self.problems) >= MAX_PROBLEMS:
            return
        records = read_records(self.history_path, [at_i, at_c]) if self.history_path else []
        self.problems.append(Problem(
            kind, f"{kind}: read op {op} via {via} at byte {b * self.block_size} {note}",
            offset=b * self.block_size, length=self.block_size, device=via, records=records,
            detail={"read": op}))

    def verdict(self) -> Verdict:
        self._retry_deferred(final=True)
        return Verdict("register", list(self.problems),
                       {"reads": self.reads, "blocks": self.blocks, "problems": self.count,
                        "unjudged": self.unjudged, "streamed": True})
