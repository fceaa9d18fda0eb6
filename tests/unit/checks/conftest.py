"""Fixtures of the checker tests: a fresh hand-made history per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scenario_history import Scenario


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return Scenario(tmp_path)


@pytest.fixture
def make_scenario(tmp_path: Path) -> Any:
    def make(**kw: Any) -> Scenario:
        return Scenario(tmp_path, **kw)

    return make
