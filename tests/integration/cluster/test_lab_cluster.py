"""The lab cluster end to end: live and quick migration under load, node death, partition,
bad input. Every run is judged by the project's checkers over the VM's joined history."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fixtures.sut import SystemUnderTest
from harness.cluster.budgets import judge_migrations
from harness.cluster.errors import ClusterError
from harness.cluster.history import load_vm_history
from harness.cluster.lab_cluster import LabCluster, VmSpec
from harness.cluster.quorum import node_key
from harness.faults.lab_faults import LabFaults

pytestmark = pytest.mark.slow

LOAD = {"writers": 2, "queue_depth": 2, "block_sizes": [4096, 16384], "rate": 300.0}


def ops_done(cluster: LabCluster, vm: str) -> int:
    """Operations the VM's current process has completed (it is running there)."""
    return int(cluster.vm_status(vm)["ops"]["ops"])


def wait_ops(cluster: LabCluster, vm: str, more_than: int) -> None:
    cluster.wait(lambda: ops_done(cluster, vm) > more_than, f"{vm} to make progress", 30.0)


def test_live_migration_20_times_under_load(cluster: LabCluster, cluster_sut: SystemUnderTest,
                                            record_property: Any) -> None:
    """1. vm1 runs on Demo1 with a stamped workload and memory dirtied 2000 pages/s.
    2. It live-migrates 20 times, Demo1 <-> Demo2, while the workload runs.
    3. After stopping it: no I/O error, no lost, stale, torn or duplicated write, no I/O
       in flight across a hand-over, and the blackout p99 is within the lab's budget."""
    cluster.add_vm(VmSpec("vm1", workload=LOAD), "Demo1")
    wait_ops(cluster, "vm1", 20)
    reports = []
    for i in range(20):
        dest = "Demo2" if i % 2 == 0 else "Demo1"
        reports.append(cluster.move("vm1", dest, "live"))
        assert cluster.owner("vm1") == dest
    wait_ops(cluster, "vm1", 5)
    cluster.stop_vm("vm1")
    verdict = cluster.check_vm("vm1", errors_allowed=False)
    assert verdict.valid, [p.message for p in verdict.problems][:10]
    handover = verdict.verdict("handover")
    assert handover is not None and handover.stats["segments"] == 21
    budget = judge_migrations(reports, cluster_sut.budget.limits)
    for name in ("blackout_p50_s", "blackout_p99_s", "blackout_max_s", "total_max_s"):
        record_property(name, budget.stats[name])  # reported in the JUnit XML
    assert budget.valid, budget.summary()
    assert budget.stats["live"] == 20 and budget.stats["blackout_p99_s"] > 0
    assert all(r.passes and r.passes[0].pages == r.memory_bytes // 4096 for r in reports)
    assert all(r.announce.startswith("Not Applicable") for r in reports)


def test_quick_migration_reports_downtime(cluster: LabCluster, cluster_sut: SystemUnderTest,
                                          record_property: Any) -> None:
    cluster.add_vm(VmSpec("vmq", workload=LOAD), "Demo1")
    wait_ops(cluster, "vmq", 10)
    report = cluster.move("vmq", "Demo2", "quick")
    assert report.kind == "quick" and report.blackout_s > 0
    record_property("quick_migration_downtime_s", report.blackout_s)
    assert cluster.owner("vmq") == "Demo2"
    wait_ops(cluster, "vmq", 5)
    cluster.stop_vm("vmq")
    verdict = cluster.check_vm("vmq", errors_allowed=False)
    assert verdict.valid, [p.message for p in verdict.problems][:10]
    # the checker can fail: zero an acknowledged write of vmq behind the cluster's back
    history = load_vm_history(cluster.history_dir("vmq"))
    victim = next(o for o in reversed(history.writes) if o.outcome == "ok")
    offset, _ = cluster.disk_region("vmq")
    asyncio.run(zero_blocks(cluster_sut, offset, victim.lba, victim.count))
    broken = cluster.check_vm("vmq", errors_allowed=False)
    assert not broken.valid and "lost" in broken.verdict("integrity").counts()


async def zero_blocks(sut: SystemUnderTest, disk_offset: int, lba: int, count: int) -> None:
    async with sut.multipath("HA2") as dev:
        await dev.pr.register(node_key("a-test-outside-the-cluster"))
        await dev.write(disk_offset // dev.block_size + lba, bytes(count * dev.block_size))


def test_vm_dies_with_its_node_and_restarts_on_the_survivor(cluster: LabCluster) -> None:
    """1. vm2 runs on Demo2 (Demo1 owns the witness).
    2. Demo2's cluster service and VMs are killed.
    3. Demo1 stops hearing Demo2, keeps the witness, fences Demo2, restarts vm2 from disk.
    4. Nothing vm2 had acknowledged before the death is lost."""
    assert {n.name: n.witness_owner for n in cluster.nodes()}["Demo1"] is True
    cluster.add_vm(VmSpec("vm2", workload=LOAD), "Demo2")
    wait_ops(cluster, "vm2", 30)
    cluster.fail_node("Demo2")
    # the restart reads vm2's state back from HA2; the lab device can still hold an I/O up to
    # the initiator's 60 s command limit (docs/chaos.md, open findings), so wait past that
    cluster.wait_role("vm2", "Demo1", deadline_s=180)
    assert {n.name: n.state for n in cluster.nodes()} == {"Demo1": "Up", "Demo2": "Down"}
    wait_ops(cluster, "vm2", 10)
    cluster.stop_vm("vm2")
    verdict = cluster.check_vm("vm2", handed_over=set())
    assert verdict.valid, [p.message for p in verdict.problems][:10]


def test_partitioned_node_stops_its_roles_and_the_csv_stays_intact(
        cluster: LabCluster, cluster_sut: SystemUnderTest) -> None:
    """1. vm3 runs on Demo2; Demo1 owns the witness.
    2. Demo2's heartbeat link is cut; its storage paths stay up.
    3. Demo1 fences Demo2 on the witness and the CSV; Demo2 finds its key gone, stops
       vm3 and its cluster service; vm3 restarts on Demo1.
    4. The CSV holds every write vm3 acknowledged, and none Demo2 wrote after the fence."""
    cluster.add_vm(VmSpec("vm3", workload=LOAD), "Demo2")
    wait_ops(cluster, "vm3", 30)
    faults = LabFaults(cluster_sut.lab.state.root)
    with faults.cut("heartbeat/Demo2"):
        cluster.wait_node_state("Demo2", "Down")
        cluster.wait_role("vm3", "Demo1")
        assert {n.name: n.state for n in cluster.nodes()} == {"Demo1": "Up", "Demo2": "Down"}
        wait_ops(cluster, "vm3", 10)
        cluster.stop_vm("vm3")
    verdict = cluster.check_vm("vm3", handed_over=set())
    assert verdict.valid, [p.message for p in verdict.problems][:10]


def test_bad_moves_are_refused_in_one_line_and_the_vm_stays(cluster: LabCluster) -> None:
    cluster.add_vm(VmSpec("vm4", workload=LOAD), "Demo1")
    wait_ops(cluster, "vm4", 5)
    cases = [("vm4", "Demo9", "not a node of this cluster"),
             ("vm4", "SWS-Store1", "not a node of this cluster"),
             ("vm4", "Demo1", "already runs on Demo1"),
             ("nope", "Demo2", "no VM role 'nope'")]
    for vm, node, words in cases:
        with pytest.raises(ClusterError) as err:
            cluster.move(vm, node, "live")
        assert words in str(err.value) and "\n" not in str(err.value)
    cluster.fail_node("Demo2")
    with pytest.raises(ClusterError, match="Demo2 is Down") as err:
        cluster.move("vm4", "Demo2", "live")
    assert "\n" not in str(err.value)
    assert cluster.owner("vm4") == "Demo1"
    before = ops_done(cluster, "vm4")
    wait_ops(cluster, "vm4", before)


def test_a_destination_that_dies_mid_copy_leaves_the_vm_running_on_its_source(
        cluster: LabCluster) -> None:
    """1. vm5 runs on Demo1; the migration network is slowed so the memory copy takes a while.
    2. A live migration to Demo2 starts; while memory is being copied, Demo2 dies.
    3. The migration fails in one line; vm5 keeps running on Demo1 and loses nothing."""
    import threading

    from harness.cluster.errors import MigrationFailed
    from harness.cluster.lab_cluster import MigrationSettings

    cluster.migration = MigrationSettings(link_rate_bps=8 * (1 << 20))
    cluster.add_vm(VmSpec("vm5", memory_mib=32, workload=LOAD), "Demo1")
    wait_ops(cluster, "vm5", 10)
    outcome: list[BaseException] = []

    def move() -> None:
        try:
            cluster.move("vm5", "Demo2", "live")
        except BaseException as exc:
            outcome.append(exc)

    mover = threading.Thread(target=move)
    mover.start()
    cluster.wait(lambda: cluster.vm_status("vm5")["state"] == "Migrating", "the memory copy")
    cluster.fail_node("Demo2")
    mover.join(120)
    assert len(outcome) == 1 and isinstance(outcome[0], MigrationFailed), outcome
    assert "keeps running on Demo1" in str(outcome[0]) and "\n" not in str(outcome[0])
    assert cluster.owner("vm5") == "Demo1"
    before = ops_done(cluster, "vm5")
    wait_ops(cluster, "vm5", before)
    cluster.stop_vm("vm5")
    verdict = cluster.check_vm("vm5", errors_allowed=False)
    assert verdict.valid, [p.message for p in verdict.problems][:10]


def test_two_vms_share_the_csv_each_in_its_own_region(cluster: LabCluster) -> None:
    """1. vm6 runs on Demo1 and vm7 on Demo2, both writing, their disks regions of one CSV.
    2. vm6 live-migrates to Demo2 and back while vm7 keeps writing.
    3. Each disk holds exactly its own VM's writes (a block of the other VM's run in a
       region created empty would be reported misplaced)."""
    cluster.add_vm(VmSpec("vm6", workload=LOAD), "Demo1")
    cluster.add_vm(VmSpec("vm7", workload=LOAD, seed=7), "Demo2")
    assert cluster.disk_region("vm6")[0] + cluster.disk_region("vm6")[1] \
        <= cluster.disk_region("vm7")[0]
    wait_ops(cluster, "vm6", 20)
    cluster.move("vm6", "Demo2", "live")
    cluster.move("vm6", "Demo1", "live")
    wait_ops(cluster, "vm7", 20)
    for vm in ("vm6", "vm7"):
        cluster.stop_vm(vm)
    for vm in ("vm6", "vm7"):
        verdict = cluster.check_vm(vm, errors_allowed=False)
        assert verdict.valid, [p.message for p in verdict.problems][:10]
        assert load_vm_history(cluster.history_dir(vm)).header.initial == "zero"
