"""What ``splitbrain run`` leaves behind: verdict.json, summary.txt and the timeline plot.

The summary is for a person: what ran (seed, lab, device, paths), what the
workload did, each fault with its failover time, how long resync took, one line
per checker, then one line per problem (the first ``LIMIT`` of each checker; all
of them are in ``verdict.json`` with their history records), and a last
``RESULT`` line. ``verdict.json`` is ``RunVerdict.to_json()`` with a ``run``
section (seed, duration, schedule, lab, output files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.chaos.runner import RunOutcome

LIMIT = 20  # problems listed per checker in the summary (all are in verdict.json)


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def _checker_line(v: Any) -> str:
    status = "ok" if v.valid else f"{len(v.problems)} problem(s)"
    s = v.stats
    if v.checker == "integrity":
        devices = s.get("devices", {})
        blocks = sum(d.get("blocks", 0) for d in devices.values())
        return f"integrity  {len(devices)} paths read back, {blocks} blocks checked: {status}"
    if v.checker == "register":
        return f"reads      {s.get('reads', 0)} reads during the run checked: {status}"
    if v.checker == "timing":
        budget = s.get("budget", {})
        pause = f"longest I/O pause {s.get('longest_pause_s', 0.0):.3f} s"
        if "io_pause_s" in budget:
            pause += f" (budget {budget['io_pause_s']:g} s)"
        return f"timing     {pause}, {s.get('caller_errors', 0)} caller errors: {status}"
    if v.checker == "divergence":
        word = "SPLIT BRAIN" if s.get("split_brain") else status
        return (f"replicas   {', '.join(s.get('replicas', []))}: "
                f"{_mib(s.get('differing_bytes', 0))} differ: {word}")
    if v.checker == "run":
        return f"run        faults healed, replicas resynchronized, paths usable: {status}"
    return f"{v.checker:<10} {status}"


def _honest(m: dict[str, Any]) -> str:
    """A fault's numbers from the per-fault report (harness.checks.faults_report)."""
    def s(v: float | None) -> str:
        return "never" if v is None else f"{v:.3f} s"

    return (f"no I/O completed for {m['longest_gap_s']:.3f} s, longest op "
            f"{s(m['longest_op_s'])}, {m['stalled_ops']} stalled, {m['caller_errors']} caller "
            f"errors, all paths back {s(m['heal_to_all_paths_s'])} after heal")


def _fault_lines(outcome: RunOutcome) -> list[str]:
    faults = outcome.verdict.verdict("faults")
    if faults is not None:
        honest = {f["name"]: f for f in faults.stats.get("faults", [])}
        return [f"  at {step.at_s:6.2f} s  {step.spec} for {step.duration_s:.2f} s: "
                + (_honest(honest[name]) if name in honest else
                   "not injected (the run ended first)")
                for i, step in enumerate(outcome.schedule.steps)
                for name in [f"{step.spec.action} {step.spec.target} [{i}]"]]
    timing = outcome.verdict.verdict("timing")
    measured = {f["name"]: f for f in (timing.stats.get("faults", []) if timing else [])}
    lines = []
    for i, step in enumerate(outcome.schedule.steps):
        name = f"{step.spec.action} {step.spec.target} [{i}]"
        m = measured.get(name)
        if m is None:
            lines.append(f"  at {step.at_s:6.2f} s  {step.spec} for {step.duration_s:.2f} s: "
                         "not injected (the run ended first)")
            continue
        failover = ("no I/O succeeded after it" if m["failover_s"] is None
                    else f"failover {m['failover_s']:.3f} s on {m['failover_path']}")
        sync = m.get("heal_to_synchronized_s")
        resync = "" if sync is None else f", replicas synchronized {sync:.2f} s after heal"
        lines.append(f"  at {step.at_s:6.2f} s  {step.spec} for {step.duration_s:.2f} s: "
                     f"{failover}{resync}")
    return lines


def render_summary(outcome: RunOutcome) -> str:
    s = outcome.meta
    lab = s.get("lab", "started by this run" if outcome.lab_started else "reused")
    out = [
        f"splitbrain run: seed {s['seed']}, {s['duration_s']:g} s of workload, lab {s['site']!r} "
        f"{lab}; started {s['started_utc']}, took {s['elapsed_s']:.0f} s",
        f"device     {s['device']} ({s['purpose']}, {_mib(s['size'])}) over {s['paths']} "
        f"paths from {s['initiator']}",
    ]
    if outcome.workload is not None:
        out.append(f"workload   {outcome.workload.summary()}")
    out.append(f"faults     {len(outcome.schedule.steps)} scheduled (seed {s['seed']}):")
    out += _fault_lines(outcome) or ["  none"]
    if "resync_wait_s" in s:
        out.append(f"resync     both replicas Synchronized {s['resync_wait_s']:.1f} s after "
                   "the workload ended")
    for v in outcome.verdict.verdicts:
        out.append(_checker_line(v))
    problems = [(v.checker, p) for v in outcome.verdict.verdicts for p in v.problems]
    shown: dict[str, int] = {}
    for checker, p in problems:
        shown[checker] = shown.get(checker, 0) + 1
        if shown[checker] <= LIMIT:
            text = p.message if p.message.startswith(p.kind.replace("_", " ")) or \
                p.message.startswith(p.kind) else f"{p.kind}: {p.message}"
            out.append(f"PROBLEM    {checker}: {text}")
    for checker, n in shown.items():
        if n > LIMIT:
            out.append(f"PROBLEM    {checker}: ... {n - LIMIT} more in verdict.json")
    if not problems:
        out.append("RESULT     ok: no problem found")
    else:
        counts: dict[str, int] = {}
        for _, p in problems:
            counts[p.kind] = counts.get(p.kind, 0) + 1
        parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        out.append(f"RESULT     FAILED: {len(problems)} problem(s) ({parts})")
    out.append(f"output     {outcome.output}/ (history.jsonl, schedule.json, verdict.json, "
               "summary.txt, timeline.png, timeline.svg, faults.jsonl, logs/)")
    return "\n".join(out)


def write_report(outcome: RunOutcome) -> str:
    """Write verdict.json, the timeline and summary.txt; return the summary text."""
    from harness.report.timeline import plot_timeline

    history_file = outcome.output / "history.jsonl"
    if history_file.exists():  # streamed from the file: a long run is not loaded whole
        title = f"splitbrain run seed {outcome.meta['seed']}: {outcome.meta['device']}"
        outcome.meta["timeline"] = [
            str(p) for p in plot_timeline(history_file, outcome.output / "timeline",
                                          title=title)
        ]
    verdict = outcome.verdict.to_json()
    verdict["run"] = {**outcome.meta, "schedule": outcome.schedule.to_json(),
                      "lab_started": outcome.lab_started, "lab_dir": str(outcome.lab_dir),
                      "heals": outcome.heals}
    (outcome.output / "verdict.json").write_text(
        json.dumps(verdict, indent=1, default=str) + "\n", encoding="utf-8")
    text = render_summary(outcome)
    Path(outcome.output / "summary.txt").write_text(text + "\n", encoding="utf-8")
    return text
