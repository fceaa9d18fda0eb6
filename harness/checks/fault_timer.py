"""The per-fault timer: what ``faults_report`` needs from a stream of ``OpChunk``s.

State is a few arrays per 5 ms bucket of history (the first and last ``ok``
completion, the longest operation ending there), the rare slow or failed operations
as rows, and each path's first ``ok`` completion at or after each heal (and each
extra mark: the end of a beyond-redundancy window), never one Python object per
operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.workload.history import FaultWindow
from harness.workload.history_stream import FAIL, INFO, NEVER, OK, PENDING, OpChunk

BUCKET_NS = 5_000_000


class _Rows:
    """A growable table of int64 rows (the rare slow or failed operations)."""

    COLS = ("invoke", "complete", "op", "outcome", "invoke_at", "complete_at")

    def __init__(self) -> None:
        self.data = np.empty((0, len(self.COLS)), dtype=np.int64)
        self._parts: list[np.ndarray] = []

    def add(self, chunk: OpChunk, mask: np.ndarray) -> None:
        if mask.any():
            self._parts.append(np.stack([chunk.invoke[mask], chunk.complete[mask],
                                         chunk.op[mask], chunk.outcome[mask].astype(np.int64),
                                         chunk.invoke_at[mask], chunk.complete_at[mask]],
                                        axis=1))

    def table(self) -> np.ndarray:
        if self._parts:
            self.data = np.concatenate([self.data, *self._parts])
            self._parts.clear()
        return self.data


class FaultTimer:
    """Accumulates what ``FaultReport`` needs from a stream of ``OpChunk``s."""

    def __init__(self, windows: Sequence[FaultWindow], stall_s: float,
                 marks: Sequence[int] = ()) -> None:
        """``marks``: more times (besides the heals) from which each path's return is
        measured (the end of each beyond-redundancy window)."""
        self.windows = list(windows)
        self.stall_ns = int(stall_s * 1e9)
        self.origin: int | None = None
        self.ok_min = np.empty(0, dtype=np.int64)
        self.ok_max = np.empty(0, dtype=np.int64)
        self.lat_max = np.empty(0, dtype=np.int64)
        self.lat_end = np.empty(0, dtype=np.int64)
        self.max_latency = 0
        self.slow = _Rows()
        self.errors = _Rows()
        self.path_first_ok: dict[int, int] = {}
        stops = [w.stop_ns for w in self.windows if w.stop_ns is not None] + list(marks)
        self.stops = np.array(sorted(set(stops)), dtype=np.int64)
        self.back: dict[int, np.ndarray] = {}  # path -> first ok completion >= each stop

    def _grow(self, n: int) -> None:
        if n <= len(self.ok_min):
            return
        size = max(n, 2 * len(self.ok_min), 1024)
        extra = size - len(self.ok_min)
        self.ok_min = np.concatenate([self.ok_min, np.full(extra, NEVER, dtype=np.int64)])
        self.ok_max = np.concatenate([self.ok_max, np.full(extra, -1, dtype=np.int64)])
        self.lat_max = np.concatenate([self.lat_max, np.full(extra, -1, dtype=np.int64)])
        self.lat_end = np.concatenate([self.lat_end, np.zeros(extra, dtype=np.int64)])

    def bucket(self, t: np.ndarray | int) -> Any:
        assert self.origin is not None
        return np.maximum((np.asarray(t, dtype=np.int64) - self.origin) // BUCKET_NS, 0)

    def add(self, chunk: OpChunk) -> None:
        done = chunk.outcome != PENDING
        if self.origin is None:
            first = [int(chunk.invoke.min())] + [w.start_ns for w in self.windows]
            self.origin = min(first) - 60 * 10**9  # room for records slightly out of order
        c = chunk.complete[done]
        if len(c):
            k = self.bucket(c)
            self._grow(int(k.max()) + 1)
            ok = chunk.outcome[done] == OK
            np.minimum.at(self.ok_min, k[ok], c[ok])
            np.maximum.at(self.ok_max, k[ok], c[ok])
            lat = c - chunk.invoke[done]
            self.max_latency = max(self.max_latency, int(lat.max()))
            order = np.lexsort((lat, k))
            ks = k[order]
            last = np.flatnonzero(np.append(ks[1:] != ks[:-1], True))
            kk, ll, cc = ks[last], lat[order][last], c[order][last]
            better = ll > self.lat_max[kk]
            self.lat_max[kk[better]] = ll[better]
            self.lat_end[kk[better]] = cc[better]
        self.slow.add(chunk, done & (chunk.complete - chunk.invoke > self.stall_ns))
        self.errors.add(chunk, (chunk.outcome == FAIL) | (chunk.outcome == INFO))
        ok_all = chunk.outcome == OK
        for p in np.unique(chunk.path[ok_all]).tolist():
            if p < 0:
                continue
            cp = np.sort(chunk.complete[ok_all & (chunk.path == p)])
            self.path_first_ok[p] = min(self.path_first_ok.get(p, NEVER), int(cp[0]))
            if len(self.stops):
                j = np.searchsorted(cp, self.stops)
                cand = np.where(j < len(cp), cp[np.minimum(j, len(cp) - 1)], NEVER)
                best = self.back.setdefault(p, np.full(len(self.stops), NEVER, dtype=np.int64))
                np.minimum(best, cand, out=best)

    def pending(self, chunk: OpChunk) -> None:
        """Operations that never completed: slow by definition (until the history ends)."""
        self.slow.add(chunk, chunk.outcome == PENDING)

    def gaps(self, first_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """Every interval with no ok completion, as (from, to), in time order."""
        full = np.flatnonzero(self.ok_max >= 0)
        if not len(full):
            return np.array([first_ns]), np.array([end_ns])
        starts = np.concatenate([[first_ns], self.ok_max[full]])
        ends = np.concatenate([self.ok_min[full], [max(end_ns, int(self.ok_max[full[-1]]))]])
        return starts, ends
