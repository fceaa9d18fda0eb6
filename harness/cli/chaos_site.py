"""The site a chaos command runs against: adopt or start the lab, or a real site as it is.

``open_site`` is the caller's side of the chaos runner's contract (the runner
takes a system under test that is already up): for a lab inventory it adopts
the running lab or starts one (``harness.lab.lifecycle.LabSite``) and takes
down only a lab it started; for a real site it refuses unless the inventory
says ``destructive = true``, before anything is touched. Either way it yields
the same ``sut`` the suites get.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harness.chaos.runner import RunError
from harness.lab.inventory import Inventory


@dataclass
class Site:
    sut: Any  # fixtures.sut.SystemUnderTest
    started: bool  # a lab this command brought up (or took over): it takes it down
    fresh: bool  # the lab was started now: its disks hold zeros
    how: str  # "started by this run", "reused", "taken over...", "real site"
    lab_dir: Path | None
    problems: list[str] = field(default_factory=list)  # filled when the lab goes down


def refuse_unsafe(inventory: Inventory, command: str) -> None:
    """One line, before anything is touched, when chaos may not run on this site."""
    if not inventory.site.destructive:
        raise RunError(
            f"{inventory.path}: site {inventory.site.name!r} is not destructive = true; "
            f"`splitbrain {command}` breaks storage on purpose and refuses such a site"
        )


@contextlib.contextmanager
def open_site(
    inventory: Inventory,
    *,
    command: str,
    state_dir: Path | None = None,
    keep_lab: bool = False,
    budget_profile: str = "default",
    resync_s: float = 120.0,
    say: Callable[[str], None] = lambda _: None,
) -> Iterator[Site]:
    from fixtures.sut import SystemUnderTest
    from harness.lab.lifecycle import LabSite

    refuse_unsafe(inventory, command)
    if inventory.lab is None:
        yield Site(SystemUnderTest(inventory, None, budget_profile), False, False,
                   "real site", None)
        return
    site = LabSite(inventory, state_dir, keep=keep_lab, resync_s=resync_s, say=say)
    try:
        with site:
            yield Site(SystemUnderTest(inventory, site.lab, budget_profile), site.started,
                       site.fresh, site.how, site.state_dir, site.problems)
    finally:
        for problem in site.problems:
            say(f"FAILED: {problem}")


def execute_run(
    inventory: Inventory,
    settings: Any,
    *,
    command: str,
    state_dir: Path | None = None,
    keep_lab: bool = False,
    out: TextIO,
) -> int:
    """One chaos run on the inventory's site, reported; the exit code (0: no problem)."""
    import dataclasses

    from harness.chaos.runner import ChaosRun, default_output
    from harness.chaos.signals import RunInterrupted, signals_interrupt
    from harness.checks.verdict import Problem
    from harness.report.run_summary import write_report

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    output = Path(settings.output or default_output(settings.seed))
    settings = dataclasses.replace(settings, output=output)
    resync_s = float(inventory.budget(settings.budget_profile).limits.get("resync_s", 120.0))
    say(f"splitbrain {command}: seed {settings.seed} (repeat with --seed {settings.seed}), "
        f"{settings.duration_s:g} s, output {output}/")
    with signals_interrupt():
        try:
            with open_site(inventory, command=command, state_dir=state_dir, keep_lab=keep_lab,
                           budget_profile=settings.budget_profile, resync_s=resync_s,
                           say=say) as site:
                settings = dataclasses.replace(settings, fresh=site.fresh)
                outcome = ChaosRun(site.sut, settings, out=out).execute()
                outcome.lab_started = site.started
                outcome.meta["lab"] = site.how
        except RunInterrupted as exc:
            print(f"splitbrain {command}: interrupted by {exc}; faults healed, partial output "
                  f"in {output}/", file=sys.stderr)
            return 128 + exc.signum
    run_verdict = outcome.verdict.verdict("run")
    for problem in site.problems:
        if run_verdict is not None:
            run_verdict.problems.append(Problem("heal_failed", problem))
        outcome.heals.append(f"FAILED: {problem}")
    say(write_report(outcome))
    return 0 if outcome.valid else 1
