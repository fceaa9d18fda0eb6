"""Membership by heartbeat: joined peers go down after threshold x delay of silence either way."""

from __future__ import annotations

import pytest

from harness.cluster.errors import ClusterConfigError
from harness.cluster.membership import HeartbeatSettings, Membership

S = 1_000_000_000


def test_defaults_follow_the_reference_notes() -> None:
    assert HeartbeatSettings() == HeartbeatSettings(delay_s=1.0, threshold=5)
    assert HeartbeatSettings().timeout_ns == 5 * S


@pytest.mark.parametrize("delay,threshold", [(0, 5), (-1, 5), (1, 0)])
def test_nonsense_settings_are_refused_in_one_line(delay: float, threshold: int) -> None:
    with pytest.raises(ClusterConfigError, match="must be positive"):
        HeartbeatSettings(delay_s=delay, threshold=threshold)


def test_a_peer_counts_only_once_heard_and_acknowledging() -> None:
    m = Membership("Demo1", ["Demo1", "Demo2"], HeartbeatSettings(1.0, 5))
    assert m.up() == ["Demo1"]
    m.heard("Demo2", 0)
    assert m.up() == ["Demo1"]  # it has not acknowledged us yet
    m.acked("Demo2", 0)
    assert m.up() == ["Demo1", "Demo2"]
    assert m.newly_down(100 * S) and m.up() == ["Demo1"]


def test_silence_one_way_is_enough_to_be_down() -> None:
    m = Membership("Demo1", ["Demo2"], HeartbeatSettings(1.0, 5))
    m.heard("Demo2", 0, {"vm1": {"name": "vm1"}})
    m.acked("Demo2", 0)
    for t in range(1, 10):
        m.heard("Demo2", t * S)  # we still hear it, but it stopped acknowledging us
    assert m.newly_down(4 * S) == []
    down = m.newly_down(int(5.5 * S))
    assert [v.name for v in down] == ["Demo2"] and down[0].roles == {"vm1": {"name": "vm1"}}
    assert m.newly_down(6 * S) == []  # reported once
    m.heard("Demo2", 7 * S)
    m.acked("Demo2", 7 * S)
    assert m.up() == ["Demo1"]  # once down it must restart to rejoin
