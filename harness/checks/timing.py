"""Timing: throughput, latency, I/O pauses and failover times, measured from the history.

The model: the caller's view is the truth. From the ``ok``/``fail``/``info``
completions and the fault records of a history this computes

- throughput (ops and bytes) and latency percentiles in fixed time bins;
- the longest I/O pause: the longest interval with no successful completion
  (between two ``ok`` completions, or from the last one to the end of the
  history), with the faults active during it;
- per fault: **failover**, from the fault's start to the completion of the
  first ``ok`` operation invoked after it on a surviving path (a path not
  named in the fault's ``paths`` attribute; any path when it names none);
- per healed fault: **heal to all paths**, from the fault's stop to the
  completion of the first ``ok`` operation invoked after it on every path that
  carried I/O before the fault;
- per healed fault: **heal to synchronized**, from the fault's stop until every
  HA replica of the history's ``replica`` records reports ``synchronized``;
- the errors the caller saw (``fail`` and ``info`` completions): with MPIO in
  front, a failover should show none.

Each is compared with a budget (name -> limit): ``io_pause``, ``failover``,
``heal_to_all_paths`` and ``heal_to_synchronized`` in seconds, ``caller_errors``
as a count, or the inventory's names for them (``io_pause_s``,
``path_failover_s``, ``resync_s``); a fault whose record carries
``budget="node_failover_s"`` is held to that budget instead of ``failover``.
A measure over its budget, a fault after which no I/O ever succeeded, or a path
that never came back is a problem.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness.checks.episodes import inside, outside
from harness.checks.verdict import Problem, Verdict
from harness.workload.history import ABANDONED, FaultWindow, Operation, RecordedHistory

BUDGET_NAMES = ("io_pause", "failover", "heal_to_all_paths", "heal_to_synchronized",
                "caller_errors")
MAX_RECORDS = 50  # records attached to one problem


@dataclass(slots=True)
class TimeBin:
    start_s: float  # seconds since the first operation
    ok: int
    errors: int
    bytes: int
    mib_per_s: float
    iops: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


@dataclass(slots=True)
class FaultTiming:
    name: str
    start_s: float
    stop_s: float | None
    failover_s: float | None  # None: no I/O succeeded after the fault started
    failover_path: str | None
    heal_to_all_paths_s: float | None  # None: not healed, or some path never came back
    heal_per_path_s: dict[str, float | None] = field(default_factory=dict)
    heal_to_synchronized_s: float | None = None  # None: no replica records, or never


@dataclass(slots=True)
class TimingReport:
    t0_ns: int
    bins: list[TimeBin]
    longest_pause_s: float
    longest_pause_start_s: float | None
    longest_pause_faults: list[str]
    faults: list[FaultTiming]
    caller_errors: int
    paths: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _bytes(op: Operation, lbs: int) -> int:
    return op.count * lbs if op.f in ("read", "write") else 0


def measure(history: RecordedHistory, *, bin_s: float = 1.0) -> TimingReport:
    """Every timing measure of a history (no judgement)."""
    ops = [o for o in history.ops if o.f in ("read", "write")]
    lbs = history.header.logical_block_size
    t0 = min((o.invoke_ns for o in ops), default=history.header.start_ns)
    ok = sorted((o for o in ops if o.outcome == "ok" and o.complete_ns is not None),
                key=lambda o: o.complete_ns or 0)
    bins = _bins(ops, ok, t0, bin_s, lbs)
    pause, pause_start = _longest_pause(ok, history.end_ns, t0)
    pause_faults = ([f.name for f in history.faults_during(pause_start, pause_start + pause)]
                    if pause_start is not None else [])
    before = {o.path for o in ok if o.path is not None}
    faults = [_fault_timing(f, ok, t0, before) for f in history.faults]
    for f, ft in zip(history.faults, faults, strict=True):
        ft.heal_to_synchronized_s = _heal_to_synchronized(history, f)
    errors = sum(1 for o in history.ops if o.outcome in ("fail", "info")
                 and o.error != ABANDONED)  # a crashed client's: no caller saw it
    return TimingReport(
        t0_ns=t0,
        bins=bins,
        longest_pause_s=pause / 1e9,
        longest_pause_start_s=None if pause_start is None else (pause_start - t0) / 1e9,
        longest_pause_faults=pause_faults,
        faults=faults,
        caller_errors=errors,
        paths=sorted(before),
    )


def _bins(ops: list[Operation], ok: list[Operation], t0: int, bin_s: float,
          lbs: int) -> list[TimeBin]:
    if not ops:
        return []
    width = int(bin_s * 1e9)
    end = max((o.complete_ns or o.invoke_ns) for o in ops)
    n = (end - t0) // width + 1
    done = np.array([(o.complete_ns or 0) - t0 for o in ok], dtype=np.int64) // width
    lat = np.array([o.latency_ns or 0 for o in ok], dtype=np.float64) / 1e6
    size = np.array([_bytes(o, lbs) for o in ok], dtype=np.int64)
    errs = np.array([(o.complete_ns or o.invoke_ns) - t0 for o in ops
                     if o.outcome in ("fail", "info")], dtype=np.int64) // width
    counts = np.bincount(done, minlength=n) if len(done) else np.zeros(n, dtype=np.int64)
    nbytes = np.bincount(done, weights=size, minlength=n) if len(done) else np.zeros(n)
    nerr = np.bincount(errs, minlength=n) if len(errs) else np.zeros(n, dtype=np.int64)
    order = np.argsort(done, kind="stable")
    edges = np.searchsorted(done[order], np.arange(n + 1))
    out = []
    for i in range(n):
        sel = lat[order[edges[i]:edges[i + 1]]]
        pct = np.percentile(sel, [50, 99]) if len(sel) else None
        out.append(TimeBin(
            start_s=i * bin_s, ok=int(counts[i]), errors=int(nerr[i]), bytes=int(nbytes[i]),
            mib_per_s=float(nbytes[i]) / 2**20 / bin_s, iops=float(counts[i]) / bin_s,
            p50_ms=None if pct is None else float(pct[0]),
            p99_ms=None if pct is None else float(pct[1]),
            max_ms=float(sel.max()) if len(sel) else None,
        ))
    return out


def _longest_pause(ok: list[Operation], end_ns: int, t0: int) -> tuple[int, int | None]:
    times = [o.complete_ns for o in ok if o.complete_ns is not None]
    if not times:
        return (end_ns - t0, t0) if end_ns > t0 else (0, None)
    stamps = np.array([*times, max(end_ns, times[-1])], dtype=np.int64)
    gaps = np.diff(stamps)
    if not len(gaps):
        return 0, None
    i = int(np.argmax(gaps))
    return int(gaps[i]), int(stamps[i])


def _fault_timing(fault: FaultWindow, ok: list[Operation], t0: int,
                  paths: set[str]) -> FaultTiming:
    failed = set(fault.attrs.get("paths") or [])
    first = next((o for o in sorted(ok, key=lambda o: o.complete_ns or 0)
                  if o.invoke_ns >= fault.start_ns and o.path not in failed), None)
    ft = FaultTiming(
        name=fault.name,
        start_s=(fault.start_ns - t0) / 1e9,
        stop_s=None if fault.stop_ns is None else (fault.stop_ns - t0) / 1e9,
        failover_s=None if first is None else ((first.complete_ns or 0) - fault.start_ns) / 1e9,
        failover_path=None if first is None else first.path,
        heal_to_all_paths_s=None,
    )
    if fault.stop_ns is not None:
        used_before = {o.path for o in ok if o.path is not None
                       and (o.complete_ns or 0) <= fault.start_ns} or paths
        for p in sorted(used_before):
            hit = min(((o.complete_ns or 0) for o in ok
                       if o.path == p and o.invoke_ns >= fault.stop_ns), default=None)
            ft.heal_per_path_s[p] = None if hit is None else (hit - fault.stop_ns) / 1e9
        values = list(ft.heal_per_path_s.values())
        if values and all(v is not None for v in values):
            ft.heal_to_all_paths_s = max(v for v in values if v is not None)
    return ft


def _heal_to_synchronized(history: RecordedHistory, fault: FaultWindow) -> float | None:
    """Seconds from the fault's stop until every replica last said ``synchronized``."""
    if fault.stop_ns is None or not history.replicas:
        return None
    events = sorted(history.replicas, key=lambda e: e.time_ns)
    state = {e.replica: "unknown" for e in events}
    for e in events:
        if e.time_ns > fault.stop_ns:
            break
        state[e.replica] = e.state
    if all(s == "synchronized" for s in state.values()):
        return 0.0
    for e in events:
        if e.time_ns <= fault.stop_ns:
            continue
        state[e.replica] = e.state
        if all(s == "synchronized" for s in state.values()):
            return (e.time_ns - fault.stop_ns) / 1e9
    return None


