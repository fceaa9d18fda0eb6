"""Per-fault timing: what each fault cost the caller, in honest numbers, against budgets.

The model: the caller's view is the truth, and a fault is judged by the whole
outage it caused, not by the first lucky completion. For each fault window
(injected at ``a``, healed at ``b``; a fault never healed lasts until the end of
the history) the history gives

- ``longest_gap_s``: the longest interval with no successful (``ok``)
  completion that overlaps ``[a, b]``, whole, not clipped to the window: a
  2.2 s blackout that starts during a path cut is 2.2 s. (Measuring failover as
  "first success on another path" says milliseconds under round robin while
  I/O on the cut path hangs.) Resolution: gaps shorter than ``BUCKET_NS``
  (5 ms) are not resolved;
- ``longest_op_s``: the longest single operation in flight during the window
  (an operation that never completed counts until the end of the history);
- ``stalled_ops``: operations in flight during the window that took longer
  than the ``stall_s`` budget;
- ``caller_errors``: ``fail`` and ``info`` completions of operations in flight
  during the window (with MPIO in front a failover should return none); not those
  a crashed client abandoned (``Workload.crash``): no caller saw them;
- ``heal_to_all_paths_s``: from the heal until every path that carried I/O
  before the fault has completed an ``ok`` operation again (a path that never
  does is a problem, budget or not; a path a later fault takes again before it
  is back is not measured for this heal);
- ``heal_to_synchronized_s``: from the heal until every HA replica of the
  history's ``replica`` records last said ``synchronized``.

Budgets are the inventory's names (``[budgets.PROFILE]``): a number of seconds
for names ending in ``_s``, a count for names ending in ``_max``:

=======================  ===================================================
``path_failover_s`` ...  the fault record's ``budget`` names the one that
                         judges ``longest_gap_s`` (else ``io_pause_s``)
``op_latency_s``         judges ``longest_op_s``
``stall_s``              when an operation counts as stalled (default 5 s)
``stalled_ops_max``      judges ``stalled_ops``
``caller_errors_max``    judges ``caller_errors``
``heal_to_all_paths_s``  judges ``heal_to_all_paths_s`` (default 60 s)
``resync_s``             judges ``heal_to_synchronized_s``
=======================  ===================================================

The history is streamed (``harness.workload.history_stream``): state is a few
arrays per 5 ms of history plus the rare slow or failed operations, never one
Python object per operation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness.checks.episodes import (
    RedundancyWindow,
    beyond_redundancy,
    episodes,
    excused_spans,
    impaired_host,
    inside,
    judged_length,
    outside,
    settle_s,
)
from harness.checks.fault_timer import FaultTimer
from harness.checks.verdict import Problem, Verdict
from harness.workload.history import FaultWindow, ReplicaState
from harness.workload.history_stream import (
    NEVER,
    OpStream,
    abandoned_at,
    outline,
    read_records,
)

DEFAULT_BUDGETS: dict[str, float] = {"heal_to_all_paths_s": 60.0, "stall_s": 5.0}
MAX_CITED_OPS = 5  # operations whose records one problem cites


@dataclass(slots=True)
class FaultReport:
    """The honest numbers of one fault window and the problems they make."""

    fault: int
    name: str
    kind: str | None
    target: str | None
    injected_s: float  # seconds since the history's first record
    healed_s: float | None  # None: never healed in this history
    longest_gap_s: float
    gap_from_s: float | None
    gap_to_s: float | None
    longest_op_s: float | None  # None: no operation was in flight
    stalled_ops: int
    caller_errors: int
    heal_to_all_paths_s: float | None  # None: not healed, or some path never came back
    paths_back_s: dict[str, float | None] = field(default_factory=dict)
    heal_to_synchronized_s: float | None = None  # None: no replica states, or never
    op_from_s: float | None = None  # when the longest operation (its judged part) began
    budgets: dict[str, float] = field(default_factory=dict)  # the budgets that judged it
    problems: list[Problem] = field(default_factory=list)
    episode: int = 0  # the episode (overlapping faults) it belongs to
    expected_caller_errors: int = 0  # errors while every replica was impaired (not judged)
    faults: list[str] = field(default_factory=list)  # an episode's: its faults' names

    @property
    def valid(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["problems"] = [p.to_json() for p in self.problems]
        return out


def _overlapping(rows: np.ndarray, a: int, b: int, end_ns: int) -> np.ndarray:
    complete = np.where(rows[:, 1] == NEVER, end_ns, rows[:, 1])
    return rows[(rows[:, 0] <= b) & (complete >= a)]


def _latency(rows: np.ndarray, end_ns: int) -> np.ndarray:
    """Each row's latency; an operation that never completed lasts until ``end_ns``."""
    return np.where(rows[:, 1] == NEVER, end_ns, rows[:, 1]) - rows[:, 0]


