"""A chaos scenario's verdict: one ``CheckResult`` in the wizard's words, with its evidence.

The rules, in order (the first that applies decides):

1. the site was not in its steady state before the first fault: **Failed**;
2. a fault could not be injected, or shows no evidence that it took effect:
   **Failed** ("failed injection"), never a pass;
3. the replicas hold different data and *both report Synchronized*: **Failed**,
   "split brain merged silently" (each side acknowledged writes the other lacks)
   or "replicas diverged";
4. split brain (each replica acknowledged writes the other never saw) where the
   scenario forbids it (node majority, or any fault but a full partition under
   the heartbeat strategy): **Failed**, "split brain";
5. split brain where the strategy's documented risk allows it, detected and kept
   Not synchronized by the device: **Warning**, "split brain", with the side an
   administrator marked (on a real site, which cannot read the replicas the device
   keeps apart, a split brain is every replica kept Not synchronized plus reads that
   missed writes acknowledged through the other side);
6. where the scenario says an outage is correct (no replica may serve, e.g. both nodes
   down), timing problems alone: **Success**, the numbers in the reason;
7. any other problem of a checker or of the run: **Failed**, the first problem's words.
   In the randomized nemesis too: its availability is already judged honestly where
   faults overlap (``harness.checks.episodes``): overlapping faults form one episode
   judged against the largest budget among them, and errors and pauses while every
   replica was impaired by injected faults (beyond the device's redundancy) are
   expected, counted apart, never problems. What remains is an outage, a slow
   operation or an error while a usable replica existed, which a cluster sees as a
   failed disk exactly as after one fault: **Failed**, not a Warning (a Warning that
   every nightly shows is read as noise, and the defect it names ships);
8. otherwise **Success**, with the errors and pauses beyond redundancy, if any, in the
   reason and the evidence.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from harness.chaos.evidence import FaultEvidence
from harness.chaos.runner import RunOutcome
from harness.checks.episodes import merged
from harness.checks.results import CheckResult, Evidence, ResultWord
from harness.lab.inventory import HaDevice

# problems that follow from a split brain the device kept apart (rule 5), not separate findings
SPLIT_BRAIN_CONSEQUENCES = ("not_synchronized", "path_unusable", "unreadable", "split_brain",
                            "diverged", "stale_read", "nonmonotonic_read", "lost", "stale",
                            "unreadable_block",
                            # the device refuses I/O until an administrator marks a side
                            "over_budget", "no_recovery", "path_not_restored", "not_healed",
                            "not_resynchronized",
                            # a real site reads replicas only through their own paths, which
                            # a replica kept Not synchronized does not serve
                            "replicas_not_compared")


# what the per-fault timing report finds (rule 6: an outage the scenario calls correct)
TIMING_KINDS = ("over_budget", "no_recovery", "path_not_restored", "not_healed")


# what a lost or different acknowledged write looks like (the checkers' kinds)
DATA_KINDS = ("split_brain", "diverged", "lost", "stale", "stale_read", "nonmonotonic_read",
              "torn", "corrupt", "misplaced", "phantom")


def timing_only(p: Any) -> bool:
    """A timing measure over budget; errors returned to the caller never are (MPIO must
    hide every fault from the application, however many overlap)."""
    return p.kind in TIMING_KINDS and "caller" not in p.message


def _windows(outcome: RunOutcome) -> list[dict[str, Any]]:
    faults = outcome.verdict.verdict("faults")
    return list(faults.stats.get("beyond_redundancy") or []) if faults is not None else []


def window_line(w: Mapping[str, Any]) -> str:
    return (f"{w['from_s']:.3f} .. {w['to_s']:.3f} s: every replica impaired "
            f"({'; '.join(w.get('causes') or [])}); {w.get('caller_errors', 0)} caller "
            "error(s) in it or its settle")


def beyond_redundancy_text(outcome: RunOutcome) -> str:
    """The errors and pauses that were expected (every replica impaired), in numbers."""
    windows = _windows(outcome)
    if not windows:
        return ""
    errors = sum(int(w.get("caller_errors", 0)) for w in windows)
    spans = ", ".join(f"{w['from_s']:.1f}-{w['to_s']:.1f} s" for w in windows[:6])
    more = f" and {len(windows) - 6} more" if len(windows) > 6 else ""
    return (f"; {len(windows)} interval(s) beyond the device's redundancy (every replica "
            f"impaired by injected faults: {spans}{more}) with {errors} caller error(s), "
            "expected there")


def first_split(problems: list[Any]) -> str:
    return next((p.message for _, p in problems if p.kind == "split_brain"), "split brain")


def _numbers(outcome: RunOutcome) -> dict[str, float | int | str]:
    nums: dict[str, float | int | str] = {}
    timing = outcome.verdict.verdict("timing")
    if timing is not None:
        for key in ("longest_pause_s", "caller_errors", "longest_op_s",
                    "expected_caller_errors"):
            value = timing.stats.get(key)
            if isinstance(value, (int, float)):
                nums[key] = value
    if outcome.workload is not None:
        w = outcome.workload
        nums.update(ops=w.ops, ok=w.ok, fail=w.fail, info=w.info, writes=w.writes,
                    reads=w.reads)
    if "resync_wait_s" in outcome.meta:
        nums["synchronized_after_s"] = round(float(outcome.meta["resync_wait_s"]), 3)
    nums["faults"] = len(outcome.schedule.steps)
    windows = _windows(outcome)
    if windows:
        nums["beyond_redundancy_windows"] = len(windows)
        nums["beyond_redundancy_s"] = round(sum(w["to_s"] - w["from_s"] for w in windows), 3)
    nums["elapsed_s"] = outcome.meta.get("elapsed_s", 0.0)
    return nums


SETTLE_NS = 2_000_000_000  # writes acknowledged this long into a partition: each side alone


def _took_effect(fault: Any) -> int:
    """When the fault was in place: the nemesis's ``applied_ns`` (an injection over SSH
    takes seconds), else its start record."""
    applied = [r.get("applied_ns") for r in fault.records if r.get("applied_ns") is not None]
    return max([int(fault.start_ns), *(int(a) for a in applied)])


def _healing(fault: Any) -> int:
    """When its heal began (``healing_ns``), else its stop record, else never."""
    healing = [r.get("healing_ns") for r in fault.records if r.get("healing_ns") is not None]
    if healing:
        return int(healing[0])
    return int(fault.stop_ns) if fault.stop_ns is not None else 2**63


def acknowledged_alone(history: Any, device: HaDevice) -> list[dict[str, int]]:
    """Writes each storage host acknowledged while the sync link was broken, counted from
    ``SETTLE_NS`` into the fault (after sync loss and the fence), one count per host for
    each sync-loss window (overlapping sync faults make one window). Both hosts non-zero
    in one window is a split brain: each side carried on alone at the same time. Across
    windows it is not: in a nightly one window's survivor is often the other's stopped
    side, and the counts of different windows must never be added up."""
    if history is None:
        return []
    windows = merged((_took_effect(f) + SETTLE_NS, _healing(f))
                     for f in history.faults if str(f.attrs.get("target", "")).startswith("sync")
                     and f.attrs.get("action") in ("blackhole", "cut", "oneway"))
    counts = [{r.host: 0 for r in device.replicas} for _ in windows]
    if not windows:
        return []
    starts = [a for a, _ in windows]
    for o in history.ops:
        if o.f != "write" or o.outcome != "ok" or o.complete_ns is None or o.path is None:
            continue
        i = bisect.bisect_right(starts, o.invoke_ns) - 1
        if i >= 0 and o.complete_ns <= windows[i][1]:
            host = o.path.rsplit("/", 1)[-1]
            if host in counts[i]:
                counts[i][host] += 1
    return counts


def split_window(alone: list[dict[str, int]]) -> dict[str, int] | None:
    """The first sync-loss window in which every storage host acknowledged writes alone."""
    return next((c for c in alone if len(c) >= 2 and all(c.values())), None)


def kept_apart_on_a_real_site(sut: Any, after: dict[str, str],
                              problems: list[tuple[str, Any]]) -> str | None:
    """A split brain a real site shows without its images: the device keeps every replica
    Not synchronized after the heal (it saw each side carry on alone) and reads through
    one replica missed writes acknowledged through the other. The lab compares the
    images instead; a real site cannot read a replica its device keeps apart."""
    if not hasattr(sut, "lab") or sut.lab is not None or not after or any(
            s != "not synchronized" for s in after.values()):
        return None
    missed = [p for _, p in problems if p.kind in ("stale_read", "lost", "stale")]
    if not missed:
        return None
    return (f"split brain: the device kept every replica Not synchronized after the heal, "
            f"and {len(missed)} read(s) missed writes acknowledged through the other side "
            f"(first: {missed[0].message})")


def scenario_result(scenario: Any, outcome: RunOutcome, evidence: list[FaultEvidence],
                    recovery: list[str], device: HaDevice, sut: Any,
                    history: Any = None) -> CheckResult:
    problems = [(v.checker, p) for v in outcome.verdict.verdicts for p in v.problems]
    kinds = {p.kind for _, p in problems}
    after = outcome.meta.get("replicas_after") or {}
    both_synchronized = bool(after) and all(s == "synchronized" for s in after.values())
    divergence = outcome.verdict.verdict("divergence")
    alone = split_window(acknowledged_alone(history, device))
    split = bool(divergence and divergence.stats.get("split_brain")) or alone is not None
    split_text = (f"split brain: while the sync link was down each storage node acknowledged "
                  f"writes alone ({', '.join(f'{h}: {n}' for h, n in alone.items())})"
                  if alone is not None else first_split(problems))
    kept = kept_apart_on_a_real_site(sut, after, problems)
    if not split and kept is not None:
        split, split_text = True, kept
    failed_injections = [e for e in evidence if not e.proved]

    def first(kind: str) -> str:
        return next(p.message for _, p in problems if p.kind == kind)

    lost = [p for _, p in problems if p.kind in ("lost", "stale", "stale_read", "diverged",
                                                  "split_brain")]

    if "steady_state" in kinds:
        word, reason = ResultWord.FAILED, first("steady_state")
    elif "fault_failed" in kinds:
        word, reason = ResultWord.FAILED, "failed injection: " + first("fault_failed")
    elif failed_injections:
        word = ResultWord.FAILED
        reason = f"failed injection: {failed_injections[0].text}"
        data = [p for _, p in problems if p.kind in DATA_KINDS]
        if scenario.family == "nemesis" and data:  # the data problem explains the rest
            reason = (f"{data[0].message}; and {len(failed_injections)} fault(s) without "
                      f"evidence after it (first: {failed_injections[0].text})")
    elif split and both_synchronized:
        word = ResultWord.FAILED
        reason = (f"{split_text}; then merged silently: both replicas report Synchronized "
                  f"after the heal and nothing said split brain"
                  + (f"; {len(lost)} acknowledged-write problem(s), first: {lost[0].message}"
                     if lost else ""))
    elif ({"diverged"} & kinds) and both_synchronized:
        word, reason = ResultWord.FAILED, first("diverged")
    elif split and scenario.split_brain != "allowed":
        word = ResultWord.FAILED
        reason = f"{split_text}, under {device.strategy.value}, which must prevent it"
    elif split:
        word = ResultWord.WARNING
        reason = (f"{split_text} (the {device.strategy.value} strategy's documented risk); "
                  "the device kept the replicas Not synchronized until an administrator "
                  "marked one side")
        others = [p for _, p in problems if p.kind not in SPLIT_BRAIN_CONSEQUENCES]
        if others:
            word, reason = ResultWord.FAILED, f"{reason}; and {others[0].kind}: {others[0].message}"
    elif problems and getattr(scenario, "outage", ()) and all(
            timing_only(p) for _, p in problems):
        word = ResultWord.SUCCESS
        reason = (f"{len(evidence)} fault(s) took effect and healed; the I/O outage while no "
                  f"replica could serve is the correct behaviour ({len(problems)} timing "
                  f"measure(s) over the isolated-fault budgets, first: {problems[0][1].message}); "
                  "no acknowledged write lost, replicas identical and Synchronized")
    elif problems:
        checker, p = problems[0]
        word = ResultWord.FAILED
        reason = f"{p.message if p.message.startswith(p.kind) else f'{p.kind}: {p.message}'}"
        if len(problems) > 1:
            reason += f" (and {len(problems) - 1} more problem(s))"
        marks = outcome.meta.get("administrator") or []
        if marks and any(p.kind in DATA_KINDS for _, p in problems):
            reason = (f"split brain: the device stopped both sides during the run and the "
                      f"administrator marked one ({marks[0]}), so the other side's "
                      f"acknowledged writes are gone; {reason}")
    else:
        word = ResultWord.SUCCESS
        reason = (f"{len(evidence)} fault(s) took effect and healed; no acknowledged write "
                  "lost, replicas identical and Synchronized, timing within budget"
                  + beyond_redundancy_text(outcome))
    ev = [Evidence("steady state", str(outcome.meta.get("steady_state", "not reached")))]
    ev.append(Evidence("schedule", "\n".join(
        f"at {s.at_s:.2f} s for {s.duration_s:.2f} s: {s.spec}" for s in outcome.schedule.steps)
        or "no faults"))
    for e in evidence:
        ev.append(Evidence(f"{'took effect' if e.proved else 'NO EFFECT'}: {e.name}", e.text))
    if outcome.workload is not None:
        ev.append(Evidence("workload", outcome.workload.summary()))
    ev.append(Evidence("replicas after the run",
                       ", ".join(f"{h}: {s}" for h, s in after.items()) or "not read"))
    for window in _windows(outcome):
        ev.append(Evidence("beyond redundancy (expected, not judged)", window_line(window)))
    for line in outcome.meta.get("administrator", []):
        ev.append(Evidence("administrator during the run", line))
    for line in recovery:
        ev.append(Evidence("recovery", line))
    for checker, p in problems[:20]:
        ev.append(Evidence(f"problem ({checker}: {p.kind})", p.message))
    for v in outcome.verdict.verdicts:
        ev.append(Evidence(f"checker {v.checker}", "ok" if v.valid else
                           f"{len(v.problems)} problem(s)"))
    started = float(outcome.meta.get("started_wall", 0.0))
    return CheckResult(
        kind="chaos", category="Chaos", name=scenario.name, description=scenario.proves,
        result=word, reason=reason, started=started,
        finished=started + float(outcome.meta.get("elapsed_s", 0.0)),
        evidence=ev, numbers=_numbers(outcome),
        labels={"family": scenario.family, "seed": str(outcome.schedule.seed),
                "scenario": scenario.name, "site": sut.inventory.site.name,
                "device": device.alias},
    )
