"""Chaos family power-loss: a storage node loses power and the writes it had not made
durable are gone (the node's volatile layer drops them); write-through must mean that
no acknowledged write is lost, on one node or on both.

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


@pytest.mark.parametrize("name", [s.name for s in family("power-loss")])
def test_scenario(chaos: Callable[[str], ScenarioRun], name: str) -> None:
    assert_survived(chaos(name))
