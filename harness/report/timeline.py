"""The timeline plot of a run: latency, throughput, fault windows and path changes.

Two panels over one time axis (seconds since the first operation), in the
style of Jepsen's perf graphs: every operation's latency as a point (``ok``
points coloured by the path that served them, so a failover shows as a change
of colour; ``info`` orange and ``fail`` pink, as Jepsen draws them), and
throughput per time bin (MiB/s and operations/s). Every fault window from the
history is shaded over both panels and labelled with its name; every path
state change is a dashed vertical line, every HA replica state change a
dotted one on the throughput panel. Written as PNG and SVG with
matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from harness.checks.timing import measure
from harness.workload.history import RecordedHistory

OK_PATH_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2",
                   "#7f7f7f", "#bcbd22")
INFO = "#FFA400"
FAIL = "#FF1E90"
FAULT_COLOURS = ("#E9DCA0", "#A0C4E9", "#E9A0A0", "#B5E9A0", "#D0A0E9")
MAX_POINTS = 200_000


def _default_bin(span_s: float) -> float:
    for width in (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0):
        if span_s / width <= 200:
            return width
    return 120.0


def plot_timeline(history: RecordedHistory, out: str | Path, *,
                  bin_s: float | None = None, title: str | None = None) -> list[Path]:
    """Draw the timeline; writes ``<out>.png`` and ``<out>.svg`` and returns both paths."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix in (".png", ".svg") else out
    ops = [o for o in history.ops if o.f in ("read", "write") and o.complete_ns is not None]
    t0 = min((o.invoke_ns for o in history.ops), default=history.header.start_ns)
    end = max(history.end_ns, t0 + 1)
    span = (end - t0) / 1e9
    bin_s = bin_s or _default_bin(span)
    report = measure(history, bin_s=bin_s)

    fig, (lat_ax, tput_ax) = plt.subplots(2, 1, sharex=True, figsize=(12, 7),
                                          gridspec_kw={"height_ratios": [3, 2]})
    rng = np.random.default_rng(0)
    if len(ops) > MAX_POINTS:
        keep = np.sort(rng.choice(len(ops), MAX_POINTS, replace=False))
        shown = [ops[i] for i in keep]
    else:
        shown = ops
    paths = sorted({o.path for o in shown if o.outcome == "ok" and o.path})
    colour = {p: OK_PATH_COLOURS[i % len(OK_PATH_COLOURS)] for i, p in enumerate(paths)}
    for path in paths:
        sel = [o for o in shown if o.outcome == "ok" and o.path == path]
        lat_ax.scatter([((o.complete_ns or 0) - t0) / 1e9 for o in sel],
                       [max((o.latency_ns or 0) / 1e6, 1e-3) for o in sel],
                       s=4, color=colour[path], label=f"ok via {path}", alpha=0.7,
                       linewidths=0)
    for outcome, col, marker in (("info", INFO, "x"), ("fail", FAIL, "x")):
        sel = [o for o in shown if o.outcome == outcome]
        if sel:
            lat_ax.scatter([((o.complete_ns or 0) - t0) / 1e9 for o in sel],
                           [max((o.latency_ns or 0) / 1e6, 1e-3) for o in sel],
                           s=16, color=col, marker=marker, label=outcome)
    lat_ax.set_yscale("log")
    lat_ax.set_ylabel("latency (ms)")
    lat_ax.grid(True, which="major", alpha=0.3)

    centres = [b.start_s + bin_s / 2 for b in report.bins]
    tput_ax.plot(centres, [b.mib_per_s for b in report.bins], color="#1f77b4",
                 drawstyle="steps-mid", label="MiB/s")
    tput_ax.set_ylabel("MiB/s")
    tput_ax.set_xlabel("seconds since first operation")
    ops_ax = tput_ax.twinx()
    ops_ax.plot(centres, [b.iops for b in report.bins], color="#ff7f0e", alpha=0.6,
                drawstyle="steps-mid", label="ops/s")
    errs = [(c, b.errors / bin_s) for c, b in zip(centres, report.bins, strict=True)
            if b.errors]
    if errs:
        ops_ax.bar([c for c, _ in errs], [e for _, e in errs], width=bin_s * 0.8,
                   color=FAIL, alpha=0.5, label="errors/s")
    ops_ax.set_ylabel("ops/s")
    tput_ax.grid(True, alpha=0.3)

    names = sorted({f.name for f in history.faults})
    fcol = {n: FAULT_COLOURS[i % len(FAULT_COLOURS)] for i, n in enumerate(names)}
    for f in history.faults:
        start = (f.start_ns - t0) / 1e9
        stop = ((f.stop_ns if f.stop_ns is not None else end) - t0) / 1e9
        for ax in (lat_ax, tput_ax):
            ax.axvspan(start, stop, color=fcol[f.name], alpha=0.45, zorder=0, linewidth=0)
        lat_ax.annotate(f.name, xy=(start, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(2, -2), textcoords="offset points", va="top", fontsize=8,
                        rotation=0, clip_on=True)
    for e in history.paths:
        x = (e.time_ns - t0) / 1e9
        style = {"color": "#d62728" if e.state in ("failed", "down") else "#2ca02c",
                 "linestyle": "--", "linewidth": 0.8, "alpha": 0.8}
        for ax in (lat_ax, tput_ax):
            ax.axvline(x, **style)
        lat_ax.annotate(f"{e.path}: {e.state}", xy=(x, 0.0), xycoords=("data", "axes fraction"),
                        xytext=(2, 2), textcoords="offset points", fontsize=7, rotation=90,
                        va="bottom", color=style["color"])
    for e in history.replicas:
        x = (e.time_ns - t0) / 1e9
        col = "#2ca02c" if e.state == "synchronized" else "#9467bd"
        tput_ax.axvline(x, color=col, linestyle=":", linewidth=0.8)
        tput_ax.annotate(f"{e.replica}: {e.state}", xy=(x, 1.0),
                         xycoords=("data", "axes fraction"), xytext=(2, -2),
                         textcoords="offset points", fontsize=7, rotation=90, va="top",
                         color=col)
    h = history.header
    lat_ax.set_title(title or f"{h.device}: seed {h.seed}, generation {h.generation:08x}, "
                     f"longest I/O pause {report.longest_pause_s:.3f} s"
                     + (f" (showing {MAX_POINTS} of {len(ops)} ops)" if len(ops) > MAX_POINTS
                        else ""), fontsize=10)
    if paths or any(o.outcome != "ok" for o in shown):
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
