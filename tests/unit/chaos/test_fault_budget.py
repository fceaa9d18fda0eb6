"""Which budget judges each fault's gap: the fault record the nemesis writes names it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.chaos.observers import FaultLog
from harness.chaos.scenario import resolve
from harness.chaos.scenarios import by_name
from harness.lab.inventory import load

LAB = Path(__file__).resolve().parents[3] / "fixtures" / "inventories" / "lab.toml"


class Recorder:
    def __init__(self) -> None:
        self.budgets: dict[str, str] = {}

    def fault_start(self, name: str, *, time_ns: int | None = None, **attrs: Any) -> int:
        self.budgets[name] = attrs["budget"]
        return 0


def budgets(scenario: str) -> dict[str, str]:
    inv = load(LAB)
    dev = inv.devices["HA2"]
    faults, schedule = resolve(by_name(scenario), inv, dev)
    log = FaultLog(Recorder(), faults, {})  # type: ignore[arg-type]
    for i, step in enumerate(schedule.steps):
        log.fault_start(f"f{i}", action=step.spec.action, target=step.spec.target,
                        params=dict(step.spec.kwargs))
    return log.history.budgets  # type: ignore[attr-defined]


def test_a_hung_disk_is_judged_as_a_sync_loss_a_failing_one_as_a_node_fault() -> None:
    assert budgets("disk-hang-secondary") == {"f0": "path_failover_s"}
    assert budgets("disk-slow-secondary") == {"f0": "path_failover_s"}
    assert budgets("disk-eio-secondary") == {"f0": "node_failover_s"}
    assert budgets("primary-kill") == {"f0": "node_failover_s"}
    assert budgets("sync-blackhole") == {"f0": "path_failover_s"}
