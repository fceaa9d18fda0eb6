"""The timeline plot of a run: latency, throughput, fault windows and path changes.

Two panels over one time axis (seconds since the first operation), in the
style of Jepsen's perf graphs: every operation's latency as a point (``ok``
points coloured by the path that served them, so a failover shows as a change
of colour; ``info`` orange and ``fail`` pink, as Jepsen draws them), and
throughput per time bin (MiB/s and operations/s). Every fault window from the
history is shaded over both panels and labelled with its name; every path
state change is a dashed vertical line, every HA replica state change a
dotted one on the throughput panel. Written as PNG and SVG with
matplotlib's Agg backend (no display needed). Given a history file instead of a
loaded history, the data is streamed (``harness.checks.timeline_stream``), so a
one-hour run plots without one Python object per operation.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from harness.checks.timeline_stream import TimelineData, default_bin, timeline_data
from harness.checks.timing import measure
from harness.workload.history import RecordedHistory
from harness.workload.history_stream import FAIL as FAIL_CODE
from harness.workload.history_stream import INFO as INFO_CODE
from harness.workload.history_stream import OK

OK_PATH_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2",
                   "#7f7f7f", "#bcbd22")
INFO = "#FFA400"
FAIL = "#FF1E90"
FAULT_COLOURS = ("#E9DCA0", "#A0C4E9", "#E9A0A0", "#B5E9A0", "#D0A0E9")
MAX_POINTS = 200_000  # points drawn (a long run's history is sampled, see timeline_stream)


def _recorded(history: RecordedHistory, bin_s: float | None) -> TimelineData:
    """A loaded history as ``TimelineData`` (every point, before the plot samples them)."""
    ops = [o for o in history.ops if o.f in ("read", "write") and o.complete_ns is not None]
    t0 = min((o.invoke_ns for o in history.ops), default=history.header.start_ns)
    end = max(history.end_ns, t0 + 1)
    bin_s = bin_s or default_bin((end - t0) / 1e9)
    report = measure(history, bin_s=bin_s)
    names = sorted({o.path for o in ops if o.path})
    code = {p: i for i, p in enumerate(names)}
    outcome = {"ok": OK, "info": INFO_CODE, "fail": FAIL_CODE}
    return TimelineData(
        header=history.header, t0_ns=t0, end_ns=end, bin_s=bin_s,
        bins_ok=np.array([b.ok for b in report.bins], dtype=np.int64),
        bins_bytes=np.array([b.bytes for b in report.bins], dtype=np.int64),
        bins_errors=np.array([b.errors for b in report.bins], dtype=np.int64),
        complete_ns=np.array([o.complete_ns for o in ops], dtype=np.int64),
        latency_ns=np.array([o.latency_ns or 0 for o in ops], dtype=np.int64),
        outcome=np.array([outcome[o.outcome] for o in ops], dtype=np.int8),
        path=np.array([code.get(o.path, -1) if o.path else -1 for o in ops], dtype=np.int64),
        path_names=names, operations=len(ops), longest_pause_s=report.longest_pause_s,
        faults=history.faults, paths=history.paths, replicas=history.replicas)


def plot_timeline(history: RecordedHistory | TimelineData | str | os.PathLike[str],
                  out: str | Path, *, bin_s: float | None = None,
                  title: str | None = None) -> list[Path]:
    """Draw the timeline; writes ``<out>.png`` and ``<out>.svg`` and returns both paths.

    ``history`` is a loaded history, or a history file (streamed: for long runs)."""
    if isinstance(history, (str, os.PathLike)):
        data = timeline_data(history, bin_s=bin_s, max_points=MAX_POINTS)
    elif isinstance(history, TimelineData):
        data = history
    else:
        data = _recorded(history, bin_s)
    out = Path(out)
    stem = out.with_suffix("") if out.suffix in (".png", ".svg") else out
    t0, end, bin_s = data.t0_ns, data.end_ns, data.bin_s
    span = (end - t0) / 1e9

    fig, (lat_ax, tput_ax) = plt.subplots(2, 1, sharex=True, figsize=(12, 7),
                                          gridspec_kw={"height_ratios": [3, 2]})
    rng = np.random.default_rng(0)
    shown = np.arange(len(data.complete_ns))
    if len(shown) > MAX_POINTS:
        shown = np.sort(rng.choice(len(shown), MAX_POINTS, replace=False))
    x = (data.complete_ns[shown] - t0) / 1e9
    y = np.maximum(data.latency_ns[shown] / 1e6, 1e-3)
    outc, via = data.outcome[shown], data.path[shown]
    ok_paths = sorted({int(p) for p in via[outc == OK].tolist() if p >= 0},
                      key=lambda p: data.path_names[p])
    paths = [data.path_names[p] for p in ok_paths]
    colour = {p: OK_PATH_COLOURS[i % len(OK_PATH_COLOURS)] for i, p in enumerate(paths)}
    for code, path in zip(ok_paths, paths, strict=True):
        sel = (outc == OK) & (via == code)
        lat_ax.scatter(x[sel], y[sel], s=4, color=colour[path], label=f"ok via {path}",
                       alpha=0.7, linewidths=0)
    for name, code, col in (("info", INFO_CODE, INFO), ("fail", FAIL_CODE, FAIL)):
        sel = outc == code
        if sel.any():
            lat_ax.scatter(x[sel], y[sel], s=16, color=col, marker="x", label=name)
    lat_ax.set_yscale("log")
    lat_ax.set_ylabel("latency (ms)")
    lat_ax.grid(True, which="major", alpha=0.3)

    centres = [i * bin_s + bin_s / 2 for i in range(len(data.bins_ok))]
    tput_ax.plot(centres, (data.bins_bytes / 2**20 / bin_s).tolist(), color="#1f77b4",
                 drawstyle="steps-mid", label="MiB/s")
    tput_ax.set_ylabel("MiB/s")
    tput_ax.set_xlabel("seconds since first operation")
    ops_ax = tput_ax.twinx()
    ops_ax.plot(centres, (data.bins_ok / bin_s).tolist(), color="#ff7f0e", alpha=0.6,
                drawstyle="steps-mid", label="ops/s")
    errs = [(c, int(e) / bin_s) for c, e in zip(centres, data.bins_errors, strict=True) if e]
    if errs:
        ops_ax.bar([c for c, _ in errs], [e for _, e in errs], width=bin_s * 0.8,
                   color=FAIL, alpha=0.5, label="errors/s")
    ops_ax.set_ylabel("ops/s")
    tput_ax.grid(True, alpha=0.3)

    names = sorted({f.name for f in data.faults})
    fcol = {n: FAULT_COLOURS[i % len(FAULT_COLOURS)] for i, n in enumerate(names)}
    for f in data.faults:
        start = (f.start_ns - t0) / 1e9
        stop = ((f.stop_ns if f.stop_ns is not None else end) - t0) / 1e9
        for ax in (lat_ax, tput_ax):
            ax.axvspan(start, stop, color=fcol[f.name], alpha=0.45, zorder=0, linewidth=0)
        lat_ax.annotate(f.name, xy=(start, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(2, -2), textcoords="offset points", va="top", fontsize=8,
                        rotation=0, clip_on=True)
    for e in data.paths:
        x = (e.time_ns - t0) / 1e9
        style = {"color": "#d62728" if e.state in ("failed", "down") else "#2ca02c",
                 "linestyle": "--", "linewidth": 0.8, "alpha": 0.8}
        for ax in (lat_ax, tput_ax):
            ax.axvline(x, **style)
        lat_ax.annotate(f"{e.path}: {e.state}", xy=(x, 0.0), xycoords=("data", "axes fraction"),
                        xytext=(2, 2), textcoords="offset points", fontsize=7, rotation=90,
                        va="bottom", color=style["color"])
    for e in data.replicas:
        x = (e.time_ns - t0) / 1e9
        col = "#2ca02c" if e.state == "synchronized" else "#9467bd"
        tput_ax.axvline(x, color=col, linestyle=":", linewidth=0.8)
        tput_ax.annotate(f"{e.replica}: {e.state}", xy=(x, 1.0),
                         xycoords=("data", "axes fraction"), xytext=(2, -2),
                         textcoords="offset points", fontsize=7, rotation=90, va="top",
                         color=col)
    h = data.header
    lat_ax.set_title(title or f"{h.device}: seed {h.seed}, generation {h.generation:08x}, "
                     f"longest I/O pause {data.longest_pause_s:.3f} s"
                     + (f" (showing {len(shown)} of {data.operations} ops)"
                        if data.operations > len(shown) else ""), fontsize=10)
    if paths or (outc != OK).any():
        lat_ax.legend(loc="upper right", fontsize=8, markerscale=3)
    lines = tput_ax.get_legend_handles_labels()
    more = ops_ax.get_legend_handles_labels()
    tput_ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)
    tput_ax.set_xlim(0, span)
    fig.tight_layout()
    written = []
    stem.parent.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "svg"):
        target = stem.with_name(stem.name + f".{ext}")
        fig.savefig(target, dpi=110)
        written.append(target)
    plt.close(fig)
    return written
