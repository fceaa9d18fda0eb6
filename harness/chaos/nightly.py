"""The randomized nemesis (the nightly) and shrinking a failing schedule.

The nightly breaks one HA pair for ``duration_s`` with a dense, seeded schedule
drawn by the one generator (``schedule.draw_schedule``) from every family's
faults (``nemesis_catalogue``: each catalogue scenario's faults on this device,
by family): a fault every few seconds (``NIGHTLY``: 1-5 s long after 0.5-3 s
gaps), compound and overlapping faults allowed (never two on one target),
family weights configurable (under the heartbeat strategy the split-brain family only
when asked for: its documented risk stops a correct device until an administrator
acts). The schedule is printed, saved as
``schedule.json`` and replayable (``--replay``); the run is judged like any
scenario (evidence per fault, every checker), split brain allowed as the
documented risk only under the heartbeat strategy.

``shrink`` is delta debugging over a failed run's schedule: it drops halves,
then single faults, then shortens the rest, re-running each candidate on the
site and keeping it while the run still fails the same way, within a bounded
number of attempts; the smallest failing schedule is written as a scenario
file (``shrunk-scenario.json``) that ``--replay`` and the suites can run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.chaos.scenario import (
    FAMILIES,
    FaultTemplate,
    Scenario,
    ScenarioError,
    ScenarioRun,
    device_for,
    resolve,
    run_schedule,
    site_links,
)
from harness.chaos.scenarios import SCENARIOS
from harness.chaos.schedule import Density, DeviceFaults, draw_schedule
from harness.checks.results import ResultWord
from harness.faults.nemesis import FaultSpec, Schedule, Step
from harness.lab.inventory import HaDevice, Inventory

NIGHTLY = Density(fault_s=(1.0, 5.0), gap_s=(0.5, 3.0), relative=False, overlap=0.3,
                  tail_s=1.0)


def parse_weights(text: str | None) -> dict[str, float] | None:
    """``sync-link=3,primary=1`` -> weights per family (families not named get 0)."""
    if not text:
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if name not in FAMILIES or weight < 0:
            raise ScenarioError(f"--weights {text!r}: use FAMILY=WEIGHT[,...] with families "
                                f"{', '.join(FAMILIES)} and weights >= 0")
        out[name] = weight
    return out


def nightly_scenario(device: HaDevice, duration_s: float, name: str = "nemesis") -> Scenario:
    return Scenario(
        name=name, family="nemesis",
        proves="A dense seeded nemesis (every family, compound and overlapping faults) "
               "never loses an acknowledged write, never leaves two Synchronized replicas "
               "different, and every fault heals to Synchronized with every path up.",
        faults=(), duration_s=duration_s,
        split_brain="allowed" if device.strategy.value == "heartbeat" else "forbidden",
        settle_s=30.0, writers=4, queue_depth=4, span_bytes=0,
    )


def nemesis_catalogue(inventory: Inventory, device: HaDevice,
                      links: list[str] | None = None) -> DeviceFaults:
    """Every catalogue scenario's faults on ``device``, by family (duplicates once)."""
    by_kind: dict[str, list[FaultSpec]] = {}
    hosts_lost: dict[FaultSpec, tuple[str, ...]] = {}
    path_lost: dict[FaultSpec, tuple[str, str]] = {}
    for scenario in SCENARIOS:
        if scenario.strategy not in (None, device.strategy.value):
            continue
        try:
            faults, _ = resolve(scenario, inventory, device, links)
        except ScenarioError:
            continue
        for specs in faults.by_kind.values():
            for spec in specs:
                kind = by_kind.setdefault(scenario.family, [])
                if spec not in kind:
                    kind.append(spec)
        hosts_lost.update(faults.hosts_lost)
        path_lost.update(faults.path_lost)
    return DeviceFaults(device.alias, {k: tuple(v) for k, v in by_kind.items()},
                        hosts_lost, path_lost)


def nightly_plan(inventory: Inventory, *, seed: int, duration_s: float,
                 weights: Mapping[str, float] | None = None, links: list[str] | None = None,
                 replay: Schedule | None = None) -> tuple[HaDevice, DeviceFaults, Schedule]:
    """The device, its fault catalogue and the seeded (or replayed) schedule."""
    if duration_s <= 0:
        raise ScenarioError(f"--duration {duration_s:g} must be positive (seconds)")
    probe = Scenario("nemesis", "nemesis", "", (), duration_s)
    device = device_for(inventory, probe)
    faults = nemesis_catalogue(inventory, device, links)
    if replay is not None:
        return device, catalogue_with(faults, replay), replay
    schedule = draw_schedule(faults.by_kind, list(faults.by_kind), seed=seed,
                             duration_s=duration_s, density=NIGHTLY,
                             weights=default_weights(device, list(faults.by_kind), weights))
    return device, faults, schedule


def default_weights(device: HaDevice, kinds: list[str],
                    weights: Mapping[str, float] | None) -> dict[str, float]:
    """Equal weights unless given (families not named get 0). Under the heartbeat strategy
    the split-brain family is left out by default: a full partition is its documented risk,
    and a correct device then waits for an administrator, which would end the run there."""
    if weights is not None:
        return {k: weights.get(k, 0.0) for k in kinds}
    heartbeat = device.strategy.value == "heartbeat"
    return {k: 0.0 if heartbeat and k == "split-brain" else 1.0 for k in kinds}


