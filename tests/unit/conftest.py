"""The unit tier: no process, no socket peer, no namespace (those are tests/integration).

Every unit test runs (setup, call and teardown) under ``unit_tier_guard``
(``tests/support/unit_tier.py``): starting a process or connecting or listening
on a socket fails the test with a message saying where it belongs.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.unit_tier import unit_tier_guard


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    with unit_tier_guard():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    with unit_tier_guard():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    with unit_tier_guard():
        return (yield)