# The inventory's budget names (``[budgets.<profile>]``, all in seconds) for the same
# measures; per-fault budgets (``node_failover_s``...) are chosen by a fault record's
# ``budget`` attribute, and the ones no history measures are accepted and ignored here.
INVENTORY_NAMES = {
    "io_pause_s": "io_pause",
    "path_failover_s": "failover",
    "heal_to_all_paths_s": "heal_to_all_paths",
    "resync_s": "heal_to_synchronized",
    "caller_errors_max": "caller_errors",
}
PER_FAULT_OR_ELSEWHERE = ("node_failover_s", "live_migration_s", "op_latency_s", "stall_s",
                          "stalled_ops_max")  # the last three: harness.checks.faults_report


def normalise_budget(budget: dict[str, float]) -> dict[str, float]:
    """Budget names of this checker from its own or the inventory's names."""
    out: dict[str, float] = {}
    for name, limit in budget.items():
        if name in BUDGET_NAMES:
            out[name] = float(limit)
        elif name in INVENTORY_NAMES:
            out.setdefault(INVENTORY_NAMES[name], float(limit))
        # an inventory's other budgets (``disk_latency_s``...) belong to other checkers
        elif name not in PER_FAULT_OR_ELSEWHERE and not name.endswith(("_s", "_max")):
            from harness.workload.errors import WorkloadConfigError

            raise WorkloadConfigError(
                f"unknown timing budget {name!r}; known: {', '.join(BUDGET_NAMES)} (or the "
                f"inventory's {', '.join([*INVENTORY_NAMES, *PER_FAULT_OR_ELSEWHERE])})")
    return out


