"""Migrations judged against the inventory's time budgets.

Budgets (seconds, ``[budgets.<profile>]`` in the inventory):

- ``live_migration_s``: a live migration's total time, start to source cleaned up;
- ``live_migration_blackout_s``: the p99 (nearest rank) of the live migrations'
  blackout, pause to resume on the destination;
- ``quick_migration_downtime_s``: a quick migration's downtime, pause to resume.

A budget the inventory does not name is not judged, and the verdict's stats
say so; the numbers are always reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from harness.checks.verdict import Problem, Verdict
from harness.cluster.migration import MigrationReport


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by nearest rank (p99 of 20 values is the largest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def judge_migrations(reports: Sequence[MigrationReport],
                     budgets: Mapping[str, float]) -> Verdict:
    """Problems (``over_budget``) for migrations outside their budgets, and the numbers."""
    live = [r for r in reports if r.kind == "live"]
    quick = [r for r in reports if r.kind == "quick"]
    problems: list[Problem] = []
    stats: dict[str, float | int | str] = {"live": len(live), "quick": len(quick)}
    blackouts = [r.blackout_s for r in live if r.blackout_measured]
    if live:
        stats.update(total_max_s=max(r.total_s for r in live))
    if live and not blackouts:
        stats["blackout"] = "not measured (the hypervisor's own migration)"
    if blackouts:
        stats.update(blackout_p50_s=nearest_rank(blackouts, 0.5),
                     blackout_p99_s=nearest_rank(blackouts, 0.99),
                     blackout_max_s=max(blackouts))
        limit = budgets.get("live_migration_blackout_s")
        if limit is not None and stats["blackout_p99_s"] > limit:
            problems.append(Problem(
                "over_budget", f"over_budget: live migration blackout p99 "
                f"{stats['blackout_p99_s']:.3f} s > live_migration_blackout_s {limit} s",
                detail={"budget": "live_migration_blackout_s", "limit_s": limit,
                        "blackouts_s": blackouts}))
    if live:
        limit = budgets.get("live_migration_s")
        for i, r in enumerate(live):
            if limit is not None and r.total_s > limit:
                problems.append(Problem(
                    "over_budget", f"over_budget: live migration {i + 1} of {r.vm} "
                    f"({r.source} -> {r.destination}) took {r.total_s:.2f} s > "
                    f"live_migration_s {limit} s", detail=r.to_json()))
    if quick:
        downtimes = [r.blackout_s for r in quick if r.blackout_measured]
        if downtimes:
            stats.update(downtime_max_s=max(downtimes))
        limit = budgets.get("quick_migration_downtime_s")
        for i, r in enumerate(quick):
            if limit is not None and r.blackout_measured and r.blackout_s > limit:
                problems.append(Problem(
                    "over_budget", f"over_budget: quick migration {i + 1} of {r.vm} was down "
                    f"{r.blackout_s:.2f} s > quick_migration_downtime_s {limit} s",
                    detail=r.to_json()))
    stats["judged"] = ", ".join(b for b in ("live_migration_s", "live_migration_blackout_s",
                                            "quick_migration_downtime_s") if b in budgets) \
        or "nothing (no migration budget in the inventory)"
    return Verdict("migration-budget", problems, stats)
