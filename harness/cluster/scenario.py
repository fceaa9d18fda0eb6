"""Live migration under load as a chaos scenario: move a VM back and forth, maybe with a fault.

One scenario (``MigrationScenario``) is told as steps:

1. a VM role starts on the first cluster node with its stamped workload and
   memory the guest keeps dirtying;
2. it live-migrates ``moves`` times between the nodes while the workload runs;
3. a fault (a ``Fault`` from ``sut.faults``, built by ``fault``) is active for
   the whole sequence (``when = "throughout"``), or injected the moment the
   first migration starts copying memory (``when = "precopy"``) and left in
   place for the rest;
4. the VM is shut down, the fault healed, the storage waited back to
   Synchronized; then the integrity checker reads the VM's disk back through
   every path against its joined history, the hand-over check looks for
   replayed or dropped I/O, and the migrations are judged against the
   inventory's budgets.

``run_scenario`` returns a ``CheckResult`` (kind ``chaos``, category
``Chaos``, label ``family = live-migration``) and writes it, with the
history segments and the migration reports attached, to a ``ResultsDir``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from harness.checks.results import CheckResult, Evidence, ResultsDir, ResultWord
from harness.cluster.budgets import judge_migrations
from harness.cluster.control import ControlError, request
from harness.cluster.errors import ClusterError
from harness.cluster.guest import segments
from harness.cluster.lab_cluster import LabCluster, VmSpec
from harness.cluster.migration import MigrationReport

FAMILY = "live-migration"


@dataclass(frozen=True)
class MigrationScenario:
    name: str
    description: str
    moves: int = 6
    fault: Callable[[Any], Any] | None = None  # sut -> a Fault (not yet injected)
    when: str = "throughout"  # or "precopy"
    vm: VmSpec = field(default_factory=lambda: VmSpec("lm"))
    link_rate_bps: float | None = None  # slows the copy so "precopy" has time to hit


def _wait_precopy(cluster: LabCluster, vm: str, node: str, stop: threading.Event) -> bool:
    endpoint = cluster._vm_endpoint(vm, node)  # the source's VM, not whichever owns it later
    while not stop.is_set():
        with contextlib.suppress(ControlError):
            if request(endpoint, "status", timeout_s=2.0)["state"] == "Migrating":
                return True
        time.sleep(0.01)
    return False


def _move_all(cluster: LabCluster, scenario: MigrationScenario, vm: str,
              fault: Any, injected: list[int]) -> tuple[list[MigrationReport], list[str]]:
    nodes = cluster.node_names
    reports: list[MigrationReport] = []
    failures: list[str] = []
    injector: threading.Thread | None = None
    stop = threading.Event()
    if fault is not None and scenario.when == "precopy":
        owner = cluster.owner(vm)
        assert owner is not None

        def inject() -> None:
            if _wait_precopy(cluster, vm, owner, stop):
                injected.append(time.monotonic_ns())
                fault.inject()

        injector = threading.Thread(target=inject, daemon=True)
        injector.start()
    try:
        for i in range(scenario.moves):
            owner = cluster.owner(vm)
            dest = next(n for n in nodes if n != owner)
            try:
                reports.append(cluster.move(vm, dest, "live"))
            except ClusterError as exc:
                failures.append(f"move {i + 1} ({owner} -> {dest}): {exc}")
            if injector is not None and i == 0:
                injector.join(30)
    finally:
        stop.set()
    return reports, failures


def run_scenario(sut: Any, cluster: LabCluster, scenario: MigrationScenario,
                 results: ResultsDir) -> CheckResult:
    """Run one scenario on ``cluster`` (the lab's) and write its ``CheckResult``."""
    started = time.time()
    vm = f"{scenario.vm.name}-{scenario.name}"
    saved = cluster.migration
    cluster.migration = replace(saved, link_rate_bps=scenario.link_rate_bps) \
        if scenario.link_rate_bps else saved
    fault = scenario.fault(sut) if scenario.fault is not None else None
    failures: list[str] = []
    reports: list[MigrationReport] = []
    injected: list[int] = []
    try:
        cluster.add_vm(replace(scenario.vm, name=vm), cluster.node_names[0])
        if fault is not None and scenario.when == "throughout":
            injected.append(time.monotonic_ns())
            fault.inject()
        reports, failures = _move_all(cluster, scenario, vm, fault, injected)
        cluster.stop_vm(vm)
    finally:
        cluster.migration = saved
        if fault is not None and fault.active:
            fault.heal()
    if sut.lab is not None:
        sut.lab.wait_synchronized([cluster.csv_device, cluster.witness_device], 120.0)
    verdict = cluster.check_vm(vm, budget=dict(sut.budget.limits))
    budget = judge_migrations(reports, sut.budget.limits)
    problems = [p.message for p in verdict.problems] + [p.message for p in budget.problems]
    if fault is not None and scenario.when == "precopy":
        first = reports[0] if reports else None
        if not (injected and first and first.started_ns <= injected[0] <= first.pause_ns):
            failures.append("the fault did not land during the first migration's memory copy "
                            f"(injected at {injected or 'never'}); the scenario proves nothing")
    word = ResultWord.FAILED if (problems or failures) else ResultWord.SUCCESS
    reason = (failures + problems)[0] if word is ResultWord.FAILED else (
        f"{len(reports)} live migrations under load, no write lost or replayed, "
        f"blackout p99 {budget.stats.get('blackout_p99_s', float('nan')):.3f} s")
    numbers: dict[str, float | int | str] = {
        k: v for k, v in budget.stats.items() if isinstance(v, int | float)}
    numbers.update(moves=scenario.moves, failed_moves=len(failures),
                   problems=len(problems))
    table = "\n".join(
        f"{r.source} -> {r.destination}: blackout {r.blackout_s * 1e3:.1f} ms, total "
        f"{r.total_s:.2f} s, passes {[p.pages for p in r.passes]}, last {r.final_pages} pages"
        for r in reports)
    if injected and reports:
        numbers["fault_after_start_s"] = (injected[0] - reports[0].started_ns) / 1e9
    evidence = [Evidence("migrations", table or "none completed"),
                Evidence("checkers", "\n".join(v.summary() for v in verdict.verdicts)
                         + "\n" + budget.summary())]
    if failures:
        evidence.append(Evidence("failed moves", "\n".join(failures)))
    if problems:
        evidence.append(Evidence("problems", "\n".join(problems[:50])))
    result = CheckResult(
        kind="chaos", category="Chaos", name=f"live migration: {scenario.name}",
        description=scenario.description, result=word, reason=reason, started=started,
        finished=time.time(), evidence=evidence, numbers=numbers,
        labels={"family": FAMILY, "scenario": scenario.name, "site": sut.inventory.site.name})
    for seg in segments(cluster.history_dir(vm)):
        result.attachments.append(results.attach(f"{vm}/{seg.name}", seg,
                                                 "application/x-ndjson"))
    result.attachments.append(results.attach(
        f"{vm}/migrations.json", json.dumps([r.to_json() for r in reports], indent=1),
        "application/json"))
    results.write(result)
    return result


LOAD = {"writers": 2, "queue_depth": 2, "block_sizes": [4096, 16384], "rate": 300.0}


def storage_primary(sut: Any) -> str:
    """The storage host of the vm-storage device's priority-1 replica."""
    csv = next(d for d in sut.devices.values() if d.purpose == "vm-storage")
    return str(min(csv.replicas, key=lambda r: r.priority).host)


def catalogue(moves: int = 6) -> dict[str, MigrationScenario]:
    """The live-migration family: alone, and with each fault the issue names."""
    vm = VmSpec("lm", workload=LOAD)
    return {s.name: s for s in (
        MigrationScenario("alone", f"{moves} live migrations under load, no fault",
                          moves=moves, vm=vm),
        MigrationScenario("path-cut", f"{moves} live migrations under load while "
                          "iscsi1/SWS-Store1 is cut", moves=moves, vm=vm,
                          fault=lambda s: s.faults.cut("iscsi1/SWS-Store1")),
        MigrationScenario("sync-cut", f"{moves} live migrations under load while every sync "
                          "link is cut", moves=moves, vm=vm,
                          fault=lambda s: s.faults.cut("sync")),
        MigrationScenario("primary-dies", "the storage primary is killed as the first "
                          f"migration starts copying memory; {moves} live migrations under "
                          "load", moves=moves, when="precopy", link_rate_bps=16 * (1 << 20),
                          vm=VmSpec("lm", memory_mib=32, workload=LOAD),
                          fault=lambda s: s.faults.kill(storage_primary(s))),
    )}