def _synchronized_after(replicas: list[ReplicaState], stop: int) -> float | None:
    events = sorted(replicas, key=lambda e: e.time_ns)
    state = {e.replica: "unknown" for e in events}
    for e in events:
        if e.time_ns > stop:
            break
        state[e.replica] = e.state
    if all(s == "synchronized" for s in state.values()):
        return 0.0
    for e in events:
        if e.time_ns <= stop:
            continue
        state[e.replica] = e.state
        if all(s == "synchronized" for s in state.values()):
            return (e.time_ns - stop) / 1e9
    return None


# ``splitbrain check --budget``'s older names for the same budgets
OLD_NAMES = {"io_pause": "io_pause_s", "failover": "path_failover_s",
             "heal_to_all_paths": "heal_to_all_paths_s", "heal_to_synchronized": "resync_s",
             "caller_errors": "caller_errors_max"}


def inventory_budget_names(budgets: Mapping[str, float]) -> dict[str, float]:
    """Budgets by the inventory's names (``_s`` seconds, ``_max`` counts); the older
    bare names are translated, anything else is a user error."""
    out: dict[str, float] = {}
    for name, limit in budgets.items():
        if name in OLD_NAMES:
            out[OLD_NAMES[name]] = float(limit)
        elif name.endswith(("_s", "_max")):
            out[name] = float(limit)
        else:
            from harness.workload.errors import WorkloadConfigError

            raise WorkloadConfigError(
                f"unknown budget {name!r}: name it as the inventory does (ending in _s for "
                f"seconds, _max for a count) or use one of {', '.join(OLD_NAMES)}")
    return out


def resolve_budgets(budgets: Mapping[str, float] | None) -> dict[str, float]:
    """The given budgets over the defaults (``DEFAULT_BUDGETS``)."""
    out = dict(DEFAULT_BUDGETS)
    out.update({k: float(v) for k, v in (budgets or {}).items()})
    return out


def per_fault_report(history_path: str | os.PathLike[str],
                     fault_windows: Sequence[FaultWindow] | None = None,
                     budgets: Mapping[str, float] | None = None,
                     *, chunk: int | None = None) -> list[FaultReport]:
    """One ``FaultReport`` per fault window (default: the history's own fault records);
    each episode's problems are on its first fault's report (see ``judge_faults``)."""
    return fault_judgement(history_path, fault_windows, budgets, chunk=chunk).reports


@dataclass(slots=True)
class FaultsJudgement:
    """Per-fault numbers, the episodes that judged them and the windows beyond redundancy."""

    reports: list[FaultReport]  # one per fault; an episode's problems on its first fault's
    episodes: list[FaultReport]  # one per episode (a lone fault's is its own report)
    windows: list[RedundancyWindow]
    t0: int
    expected_spans: list[tuple[int, int]] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        return {"episodes": [{k: v for k, v in e.to_json().items() if k != "problems"}
                             for e in self.episodes],
                "beyond_redundancy": [w.to_json(self.t0) for w in self.windows],
                "expected_caller_errors": sum(w.caller_errors for w in self.windows)}


def redundancy_windows(out: Any, budget: Mapping[str, float],
                       end_ns: int | None = None) -> list[RedundancyWindow]:
    """The history outline's beyond-redundancy windows (``harness.checks.episodes``)."""
    end = end_ns if end_ns is not None else max(
        [*(f.stop_ns or f.start_ns for f in out.faults), *(e.time_ns for e in out.replicas), 0])
    return beyond_redundancy(out.faults, out.replicas, float(budget.get("resync_s", 60.0)),
                             end)


