"""Chaos family disk: each scenario breaks what it claims (evidence) and the lab survives it.

The scenarios and what each proves are in ``harness.chaos.scenarios`` (and
docs/chaos.md); each runs on the ``sut`` with two cluster nodes writing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.chaos.scenario import ScenarioRun
from harness.chaos.scenarios import family
from suites.chaos.conftest import assert_survived

pytestmark = [pytest.mark.destructive, pytest.mark.slow]


@pytest.mark.parametrize("name", [s.name for s in family("disk")])
def test_scenario(chaos: Callable[[str], ScenarioRun], name: str) -> None:
    assert_survived(chaos(name))
