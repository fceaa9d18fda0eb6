"""A chaos scenario's record on disk: its ``CheckResult`` with the evidence files attached.

``record_scenario`` plots the run's timeline (PNG and SVG), attaches it with the
history (gzip-compressed), the schedule, the scenario, the verdict, the fault
journal, any packet capture of the run, the storage nodes' and fault proxy's
logs (``logs/*.log``) and the inventory (redacted, as every attachment is), then
writes the result into a ``ResultsDir`` for the report to read. Presentation
only: the verdict was decided by ``harness.chaos``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

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


__all__ = ["record_scenario", "timeline"]
