"""Chaos family split-brain: sync and heartbeat partitioned together while both nodes write.

Under the heartbeat strategy both sides carry on alone (the documented risk):
the suite must report "split brain" in those words, and the device must keep
the replicas Not synchronized until an administrator marks one side, never
merge them silently; healed late or early. Under node majority with a witness
a split brain must not happen at all.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.chaos.scenario import ScenarioRun
from harness.checks.results import ResultWord
from suites.chaos.conftest import explain

pytestmark = [pytest.mark.destructive, pytest.mark.slow]


@pytest.mark.parametrize("name", ["split-brain-heal-late", "split-brain-heal-early"])
def test_heartbeat_partition_is_reported_and_never_merged_silently(
    chaos: Callable[[str], ScenarioRun], name: str
) -> None:
    done = chaos(name)
    assert done.evidence and all(e.proved for e in done.evidence), explain(done)
    assert "merged silently" not in done.result.reason, explain(done)
    if name == "split-brain-heal-late":  # both sides certainly carried on alone
        assert "split brain" in done.result.reason, explain(done)
        assert done.result.result is ResultWord.WARNING, explain(done)
    else:
        assert done.result.result in (ResultWord.SUCCESS, ResultWord.WARNING), explain(done)


@pytest.mark.parametrize("name", ["split-brain-node-majority", "majority-primary-loses-witness"])
def test_node_majority_never_splits(chaos: Callable[[str], ScenarioRun], name: str) -> None:
    done = chaos(name)
    assert done.evidence and all(e.proved for e in done.evidence), explain(done)
    assert done.result.result is ResultWord.SUCCESS, explain(done)
