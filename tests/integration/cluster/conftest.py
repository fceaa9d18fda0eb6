"""A loopback lab with its cluster running, for the cluster tests (module scope)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.sut import SystemUnderTest
from harness.cluster.lab_cluster import LabCluster
from harness.cluster.membership import HeartbeatSettings
from harness.lab.inventory import Inventory, load
from harness.lab.loopback import LoopbackLab

LAB_TOML = Path(__file__).parents[3] / "fixtures" / "inventories" / "lab.toml"
FAST_HEARTBEAT = HeartbeatSettings(delay_s=0.2, threshold=5)


@pytest.fixture(scope="module")
def cluster_sut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemUnderTest]:
    inventory: Inventory = load(LAB_TOML)
    lab = LoopbackLab(tmp_path_factory.mktemp("cluster-lab") / "lab")
    lab.up(inventory)
    try:
        yield SystemUnderTest(inventory, lab)
    finally:
        lab.down()


@pytest.fixture
def cluster(cluster_sut: SystemUnderTest, tmp_path: Path) -> Iterator[LabCluster]:
    running = LabCluster(cluster_sut, tmp_path / "cluster", heartbeat=FAST_HEARTBEAT)
    running.start()
    try:
        yield running
    finally:
        running.stop()
