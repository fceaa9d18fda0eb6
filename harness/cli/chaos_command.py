"""``splitbrain chaos``: the chaos suites from the command line, on the lab or a real site.

``--profile smoke`` (the default) runs every catalogue scenario once, short;
``--scenario NAME[,NAME...]`` only those (or a scenario file written by ``--shrink``);
``--profile nightly`` runs the randomized nemesis for ``--duration`` seconds with
``--seed`` (dense, compound faults from every family, ``--weights``), printing
and saving its schedule; ``--replay FILE`` plays a saved ``schedule.json`` (or a
scenario file) instead; ``--shrink RUN_DIR`` searches a smaller schedule that
still fails like that run and writes it as a scenario file.

Every scenario writes a result record (``results/*.json``, with its timeline,
history, schedule and fault journal attached) under ``--output``. A site whose
inventory does not say ``destructive = true`` is refused in one line before
anything is touched; so are an unknown scenario, a schedule file that does not
parse, a duration of 0 and an inventory without the device a scenario needs.
Exits 0 when no scenario Failed (a Warning, such as the heartbeat strategy's
documented split brain, does not fail the run), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

HELP = "chaos suites: smoke (every scenario once) or the nightly randomized nemesis"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=("smoke", "nightly"), default="smoke",
                        help="smoke: every scenario once, short (default); nightly: the "
                             "randomized nemesis for --duration seconds")
    parser.add_argument("--scenario", default=None, metavar="NAME|FILE[,...]",
                        help="run only these catalogue scenarios (comma-separated; or a "
                             "scenario JSON file)")
    parser.add_argument("--seed", type=int, default=None, metavar="N",
                        help="seed of schedules and workloads (default: random, printed)")
    parser.add_argument("--duration", type=float, default=600.0, metavar="S",
                        help="nightly: seconds of randomized nemesis (default 600)")
    parser.add_argument("--weights", default=None, metavar="FAMILY=W[,...]",
                        help="nightly: how often each family's faults come (default: equal)")
    parser.add_argument("--inventory", type=Path, default=None, metavar="FILE",
                        help="inventory TOML (default: the bundled lab)")
    parser.add_argument("--replay", type=Path, default=None, metavar="FILE",
                        help="play a saved schedule.json (or a scenario file) instead of a "
                             "seeded one")
    parser.add_argument("--shrink", type=Path, default=None, metavar="RUN_DIR",
                        help="search a smaller schedule that still fails like this run's, and "
                             "write it as RUN_DIR/shrunk-scenario.json")
    parser.add_argument("--shrink-attempts", type=int, default=8, metavar="N",
                        help="runs the shrink may spend (default 8)")
    parser.add_argument("--capture", action="store_true",
                        help="capture each run's iSCSI traffic on the lab (root) as "
                             "capture.pcap and print the wire's timing beside the history's")
    parser.add_argument("--output", type=Path, default=None, metavar="DIR",
                        help="results directory (default reports/chaos-<UTC time>-<seed>/)")
    parser.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                        help="lab state directory (default: as `splitbrain lab up`)")
    parser.add_argument("--keep-lab", action="store_true",
                        help="leave a lab this command started up afterwards")
    parser.add_argument("--budget-profile", default="default", metavar="NAME",
                        help="the inventory's [budgets.NAME] to judge timing by")


def _replay(path: Path) -> tuple[Any, Any]:
    """(schedule, None) for a schedule.json, (None, scenario) for a scenario file."""
    from harness.chaos.scenario import Scenario, ScenarioError
    from harness.errors import SplitbrainError
    from harness.faults.nemesis import Schedule

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"--replay {path}: cannot read a schedule from it: {exc}") from None
    if isinstance(data, dict) and "faults" in data:
        return None, Scenario.from_json(data)
    try:
        return Schedule.from_json(data), None
    except SplitbrainError as exc:
        raise ScenarioError(f"--replay {path}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from harness.chaos.nightly import parse_weights
    from harness.chaos.scenario import ScenarioError, device_for, load_scenario
    from harness.chaos.scenarios import SCENARIOS, by_name
    from harness.cli.chaos_site import refuse_unsafe
    from harness.cli.lab_command import lab_inventory
    from harness.lab.inventory import load

    # everything a user can get wrong is refused here, before any site is touched
    inventory = load(args.inventory or lab_inventory())
    refuse_unsafe(inventory, "chaos")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    weights = parse_weights(args.weights)
    if args.duration <= 0:
        raise ScenarioError(f"--duration {args.duration:g} must be positive (seconds)")
    replay_schedule, replay_scenario = _replay(args.replay) if args.replay else (None, None)
    if args.shrink is not None:
        from harness.chaos.nightly import read_failed_run

        read_failed_run(args.shrink)
        scenarios: list[Any] = []
    elif replay_scenario is not None:
        scenarios = [replay_scenario]
    elif args.scenario is not None:
        scenarios = [load_scenario(name) if name.endswith(".json") else by_name(name)
                     for name in (n.strip() for n in args.scenario.split(",")) if name]
    elif args.profile == "smoke" and replay_schedule is None:
        scenarios = list(SCENARIOS)
    else:
        scenarios = []
    if args.scenario is not None or replay_scenario is not None:
        for scenario in scenarios:
            device_for(inventory, scenario)  # one line if the inventory lacks its device
    if args.profile == "nightly" or replay_schedule is not None:
        from harness.chaos.nightly import nightly_plan

        nightly_plan(inventory, seed=seed, duration_s=args.duration, weights=weights,
                     replay=replay_schedule)  # refuses a bad plan before the site is touched
    output = args.output or Path("reports") / (
        f"chaos-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{seed}")
    return Session(args, inventory, seed, weights, output).go(scenarios, replay_schedule)


class Session:
    """One ``splitbrain chaos`` invocation on its site."""

    def __init__(self, args: argparse.Namespace, inventory: Any, seed: int,
                 weights: Any, output: Path) -> None:
        self.args, self.inventory, self.seed, self.weights = args, inventory, seed, weights
        self.output = output
        self.failed = 0
        self.fresh = False
        from harness.report.console import Console

        # a bar and coloured result words on a terminal, timestamped lines in a log
        self.console = Console()
        from harness.report.scenario_record import BackgroundRecorder

        self.recorder = BackgroundRecorder()

    def say(self, text: str) -> None:
        self.console.line(text)

    def go(self, scenarios: list[Any], replay: Any) -> int:
        from harness.chaos.signals import RunInterrupted, signals_interrupt
        from harness.checks.results import ResultsDir, RunInfo, inventory_digest
        from harness.cli.chaos_site import open_site

        args = self.args
        results = ResultsDir(self.output)
        info = RunInfo(site=self.inventory.site.name, command=" ".join(["splitbrain",
                       "chaos", *sys.argv[2:]]), started=time.time(),
                       hosts=sorted(self.inventory.hosts),
                       inventory_digest=inventory_digest(self.inventory.path), seed=self.seed)
        what = (f"shrink {args.shrink}" if args.shrink else
                f"{len(scenarios)} scenario(s)" if scenarios else
                f"nightly nemesis, {args.duration:g} s")
        self.say(f"splitbrain chaos: {what}, seed {self.seed} (repeat with --seed {self.seed}), "
                 f"site {self.inventory.site.name!r}, results in {self.output}/")
        t0 = time.monotonic()
        with signals_interrupt():
            try:
                with open_site(self.inventory, command="chaos", state_dir=args.state_dir,
                               keep_lab=args.keep_lab, budget_profile=args.budget_profile,
                               say=self.say) as site:
                    self.fresh = site.fresh
                    if args.shrink is not None:
                        self._shrink(site.sut)
                    elif scenarios:
                        with self.console.progress("chaos scenarios", len(scenarios),
                                                   log_lines=False) as bar:
                            for n, scenario in enumerate(scenarios):
                                bar.update(n, scenario.name)
                                self._scenario(site.sut, scenario, results)
                            bar.update(len(scenarios))
                    else:
                        self._nightly(site.sut, replay, results)
            except RunInterrupted as exc:
                print(f"splitbrain chaos: interrupted by {exc}; faults healed, partial results "
                      f"in {self.output}/", file=sys.stderr)
                return 128 + exc.signum
            finally:  # the records still being written (while the lab went down)
                self.recorder.finish()
        info.finished = time.time()
        if self.inventory.lab is None:  # a real site: its hosts' logs (redacted) too
            from harness.remote import evidence

            evidence.collect_into(results, self.inventory, info.started, self.say)
        results.write_run(info)
        self.say(f"splitbrain chaos: {'FAILED' if self.failed else 'ok'}: "
                 f"{self.failed} failed, {time.monotonic() - t0:.0f} s; results in "
                 f"{self.output}/")
        return 1 if self.failed else 0

    def _record(self, done: Any, results: Any, output: Path) -> None:
        from harness.checks.results import ResultWord

        r = done.result
        # the record (timeline plot, attachments) is written while the next scenario runs
        self.recorder.submit(results, r, output, inventory=self.inventory.path)
        phases = done.outcome.meta.get("phases_s", {})
        self.say(f"  {r.name}: phases: " + ", ".join(f"{k} {v:.1f} s"
                                                      for k, v in phases.items() if v >= 0.05))
        if r.result is ResultWord.FAILED:
            self.failed += 1
        took = r.numbers.get("elapsed_s", 0)
        self.console.result(r.result.upper() if r.result is ResultWord.FAILED else r.result,
                            f"{r.name} ({r.labels.get('family')}, {took:.0f} s): {r.reason}")

    def _fresh(self) -> bool:
        fresh, self.fresh = self.fresh, False  # only the first run sees the zeros of a new lab
        return fresh

    def _scenario(self, sut: Any, scenario: Any, results: Any) -> None:
        from harness.chaos.scenario import (
            ScenarioError,
            device_for,
            real_site_cannot_play,
            run_scenario,
        )
        from harness.checks.results import CheckResult, ResultWord

        try:
            device_for(sut.inventory, scenario)
            # decided before it starts: a fault kind the site cannot inject is no failure
            reason = real_site_cannot_play(scenario, sut) if sut.lab is None else None
        except ScenarioError as exc:
            reason = str(exc)
        if reason is not None:
            results.write(CheckResult(
                kind="chaos", category="Chaos", name=scenario.name,
                description=scenario.proves, result=ResultWord.NOT_APPLICABLE, reason=reason,
                labels={"family": scenario.family, "seed": str(self.seed),
                        "scenario": scenario.name, "site": sut.inventory.site.name}))
            self.console.result("Not Applicable", f"{scenario.name}: {reason}")
            return
        output = self.output / "runs" / scenario.name
        done = run_scenario(sut, scenario, seed=self.seed, output=output, fresh=self._fresh(),
                            budget_profile=self.args.budget_profile, capture=self.args.capture,
                            out=self.console.writer(f"  {scenario.name}: "))  # its phases
        self._record(done, results, output)

    def _nightly(self, sut: Any, replay: Any, results: Any) -> None:
        from harness.chaos.nightly import run_nightly

        output = self.output / "runs" / "nemesis"
        done = run_nightly(sut, seed=self.seed, duration_s=self.args.duration, output=output,
                           weights=self.weights, replay=replay, fresh=self._fresh(),
                           budget_profile=self.args.budget_profile, out=sys.stdout,
                           capture=self.args.capture)
        self._record(done, results, output)

    def _shrink(self, sut: Any) -> None:
        from harness.chaos.nightly import shrink
        from harness.chaos.scenario import run_scenario

        def attempt(scenario: Any, n: int) -> Any:
            return run_scenario(sut, scenario, seed=self.seed,
                                output=self.output / "shrink" / f"attempt-{n}",
                                fresh=self._fresh(), budget_profile=self.args.budget_profile)

        shrink(self.args.shrink, attempt, max_attempts=self.args.shrink_attempts,
               say=self.say)
