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


def test_the_inventory_cluster_table_sets_heartbeat_and_pass_limit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from harness.lab.inventory import InventoryError, load

    lab = (Path(__file__).parents[3] / "fixtures" / "inventories" / "lab.toml").read_text()
    assert load(Path(__file__).parents[3] / "fixtures" / "inventories" / "lab.toml").cluster \
        .same_subnet_threshold == 5
    site = tmp_path / "site.toml"
    site.write_text(lab + "\n[cluster]\nsame_subnet_delay_s = 0.5\nsame_subnet_threshold = 10\n"
                    "live_migration_pass_limit = 10\n")
    cluster = load(site).cluster
    assert (cluster.same_subnet_delay_s, cluster.same_subnet_threshold,
            cluster.live_migration_pass_limit) == (0.5, 10, 10)
    site.write_text(lab + "\n[cluster]\nsame_subnet_threshold = 0\n")
    with pytest.raises(InventoryError, match="same_subnet_threshold"):
        load(site)
    site.write_text(lab + "\n[cluster]\nsame_subnet_treshold = 10\n")
    with pytest.raises(InventoryError, match="same_subnet_threshold"):
        load(site)  # a typo is refused, with the right name suggested
