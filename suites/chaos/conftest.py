"""Fixtures of the chaos suites: run one catalogue scenario on the ``sut`` and record it.

``chaos(name)`` runs the named scenario (``harness.chaos.scenarios``, or a
``Scenario`` read from a scenario file) on the
system under test with the session's seed, writes its ``CheckResult`` with the
timeline, history, schedule and fault journal attached into the results
directory (``SPLITBRAIN_RESULTS_DIR``, else a temporary one), and returns the
``ScenarioRun``. A scenario whose device the inventory does not have is skipped
with the reason in one line. Every test is ``destructive``: it runs only with
``--allow-destructive`` on an inventory that says ``destructive = true``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.plugin import SETTINGS_KEY
from harness.chaos.scenario import (
    Scenario,
    ScenarioError,
    ScenarioRun,
    device_for,
    run_scenario,
)
from harness.chaos.scenarios import by_name
from harness.checks.results import ResultsDir, ResultWord
from harness.report.allure_results import publish
from harness.report.scenario_record import record_scenario


@pytest.fixture(scope="session")
def chaos_results(tmp_path_factory: pytest.TempPathFactory) -> ResultsDir:
    path = os.environ.get("SPLITBRAIN_RESULTS_DIR")
    return ResultsDir(Path(path) if path else tmp_path_factory.mktemp("chaos-results"))


@pytest.fixture
def chaos(sut: object, pytestconfig: pytest.Config,
          chaos_results: ResultsDir) -> Callable[[str | Scenario], ScenarioRun]:
    settings = pytestconfig.stash[SETTINGS_KEY]

    def run(name: str | Scenario) -> ScenarioRun:
        scenario = by_name(name) if isinstance(name, str) else name
        try:
            device_for(sut.inventory, scenario)  # type: ignore[attr-defined]
        except ScenarioError as exc:
            pytest.skip(str(exc))
        output = chaos_results.path / "runs" / f"{scenario.name}-{settings.seed}"
        done = run_scenario(sut, scenario, seed=settings.seed, output=output,
                            budget_profile=settings.budget_profile)
        record_scenario(chaos_results, done.result, output,
                        inventory=sut.inventory.path)  # type: ignore[attr-defined]
        publish(done.result, chaos_results.path)  # Allure labels, steps, attachments
        return done

    return run


def explain(done: ScenarioRun) -> str:
    r = done.result
    lines = [f"{r.name} (seed {r.labels.get('seed')}): {r.result}: {r.reason}"]
    lines += [f"  {e.title}: {e.text}" for e in r.evidence[:12]]
    return "\n".join(lines)


def assert_survived(done: ScenarioRun) -> None:
    """Every fault took effect, and the device survived it: Success."""
    assert done.evidence and all(e.proved for e in done.evidence), explain(done)
    assert done.result.result is ResultWord.SUCCESS, explain(done)
