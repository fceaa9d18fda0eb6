"""Run a selection of the catalogue against a site and write the results.

``catalogue()`` is every check, in the wizard's order (category, then name).
``validate(site, include=, ignore=)`` runs the chosen checks one after the
other (each with its own deadline; a failing check never stops the next),
writes each ``CheckResult`` to a ``ResultsDir`` when given one, and returns a
``ValidationReport`` with the wizard's closing words.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.checks.results import CheckResult, ResultsDir, RunInfo, inventory_digest, worst
from harness.validation.model import CATALOGUE, CATEGORIES, Check, execute, select, summary_words

_MODULES = ("storage", "arbitration", "network", "ha_storage", "system")


def catalogue() -> list[Check]:
    """Every registered check, in category order then by name (as the wizard lists them)."""
    for module in _MODULES:
        importlib.import_module(f"harness.validation.{module}")
    return sorted(CATALOGUE, key=lambda c: (CATEGORIES.index(c.category), c.name.lower()))


def find(name: str) -> Check:
    chosen = select(catalogue(), include=[name])
    return next(c for c in chosen if c.name.lower() == name.lower())


@dataclass
class ValidationReport:
    results: list[CheckResult] = field(default_factory=list)
    unselected: int = 0

    @property
    def summary(self) -> str:
        return summary_words(self.results, self.unselected)

    @property
    def failed(self) -> bool:
        return worst([r.result for r in self.results]).value == "Failed"


def run_one(chk: Check, site: object) -> CheckResult:
    """One check, in an event loop of its own (what a pytest test calls)."""
    return asyncio.run(execute(chk, site))


def validate(
    site: object,
    *,
    include: list[str] | None = None,
    ignore: list[str] | None = None,
    results: ResultsDir | None = None,
    command: str = "",
    on_result: Callable[[CheckResult], None] | None = None,
) -> ValidationReport:
    everything = catalogue()
    chosen = select(everything, include, ignore)
    report = ValidationReport(unselected=len(everything) - len(chosen))
    started = time.time()
    for chk in chosen:
        result = run_one(chk, site)
        report.results.append(result)
        if results is not None:
            results.write(result)
        if on_result is not None:
            on_result(result)
    if results is not None:
        write_run_info(results, site, command or " ".join(sys.argv), started)
    return report


def write_run_info(results: ResultsDir, site: object, command: str, started: float) -> None:
    inventory = site.inventory  # type: ignore[attr-defined]
    path = Path(inventory.path)
    results.write_run(RunInfo(
        site=inventory.site.name, command=command, started=started, finished=time.time(),
        hosts=sorted(inventory.hosts), inventory_digest=inventory_digest(path)
        if path.is_file() else ""))
