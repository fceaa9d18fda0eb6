"""Scenario files: schedules that ``splitbrain chaos --shrink`` reduced from a failed run
(``suites/chaos/scenarios/*.json``, plus any named in ``SPLITBRAIN_SCENARIO_FILES``,
separated by ``:``). Each is a reproducer: the site must survive it like any scenario."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.chaos.scenario import ScenarioRun, load_scenario
from suites.chaos.conftest import assert_survived

pytestmark = [pytest.mark.destructive, pytest.mark.slow]

FILES = sorted((Path(__file__).parent / "scenarios").glob("*.json")) + [
    Path(p) for p in os.environ.get("SPLITBRAIN_SCENARIO_FILES", "").split(":") if p]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario_file(chaos: Callable[..., ScenarioRun], path: Path) -> None:
    assert_survived(chaos(load_scenario(path)))
