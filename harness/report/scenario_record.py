"""A chaos scenario's record on disk: its ``CheckResult`` with the evidence files attached.

``record_scenario`` plots the run's timeline (PNG and SVG), attaches it with the
history (gzip-compressed), the schedule, the scenario, the verdict, the fault
journal, any packet capture of the run, the storage nodes' and fault proxy's
logs (``logs/*.log``) and the inventory (redacted, as every attachment is), then
writes the result into a ``ResultsDir`` for the report to read. Presentation
only: the verdict was decided by ``harness.chaos``. ``BackgroundRecorder`` does it
in a worker process while the next scenario runs.
"""

from __future__ import annotations

import contextlib
import gzip
import multiprocessing
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from harness.checks.results import CheckResult, ResultsDir

FILES = (
    ("schedule.json", "application/json"),
    ("scenario.json", "application/json"),
    ("verdict.json", "application/json"),
    ("faults.jsonl", "application/x-ndjson"),
    ("capture.pcap", "application/vnd.tcpdump.pcap"),
)


def timeline(output: Path, title: str) -> list[Path]:
    """``timeline.png`` and ``timeline.svg`` of the run in ``output`` (none without history)."""
    from harness.checks.timeline_stream import timeline_data
    from harness.report.timeline import plot_timeline
    from harness.workload.history import HistoryError

    try:  # streamed: a long run is not loaded whole
        data = timeline_data(output / "history.jsonl")
    except (HistoryError, OSError):
        return []
    if not data.operations:
        return []
    return plot_timeline(data, output / "timeline", title=title)


def record_scenario(results: ResultsDir, result: CheckResult, output: Path,
                    inventory: Path | None = None) -> Path:
    """Attach the run's files to ``result`` and write it; returns the record's path."""
    seed = result.labels.get("seed", "")
    plots = timeline(output, f"{result.name} (seed {seed}): {result.result}")
    prefix = f"{result.name}-{seed}"
    for plot in plots:
        media = "image/png" if plot.suffix == ".png" else "image/svg+xml"
        result.attachments.append(results.attach(f"{prefix}-{plot.name}", plot, media))
    history = output / "history.jsonl"
    if history.exists():
        packed = gzip.compress(history.read_bytes(), compresslevel=6, mtime=0)
        result.attachments.append(results.attach(f"{prefix}-history.jsonl.gz", packed,
                                                 "application/gzip"))
    for name, media in FILES:
        path = output / name
        if path.exists():
            result.attachments.append(results.attach(f"{prefix}-{name}", path, media))
    for log in sorted((output / "logs").glob("*.log")) if (output / "logs").is_dir() else []:
        result.attachments.append(results.attach(f"{prefix}-logs-{log.name}", log,
                                                 "text/plain"))
    if inventory is not None and Path(inventory).is_file():
        result.attachments.append(results.attach(f"inventory-{Path(inventory).name}",
                                                 Path(inventory), "application/toml"))
    return results.write(result)


def _worker_start() -> None:
    """A recording worker yields the CPU to the lab and leaves Ctrl-C to its parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(5)


class BackgroundRecorder:
    """``record_scenario`` in one worker process, while the caller runs the next scenario
    (plotting a timeline takes seconds of CPU that the next scenario's waits leave idle).
    ``finish`` waits for every record; one the worker could not write (it died, or
    raised) is written again in this process, so none is lost."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[tuple[Future[Path] | None, tuple[Any, ...]]] = []

    def submit(self, results: ResultsDir, result: CheckResult, output: Path,
               inventory: Path | None = None) -> None:
        args = (results, result, output, inventory)
        try:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    1, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_start)
            future: Future[Path] | None = self._pool.submit(record_scenario, *args)
        except (OSError, RuntimeError, BrokenProcessPool):
            future = None  # no worker: written by ``finish``
        self._pending.append((future, args))

    def finish(self) -> list[Path]:
        """Every record written (in submission order); the worker is gone afterwards."""
        written = []
        try:
            for future, args in self._pending:
                try:
                    if future is None:
                        raise BrokenProcessPool("no worker")
                    written.append(future.result())
                except Exception:  # any failure there: write it here instead
                    written.append(record_scenario(*args))
        finally:
            self._pending.clear()
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
        return written


__all__ = ["BackgroundRecorder", "record_scenario", "timeline"]