def check_timing(history: RecordedHistory, budget: dict[str, float] | None = None,
                 *, bin_s: float = 1.0, expected: Sequence[tuple[int, int]] = ()) -> Verdict:
    """Measure a history and judge every measure that has a budget; the caller errors
    completed and the pauses inside ``expected`` (beyond-redundancy windows and their
    settle, ``harness.checks.episodes``) are counted apart, not judged."""
    given = dict(budget or {})
    budget = normalise_budget(given)
    report = measure(history, bin_s=bin_s)
    expected_errors = 0
    if expected:
        ok = sorted(o.complete_ns for o in history.ops if o.f in ("read", "write")
                    and o.outcome == "ok" and o.complete_ns is not None)
        stamps = [*ok, max([history.end_ns, *ok[-1:]])]  # as _longest_pause
        best, at = 0, None
        for x, y in itertools.pairwise(stamps):
            for p, q in outside(x, y, expected):
                if q - p > best:
                    best, at = q - p, p
        report.longest_pause_s = best / 1e9
        report.longest_pause_start_s = None if at is None else (at - report.t0_ns) / 1e9
        report.longest_pause_faults = ([] if at is None else
                                       [f.name for f in history.faults_during(at, at + best)])
        expected_errors = sum(1 for o in history.ops if o.outcome in ("fail", "info")
                              and o.error != ABANDONED
                              and inside(o.complete_ns or o.invoke_ns, expected))
        report.caller_errors -= expected_errors
    problems: list[Problem] = []
    faults = {f.fault: f for f in history.faults}
    faults_by_name = {f.name: f for f in history.faults}

    def fault_records(name: str) -> list[dict[str, Any]]:
        return [r for f in faults.values() if f.name == name for r in f.records]

    if "io_pause" in budget and report.longest_pause_s > budget["io_pause"]:
        recs = [r for n in report.longest_pause_faults for r in fault_records(n)]
        problems.append(_over("io_pause", report.longest_pause_s, budget["io_pause"],
                              f"longest I/O pause {report.longest_pause_s:.3f} s at "
                              f"{report.longest_pause_start_s:.3f} s (faults: "
                              f"{', '.join(report.longest_pause_faults) or 'none'})", recs))
    for ft in report.faults:
        recs = fault_records(ft.name)
        if ft.failover_s is None:
            problems.append(Problem("no_recovery", f"no I/O succeeded on a surviving path after "
                                    f"fault {ft.name!r} at {ft.start_s:.3f} s", records=recs,
                                    detail={"fault": ft.name}))
        else:
            key = faults_by_name[ft.name].attrs.get("budget")
            limit = given.get(key) if isinstance(key, str) else budget.get("failover")
            if limit is not None and ft.failover_s > limit:
                problems.append(_over(key if isinstance(key, str) else "failover",
                                      ft.failover_s, limit,
                                      f"failover after {ft.name!r} took {ft.failover_s:.3f} s "
                                      f"(first I/O on {ft.failover_path})", recs, ft.name))
        if ft.stop_s is not None and "heal_to_synchronized" in budget:
            limit = budget["heal_to_synchronized"]
            if ft.heal_to_synchronized_s is None:
                problems.append(Problem(
                    "not_resynchronized", f"after healing {ft.name!r} the replicas never all "
                    "reported synchronized" + ("" if history.replicas else
                                               " (the history has no replica states)"),
                    records=recs, detail={"fault": ft.name}))
            elif ft.heal_to_synchronized_s > limit:
                problems.append(_over("heal_to_synchronized", ft.heal_to_synchronized_s, limit,
                                      f"replicas synchronized {ft.heal_to_synchronized_s:.3f} s "
                                      f"after healing {ft.name!r}", recs, ft.name))
        if ft.stop_s is None or "heal_to_all_paths" not in budget:
            continue
        missing = [p for p, v in ft.heal_per_path_s.items() if v is None]
        if missing:
            problems.append(Problem("path_not_restored", f"after healing {ft.name!r} no I/O "
                                    f"succeeded again on {', '.join(missing)}", records=recs,
                                    device=",".join(missing), detail={"fault": ft.name,
                                                                      "paths": missing}))
        elif ft.heal_to_all_paths_s is not None and \
                ft.heal_to_all_paths_s > budget["heal_to_all_paths"]:
            problems.append(_over("heal_to_all_paths", ft.heal_to_all_paths_s,
                                  budget["heal_to_all_paths"],
                                  f"all paths carried I/O {ft.heal_to_all_paths_s:.3f} s after "
                                  f"healing {ft.name!r}", recs, ft.name))
    if "caller_errors" in budget and report.caller_errors > budget["caller_errors"]:
        errs = [o for o in history.ops if o.outcome in ("fail", "info")
                and not inside(o.complete_ns or o.invoke_ns, expected)]
        recs = [r for o in errs[:MAX_RECORDS // 2] for r in o.records]
        problems.append(_over("caller_errors", report.caller_errors, budget["caller_errors"],
                              f"the caller saw {report.caller_errors} failed or unknown "
                              f"operations (first: {errs[0].error})", recs))
    return Verdict("timing", problems, {"budget": given, **report.to_json(),
                                        "expected_caller_errors": expected_errors})


def _over(measure_name: str, value: float, limit: float, text: str,
          records: list[dict[str, Any]], fault: str | None = None) -> Problem:
    unit = "" if measure_name == "caller_errors" else " s"
    return Problem(
        "over_budget",
        f"over budget: {text}; budget {measure_name} = {limit:g}{unit}",
        records=records,
        detail={"measure": measure_name, "value": value, "budget": limit, "fault": fault},
    )