def catalogue_with(faults: DeviceFaults, schedule: Schedule) -> DeviceFaults:
    """``faults`` plus any spec of a replayed schedule it does not know (kind: its action)."""
    by_kind = {k: list(v) for k, v in faults.by_kind.items()}
    known = {s for v in faults.by_kind.values() for s in v}
    for step in schedule.steps:
        if step.spec not in known:
            by_kind.setdefault(step.spec.action, []).append(step.spec)
    return replace(faults, by_kind={k: tuple(v) for k, v in by_kind.items()})


def run_nightly(sut: Any, *, seed: int, duration_s: float, output: Path,
                weights: Mapping[str, float] | None = None, replay: Schedule | None = None,
                fresh: bool = False, budget_profile: str = "default",
                out: Any = None, capture: bool = False) -> ScenarioRun:
    device, faults, schedule = nightly_plan(sut.inventory, seed=seed, duration_s=duration_s,
                                            weights=weights, links=site_links(sut),
                                            replay=replay)
    if replay is not None:
        duration_s = max(duration_s, schedule.duration_s + 2.0)
    scenario = nightly_scenario(device, duration_s)
    return run_schedule(sut, scenario, device, faults, schedule, output=output, fresh=fresh,
                        budget_profile=budget_profile, out=out, capture=capture,
                        administrator=True)


# -- shrinking --------------------------------------------------------------------------------


def failure_signature(reason: str) -> str:
    """What kind of failure a reason names: its words before the first colon."""
    return reason.split(":", 1)[0].strip().lower()


def candidates(steps: list[Step]) -> list[list[Step]]:
    """Smaller schedules to try, smallest first: halves, each single fault left out, each
    fault shortened to half (at least 1 s)."""
    out: list[list[Step]] = []
    n = len(steps)
    if n > 1:
        out += [steps[: n // 2], steps[n // 2:]]
    if n > 2:
        out += [steps[:i] + steps[i + 1:] for i in range(n)]
    shorter = [replace(s, duration_s=max(1.0, round(s.duration_s / 2, 3))) for s in steps]
    if shorter != steps:
        out.append(shorter)
    return out


def as_scenario(steps: list[Step], base: Scenario, name: str) -> Scenario:
    """A scenario file of concrete faults, starting 1.5 s in, lasting until 2 s after."""
    shift = min((s.at_s for s in steps), default=0.0) - 1.5
    faults = tuple(FaultTemplate.of(round(s.at_s - shift, 3), s.duration_s, s.spec.action,
                                    s.spec.target, **s.spec.kwargs) for s in steps)
    end = max((f.at_s + f.duration_s for f in faults), default=3.0)
    return replace(base, name=name, family=base.family, faults=faults,
                   duration_s=round(end + 2.0, 3))


def shrink(run_dir: Path, attempt: Callable[[Scenario, int], ScenarioRun], *,
           max_attempts: int = 8, say: Callable[[str], None] = lambda _: None) -> Path:
    """Search a smaller schedule that still fails like ``run_dir``'s run; write it as
    ``run_dir/shrunk-scenario.json`` and return that path. ``attempt(scenario, n)`` runs
    one candidate on the site."""
    schedule, base, reason = read_failed_run(run_dir)
    want = failure_signature(reason)
    steps = list(schedule.steps)
    best = as_scenario(steps, base, f"{base.name}-shrunk")
    tries = 0
    improved = True
    while improved and tries < max_attempts:
        improved = False
        for cand in candidates(steps):
            if tries >= max_attempts:
                break
            tries += 1
            scenario = as_scenario(cand, base, f"{base.name}-shrunk")
            say(f"shrink: attempt {tries}/{max_attempts}: {len(cand)} fault(s), "
                f"{scenario.duration_s:g} s")
            done = attempt(scenario, tries)
            got = done.result
            if got.result is ResultWord.FAILED and failure_signature(got.reason) == want:
                say(f"shrink: still fails ({got.reason[:120]})")
                steps, best, improved = cand, scenario, True
                break
            say(f"shrink: passes or fails otherwise ({got.result}: {got.reason[:100]})")
    target = run_dir / "shrunk-scenario.json"
    target.write_text(json.dumps(best.to_json(), indent=1) + "\n", encoding="utf-8")
    say(f"shrink: {len(schedule.steps)} fault(s) -> {len(best.faults)}, "
        f"{base.duration_s:g} s -> {best.duration_s:g} s, in {tries} attempt(s); "
        f"written to {target}")
    return target


def read_failed_run(run_dir: Path) -> tuple[Schedule, Scenario, str]:
    """The schedule, scenario and failure reason of a failed run (one line if it is not)."""
    try:
        schedule = Schedule.from_json(json.loads((run_dir / "schedule.json").read_text()))
        scenario = Scenario.from_json(json.loads((run_dir / "scenario.json").read_text()))
        verdict = json.loads((run_dir / "verdict.json").read_text())
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"{run_dir} is not a chaos run directory with schedule.json, "
                            f"scenario.json and verdict.json: {exc}") from None
    run = verdict.get("run", {}) if isinstance(verdict, dict) else {}
    if run.get("result") != str(ResultWord.FAILED):
        raise ScenarioError(f"the run in {run_dir} did not fail ({run.get('result')}); "
                            "there is nothing to shrink")
    return schedule, scenario, str(run.get("reason", ""))