def fault_judgement(history_path: str | os.PathLike[str],
                    fault_windows: Sequence[FaultWindow] | None = None,
                    budgets: Mapping[str, float] | None = None,
                    *, chunk: int | None = None) -> FaultsJudgement:
    """Per-fault numbers and the episodes' judgement of a history file, in one pass."""
    budget = resolve_budgets(budgets)
    out = outline(history_path)
    windows = list(out.faults if fault_windows is None else fault_windows)
    beyond = redundancy_windows(out, budget)
    timer = FaultTimer(windows, budget["stall_s"], [w.end_ns for w in beyond])
    stream = OpStream(history_path) if chunk is None else OpStream(history_path, chunk=chunk)
    for c in stream:
        timer.add(c)
        timer.pending(c)
    return judge_faults(timer, stream, out.replicas, budget, history_path, beyond)


def finish_reports(timer: FaultTimer, stream: OpStream, replicas: list[ReplicaState],
                   budget: dict[str, float],
                   history_path: str | os.PathLike[str]) -> list[FaultReport]:
    """Turn a consumed stream's accumulated state into reports (see ``per_fault_report``)."""
    return judge_faults(timer, stream, replicas, budget, history_path, []).reports


@dataclass(slots=True)
class _Tables:
    gs: np.ndarray
    ge: np.ndarray
    slow: np.ndarray
    errors: np.ndarray
    end: int
    t0: int
    beyond: list[tuple[int, int]] = field(default_factory=list)  # the windows, unsettled


def judge_faults(timer: FaultTimer, stream: OpStream, replicas: list[ReplicaState],
                 budget: dict[str, float], history_path: str | os.PathLike[str],
                 beyond: Sequence[RedundancyWindow]) -> FaultsJudgement:
    """Each fault's numbers, then each episode judged (``harness.checks.episodes``):
    outside the beyond-redundancy windows (and their settle) as one fault always was."""
    end = stream.end_ns
    first = stream.first_ns if stream.first_ns is not None else 0
    t0 = min([first, *(w.start_ns for w in timer.windows)]) if timer.windows else first
    if timer.origin is None:
        timer.origin = t0
    gs, ge = timer.gaps(first, end)
    tables = _Tables(gs, ge, timer.slow.table(),
                     caller_errors(timer.errors.table(), history_path), end, t0,
                     [(w.start_ns, w.end_ns) for w in beyond])
    spans = excused_spans(beyond, settle_s(budget))
    settle = int(settle_s(budget) * 1e9)
    for r in tables.errors:  # each expected error counted once: in its window, else the
        w = next((w for w in beyond if w.start_ns <= r[1] <= w.end_ns), None) or next(
            (w for w in beyond if w.start_ns <= r[1] <= w.end_ns + settle), None)  # settle
        if w is not None:
            w.caller_errors += 1
    groups = episodes(timer.windows)
    reports: list[FaultReport] = []
    by_fault: dict[int, FaultReport] = {}
    for e in groups:
        for w in e.faults:
            rep, _ = _measured(timer, stream, tables, w, [], replicas, spans)
            rep.episode = e.index
            by_fault[w.fault] = rep
    judged: list[FaultReport] = []
    for e in groups:
        w = e.window(budget)
        rep, rows = _measured(timer, stream, tables, w, spans, replicas)
        rep.episode, rep.faults = e.index, [f.name for f in e.faults]
        _judge(rep, w, budget, bool(replicas), rows, history_path, end)
        first_fault = by_fault[e.faults[0].fault]
        if len(e.faults) == 1:
            by_fault[e.faults[0].fault] = rep  # a lone fault: its own report, judged
        else:
            first_fault.problems.extend(rep.problems)
        judged.append(rep)
    reports = [by_fault[w.fault] for w in timer.windows]
    return FaultsJudgement(reports, judged, list(beyond), t0, spans)


