"""A node's log keeps the HA device's audit trail (state changes, link losses, stalls)
at any log level: a chaos run's node logs must explain the device's decisions."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from harness.target.node_process import configure_logging


@pytest.fixture
def fresh_logging() -> Iterator[None]:
    root, ha = logging.getLogger(), logging.getLogger("splitbrain.target.ha")
    saved = (root.handlers[:], root.level, ha.level)
    root.handlers[:] = []
    try:
        yield
    finally:
        for h in root.handlers:
            h.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        ha.setLevel(saved[2])


def test_ha_events_are_logged_at_warning_level_and_other_info_is_not(fresh_logging) -> None:
    configure_logging("WARNING")
    assert logging.getLogger("splitbrain.target.ha").isEnabledFor(logging.INFO)
    assert not logging.getLogger("splitbrain.target.session").isEnabledFor(logging.INFO)
    assert logging.getLogger("splitbrain.target.session").isEnabledFor(logging.WARNING)


def test_debug_level_is_kept_for_the_ha_log(fresh_logging) -> None:
    configure_logging("DEBUG")
    assert logging.getLogger("splitbrain.target.ha").isEnabledFor(logging.DEBUG)
