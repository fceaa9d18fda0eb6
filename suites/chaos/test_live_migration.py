"""Chaos family "live migration under load": a VM moves back and forth while it writes.

Each scenario is one story (``harness.cluster.scenario``):

1. VM role ``lm-<scenario>`` starts on the first cluster node; its guest dirties
   memory and writes stamped blocks to its virtual disk on the CSV;
2. it live-migrates between the cluster nodes, six times, under that load;
3. the scenario's fault is active meanwhile: none, one iSCSI path cut, the
   sync channel cut (the low-priority replica goes Not synchronized), or the
   storage primary killed the moment the first migration starts copying memory;
4. the VM is shut down, the fault healed and the HA devices synchronized again;
   the integrity checker reads the VM's disk back through every path against its
   history, the hand-over check finds no I/O replayed or left in flight across a
   move, and every migration is judged against the inventory's budgets
   (``live_migration_s``, ``live_migration_blackout_s``).

Each test writes its ``CheckResult`` (category Chaos, family live-migration) to the
chaos suites' results directory (``chaos_results``: ``SPLITBRAIN_RESULTS_DIR``, else a
temporary one) and fails with its reason.
"""

from __future__ import annotations

import pytest

from harness.checks.results import ResultsDir, ResultWord
from harness.cluster.lab_cluster import VmSpec
from harness.cluster.scenario import MigrationScenario, run_scenario

pytestmark = [pytest.mark.destructive, pytest.mark.slow]

MIB = 1 << 20
LOAD = {"writers": 2, "queue_depth": 2, "block_sizes": [4096, 16384], "rate": 300.0}


@pytest.fixture(scope="module")
def lab_cluster(sut):  # type: ignore[no-untyped-def]
    if sut.lab is None:
        pytest.skip("live migration under load drives the lab's own cluster; on a real site "
                    "use sut.cluster.move with the guest workload agent")
    return sut.cluster


def scenario_passes(sut, lab_cluster, chaos_results: ResultsDir,  # type: ignore[no-untyped-def]
                    scenario: MigrationScenario) -> None:
    result = run_scenario(sut, lab_cluster, scenario, chaos_results)
    assert result.result is ResultWord.SUCCESS, result.reason


def test_live_migration_under_load(sut, lab_cluster, chaos_results) -> None:  # type: ignore[no-untyped-def]
    scenario_passes(sut, lab_cluster, chaos_results, MigrationScenario(
        "alone", "six live migrations under load, no fault",
        vm=VmSpec("lm", workload=LOAD)))


def test_live_migration_with_a_path_cut(sut, lab_cluster, chaos_results) -> None:  # type: ignore[no-untyped-def]
    scenario_passes(sut, lab_cluster, chaos_results, MigrationScenario(
        "path-cut", "six live migrations under load while iscsi1/SWS-Store1 is cut",
        fault=lambda s: s.faults.cut("iscsi1/SWS-Store1"), vm=VmSpec("lm", workload=LOAD)))


def test_live_migration_with_the_sync_channel_cut(sut, lab_cluster, chaos_results) -> None:  # type: ignore[no-untyped-def]
    scenario_passes(sut, lab_cluster, chaos_results, MigrationScenario(
        "sync-cut", "six live migrations under load while every sync link is cut",
        fault=lambda s: s.faults.cut("sync"), vm=VmSpec("lm", workload=LOAD)))


def test_live_migration_when_the_storage_primary_dies_during_the_memory_copy(
        sut, lab_cluster, chaos_results) -> None:  # type: ignore[no-untyped-def]
    scenario_passes(sut, lab_cluster, chaos_results, MigrationScenario(
        "primary-dies", "the storage primary (SWS-Store1) is killed as the first migration "
        "starts copying memory; six live migrations under load",
        fault=lambda s: s.faults.kill(primary(s, lab_cluster.csv_device)),
        when="precopy", link_rate_bps=16 * MIB,
        vm=VmSpec("lm", memory_mib=32, workload=LOAD)))


def primary(sut, alias: str) -> str:  # type: ignore[no-untyped-def]
    """The storage host of the device's priority-1 replica."""
    return min(sut.device(alias).replicas, key=lambda r: r.priority).host