def _measured(timer: FaultTimer, stream: OpStream, t: _Tables, w: FaultWindow,
              spans: Sequence[tuple[int, int]], replicas: list[ReplicaState],
              expected: Sequence[tuple[int, int]] = ()
              ) -> tuple[FaultReport, tuple[np.ndarray, np.ndarray]]:
    """One window's numbers, and its stalled and judged error rows; the parts inside
    ``spans`` (beyond redundancy, and the settle after) are not judged. Errors completed
    inside ``expected`` (default: ``spans``) are counted apart."""
    expected = expected or spans
    a = w.start_ns
    b = w.stop_ns if w.stop_ns is not None else t.end
    lo = int(np.searchsorted(t.ge, a, side="right"))
    hi = int(np.searchsorted(t.gs, b, side="left"))
    gap, g_from, g_to = 0, None, None
    if hi > lo:
        gs, ge = t.gs[lo:hi], t.ge[lo:hi]
        lengths = ge - gs
        starts = gs.copy()
        for s, e in spans:
            hit = np.flatnonzero((gs < e) & (ge > s))
            for k in hit.tolist():  # the longest part judged, of those in the window
                parts = [(x, y) for x, y in outside(int(gs[k]), int(ge[k]), spans)
                         if x <= b and y >= a]
                best = max(parts, key=lambda p: p[1] - p[0], default=(int(gs[k]), int(gs[k])))
                lengths[k], starts[k] = best[1] - best[0], best[0]
        i = int(np.argmax(lengths))
        if lengths[i] > 0:
            gap, g_from, g_to = int(lengths[i]), int(starts[i]), int(starts[i] + lengths[i])
    longest = _longest_op(timer, t.slow, a, b, t.end, spans)
    stalled = _overlapping(t.slow, a, b, t.end)
    stalled = stalled[np.array([judged_length(int(r[0]), int(x), spans) > timer.stall_ns
                                for r, x in zip(stalled, _completed(stalled, t.end),
                                                strict=True)], dtype=bool).reshape(-1)]
    errs = _overlapping(t.errors, a, b, t.end)
    expected_rows = np.array([inside(int(r[1]), expected) for r in errs],
                             dtype=bool).reshape(-1)
    rep = FaultReport(
        fault=w.fault, name=w.name, kind=w.attrs.get("kind"),
        target=w.attrs.get("target"), injected_s=(a - t.t0) / 1e9,
        healed_s=None if w.stop_ns is None else (w.stop_ns - t.t0) / 1e9,
        longest_gap_s=gap / 1e9,
        gap_from_s=None if g_from is None else (g_from - t.t0) / 1e9,
        gap_to_s=None if g_to is None else (g_to - t.t0) / 1e9,
        longest_op_s=None if longest is None else longest[0] / 1e9,
        op_from_s=None if longest is None else (longest[1] - t.t0) / 1e9,
        stalled_ops=len(stalled), caller_errors=int((~expected_rows).sum()),
        heal_to_all_paths_s=None, expected_caller_errors=int(expected_rows.sum()),
    )
    if w.stop_ns is not None:
        after = max([w.stop_ns, *(e for s, e in (t.beyond if spans else [])
                                  if s <= w.stop_ns <= e)])
        _paths_back(rep, timer, stream, w, t.end, after)
        if replicas:
            rep.heal_to_synchronized_s = _synchronized_after(replicas, w.stop_ns)
    return rep, (stalled, errs[~expected_rows])


def _completed(rows: np.ndarray, end_ns: int) -> np.ndarray:
    return np.where(rows[:, 1] == NEVER, end_ns, rows[:, 1])


def caller_errors(errors: np.ndarray, history_path: str | os.PathLike[str]) -> np.ndarray:
    """The error rows a caller saw: without the operations a crashed client abandoned."""
    if not len(errors):
        return errors
    gone = np.array(abandoned_at(history_path, [int(r[5]) for r in errors]), dtype=bool)
    return errors[~gone]


