"""Chaos family "live migration under load": a VM moves back and forth while it writes.

Each scenario is one story (``harness.cluster.scenario``, catalogue there):

1. VM role ``lm-<scenario>`` starts on the first cluster node; its guest dirties
   memory and writes stamped blocks to its virtual disk on the CSV;
2. it live-migrates between the cluster nodes, six times, under that load;
3. the scenario's fault is active meanwhile: none, one iSCSI path cut, the
   sync channel cut (the low-priority replica goes Not synchronized), or the
   storage primary killed the moment the first migration starts copying memory;
4. the VM is shut down, the fault healed and the HA devices synchronized again;
   the integrity checker reads the VM's disk back through every path against its
   history, the hand-over check finds no I/O replayed or left in flight across a
   move, the timing checker judges the run, and every migration is judged against
   the inventory's budgets (``live_migration_s``, ``live_migration_blackout_s``).

Each test writes its ``CheckResult`` (category Chaos, family live-migration) to the
chaos suites' results directory (``chaos_results``: ``SPLITBRAIN_RESULTS_DIR``, else a
temporary one) and fails with its reason.
"""

from __future__ import annotations

import pytest

from harness.checks.results import ResultsDir, ResultWord
from harness.cluster.scenario import catalogue, run_scenario

pytestmark = [pytest.mark.destructive, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab_cluster(sut):  # type: ignore[no-untyped-def]
    if sut.lab is None:
        pytest.skip("live migration under load drives the lab's own cluster; on a real site "
                    "use sut.cluster.move with the guest workload agent")
    try:
        yield sut.cluster
    finally:
        sut.close()  # the cluster lives with this module, not until the session ends


@pytest.mark.parametrize("name", list(catalogue()))
def test_live_migration(sut, lab_cluster, chaos_results: ResultsDir, name: str) -> None:  # type: ignore[no-untyped-def]
    result = run_scenario(sut, lab_cluster, catalogue()[name], chaos_results)
    assert result.result is ResultWord.SUCCESS, result.reason
