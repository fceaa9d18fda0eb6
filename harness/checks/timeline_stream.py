"""What a timeline plot needs from a history, streamed: bins, a sample of points, events.

``harness.report.timeline`` draws every operation's latency as a point (at most
``MAX_POINTS`` of them) over throughput bins, with the fault windows, path
changes and replica states. ``load_history`` gives it one Python object per
operation; ``timeline_data`` reads the same history as a stream
(``harness.workload.history_stream``) and keeps only per-bin counts, a
systematic sample of the ``ok`` points (every k-th, k doubling whenever the
sample is full, so it stays spread over the whole run) and every ``info`` and
``fail`` point (the ones a reader looks for), up to the same limit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from harness.checks.faults_report import FaultTimer
from harness.workload.history import FaultWindow, HistoryHeader, PathEvent, ReplicaState
from harness.workload.history_stream import OK, OTHER, PENDING, OpStream, outline

MAX_POINTS = 200_000
_WIDTH = 100_000_000  # counting bins of 0.1 s, summed into the plot's bins at the end


@dataclass(slots=True)
class TimelineData:
    header: HistoryHeader
    t0_ns: int
    end_ns: int
    bin_s: float
    bins_ok: np.ndarray  # per plot bin: ok completions
    bins_bytes: np.ndarray  # bytes moved by them
    bins_errors: np.ndarray  # fail and info completions
    complete_ns: np.ndarray  # the sampled points
    latency_ns: np.ndarray
    outcome: np.ndarray  # OK, INFO, FAIL
    path: np.ndarray  # index into path_names, -1 none
    path_names: list[str]
    operations: int  # completed reads and writes in the history
    longest_pause_s: float
    faults: list[FaultWindow] = field(default_factory=list)
    paths: list[PathEvent] = field(default_factory=list)
    replicas: list[ReplicaState] = field(default_factory=list)


class _Counts:
    def __init__(self) -> None:
        self.ok = np.zeros(0, dtype=np.int64)
        self.bytes = np.zeros(0, dtype=np.int64)
        self.errors = np.zeros(0, dtype=np.int64)

    def add(self, k: np.ndarray, ok: np.ndarray, nbytes: np.ndarray) -> None:
        n = int(k.max()) + 1 if len(k) else 0
        if n > len(self.ok):
            grow = max(n, 2 * len(self.ok)) - len(self.ok)
            self.ok, self.bytes, self.errors = (np.concatenate([a, np.zeros(grow, np.int64)])
                                                for a in (self.ok, self.bytes, self.errors))
        np.add.at(self.ok, k[ok], 1)
        np.add.at(self.bytes, k[ok], nbytes[ok])
        np.add.at(self.errors, k[~ok], 1)


def timeline_data(history_path: str | os.PathLike[str], *, bin_s: float | None = None,
                  max_points: int = MAX_POINTS) -> TimelineData:
    """Stream a history into what ``plot_timeline`` draws (see the module docstring)."""
    out = outline(history_path)
    lbs = out.header.logical_block_size
    timer = FaultTimer([], stall_s=3600.0)
    counts = _Counts()
    stride, taken, seen = 1, 0, 0
    parts: list[tuple[np.ndarray, ...]] = []
    errs: list[tuple[np.ndarray, ...]] = []
    origin: int | None = None
    stream = OpStream(history_path)
    for c in stream:
        timer.add(c)
        io = (c.f != OTHER) & (c.outcome != PENDING)
        if origin is None:  # room for operations invoked before the first to complete
            origin = int(c.invoke.min()) - 600 * 10**9
        done, lat = c.complete[io], c.complete[io] - c.invoke[io]
        outcome, path = c.outcome[io], c.path[io]
        ok = outcome == OK
        k = np.maximum((done - origin) // _WIDTH, 0)
        counts.add(k, ok, c.count[io] * lbs)
        if (~ok).any():
            errs.append((done[~ok], lat[~ok], outcome[~ok], path[~ok]))
        idx = np.flatnonzero(ok)
        pick = idx[(seen + np.arange(len(idx))) % stride == 0]
        seen += len(idx)
        parts.append((done[pick], lat[pick], outcome[pick], path[pick]))
        taken += len(pick)
        while taken > max_points:  # thin what was kept to every other point
            stride *= 2
            parts = [tuple(a[::2] for a in p) for p in parts]
            taken = sum(len(p[0]) for p in parts)
    t0 = stream.first_ns if stream.first_ns is not None else out.header.start_ns
    end = max(stream.end_ns, t0 + 1)
    span = (end - t0) / 1e9
    bin_s = bin_s or default_bin(span)
    per = max(1, round(bin_s * 1e9 / _WIDTH))
    skip = max(0, (t0 - (origin if origin is not None else t0)) // _WIDTH)
    n = -(-max(len(counts.ok) - skip, 0) // per)

    def rebin(a: np.ndarray) -> np.ndarray:  # plot bins from t0 (aligned to 0.1 s)
        a = a[skip:]
        return np.pad(a, (0, n * per - len(a))).reshape(n, per).sum(axis=1) if n else a

    def column(i: int, chunks: list[tuple[np.ndarray, ...]]) -> np.ndarray:
        return np.concatenate([p[i] for p in chunks]) if chunks else np.zeros(0, np.int64)

    cols = [np.concatenate([column(i, parts), column(i, errs)[:max_points]])
            for i in range(4)]
    gs, ge = timer.gaps(t0, end) if timer.origin is not None else (np.array([t0]),
                                                                    np.array([end]))
    return TimelineData(
        header=out.header, t0_ns=t0, end_ns=end, bin_s=bin_s,
        bins_ok=rebin(counts.ok), bins_bytes=rebin(counts.bytes),
        bins_errors=rebin(counts.errors), complete_ns=cols[0], latency_ns=cols[1],
        outcome=cols[2], path=cols[3], path_names=list(stream.path_names),
        operations=seen + sum(len(e[0]) for e in errs),
        longest_pause_s=float((ge - gs).max()) / 1e9 if len(gs) else 0.0,
        faults=out.faults, paths=out.paths, replicas=out.replicas)


def default_bin(span_s: float) -> float:
    for width in (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0):
        if span_s / width <= 200:
            return width
    return 120.0