def _longest_op(timer: FaultTimer, slow: np.ndarray, a: int, b: int, end: int,
                spans: Sequence[tuple[int, int]] = ()) -> tuple[int, int] | None:
    """The longest operation in flight during ``[a, b]`` and when it was invoked, judged
    outside ``spans`` (its longest part there): an operation longer than ``stall_s`` is a
    row of ``slow`` (exact), a shorter one the longest of its 5 ms bucket."""
    best: tuple[int, int] | None = None
    if len(timer.lat_max):
        k0 = int(timer.bucket(a))
        k1 = min(int(timer.bucket(b + timer.max_latency)) + 1, len(timer.lat_max))
        lat, c = timer.lat_max[k0:k1], timer.lat_end[k0:k1]
        hit = (lat >= 0) & (c >= a) & (c - lat <= b)
        if spans:  # the slow ones are judged from their rows below
            hit &= lat <= timer.stall_ns
        if hit.any():
            i = int(np.argmax(np.where(hit, lat, -1)))
            best = (int(lat[i]), int(c[i] - lat[i]))
    rows = _overlapping(slow, a, b, end)
    for r, x in zip(rows, _completed(rows, end), strict=True):
        parts = outside(int(r[0]), int(x), spans) if spans else [(int(r[0]), int(x))]
        for p, q in parts:
            if best is None or q - p > best[0]:
                best = (q - p, p)
    return best


def _paths_back(rep: FaultReport, timer: FaultTimer, stream: OpStream, w: FaultWindow,
                end: int, after: int | None = None) -> None:
    """Each path's return, from the heal (or from ``after``, the end of a beyond-redundancy
    window it fell in, when that is later: no replica could serve before)."""
    assert w.stop_ns is not None
    since = w.stop_ns if after is None else after
    si = min(int(np.searchsorted(timer.stops, since)), len(timer.stops) - 1)
    for p, first_ok in sorted(timer.path_first_ok.items()):
        if first_ok >= w.start_ns:
            continue  # carried no I/O before the fault
        back = int(timer.back[p][si]) if p in timer.back else NEVER
        name = stream.path_names[p]
        retaken = _retaken(timer.windows, name, since)
        if retaken is not None and retaken < back:
            continue  # a later fault took it again first: this heal cannot be measured
        rep.paths_back_s[name] = None if back == NEVER else (back - since) / 1e9
    values = list(rep.paths_back_s.values())
    if values and all(v is not None for v in values):
        rep.heal_to_all_paths_s = max(v for v in values if v is not None)


def _retaken(windows_after: Sequence[FaultWindow], path: str, after: int) -> int | None:
    """When a later fault took ``path`` again, if one did: its record names the path, or
    it impairs the storage node the path leads to (a kill, power loss or freeze of that
    node, or a failed disk under it, takes every path to it)."""
    host = path.rsplit("/", 1)[-1]
    starts = [f.start_ns for f in windows_after
              if f.start_ns > after and (path in (f.attrs.get("paths") or [])
                                         or impaired_host(f) == host)]
    return min(starts, default=None)


def _judge(rep: FaultReport, w: FaultWindow, budget: dict[str, float], has_replicas: bool,
           rows: tuple[np.ndarray, np.ndarray], history_path: str | os.PathLike[str],
           end: int) -> None:
    stalled, errs = rows
    recs = list(w.records)

    def cite(rows: np.ndarray) -> list[dict[str, Any]]:
        offs = [int(x) for r in rows[:MAX_CITED_OPS] for x in (r[4], r[5])]
        return recs + read_records(history_path, offs)

    def over(measure: str, value: float, name: str, text: str,
             records: list[dict[str, Any]] | None = None) -> None:
        limit = budget[name]
        rep.budgets[name] = limit
        if value > limit:
            unit = "" if name.endswith("_max") else " s"
            shown = f"{value:g}" if name.endswith("_max") else f"{value:.3f} s"
            rep.problems.append(Problem(
                "over_budget",
                f"over budget: {w.name}: {text.format(shown)}; budget {name} = {limit:g}{unit}",
                records=records if records is not None else recs,
                detail={"measure": measure, "value": value, "budget": limit,
                        "budget_name": name, "fault": w.name}))

    gap_budget = w.attrs.get("budget")
    if not (isinstance(gap_budget, str) and gap_budget in budget):
        gap_budget = "io_pause_s" if "io_pause_s" in budget else None
    if gap_budget is not None:
        over("longest_gap", rep.longest_gap_s, gap_budget,
             "no I/O completed for {}" + (f" (from {rep.gap_from_s:.3f} s)"
                                          if rep.gap_from_s is not None else ""))
    if "op_latency_s" in budget and rep.longest_op_s is not None:
        over("longest_op", rep.longest_op_s, "op_latency_s", "the longest operation took {}"
             + (f" (from {rep.op_from_s:.3f} s)" if rep.op_from_s is not None else ""))
    if "stalled_ops_max" in budget:
        over("stalled_ops", rep.stalled_ops, "stalled_ops_max",
             "{} operations took longer than stall_s = " + f"{budget['stall_s']:g} s",
             cite(stalled))
    if "caller_errors_max" in budget:
        over("caller_errors", rep.caller_errors, "caller_errors_max",
             "{} errors returned to the caller", cite(errs))
    if w.stop_ns is None:
        rep.problems.append(Problem("not_healed", f"{w.name} was never healed in this history",
                                    records=recs, detail={"fault": w.name}))
        return
    limit = budget["heal_to_all_paths_s"]
    rep.budgets["heal_to_all_paths_s"] = limit
    missing = [path for path, back in rep.paths_back_s.items() if back is None]
    if missing:
        rep.problems.append(Problem(
            "path_not_restored",
            f"path not restored: after healing {w.name} no I/O succeeded again on "
            f"{', '.join(missing)} (in the {(end - w.stop_ns) / 1e9:.3f} s to the end of "
            "the history)", records=recs, device=",".join(missing),
            detail={"fault": w.name, "paths": missing}))
    elif rep.heal_to_all_paths_s is not None:
        over("heal_to_all_paths", rep.heal_to_all_paths_s, "heal_to_all_paths_s",
             "every path carried I/O again {} after the heal")
    if "resync_s" in budget and has_replicas:
        if rep.heal_to_synchronized_s is None:
            rep.budgets["resync_s"] = budget["resync_s"]
            rep.problems.append(Problem(
                "not_resynchronized", f"after healing {w.name} the replicas never all "
                "reported synchronized", records=recs, detail={"fault": w.name}))
        else:
            over("heal_to_synchronized", rep.heal_to_synchronized_s, "resync_s",
                 "the replicas were synchronized again {} after the heal")


def faults_verdict(reports: Sequence[FaultReport],
                   judgement: FaultsJudgement | None = None) -> Verdict:
    """The ``faults`` checker's verdict: every report's problems (an episode's are on its
    first fault's report), the numbers as stats, and with a ``judgement`` its episodes and
    the windows beyond redundancy."""
    stats: dict[str, Any] = {"faults": [{k: v for k, v in r.to_json().items()
                                         if k != "problems"} for r in reports]}
    if judgement is not None:
        stats.update(judgement.stats())
    return Verdict("faults", [p for r in reports for p in r.problems], stats)


def _num(v: float | None, width: int = 7) -> str:
    return f"{'-':>{width}}" if v is None else f"{v:>{width}.3f}"


def table_lines(reports: Sequence[FaultReport]) -> list[str]:
    """The per-fault table as text lines (times in seconds)."""
    head = (f"{'fault':<34} {'at':>7} {'healed':>7} {'gap':>7} {'op max':>7} {'stall':>5} "
            f"{'errs':>4} {'paths':>7} {'sync':>7}  verdict")
    lines = [head]
    for r in reports:
        verdict = "ok" if r.valid else ", ".join(
            p.detail.get("budget_name") or p.kind for p in r.problems)
        lines.append(f"{r.name[:34]:<34} {_num(r.injected_s)} {_num(r.healed_s)} "
                     f"{_num(r.longest_gap_s)} {_num(r.longest_op_s)} {r.stalled_ops:>5} "
                     f"{r.caller_errors:>4} {_num(r.heal_to_all_paths_s)} "
                     f"{_num(r.heal_to_synchronized_s)}  {verdict}")
    return lines
