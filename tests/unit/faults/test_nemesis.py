"""The nemesis: same seed, same schedule; events in time order; every fault healed and recorded."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from harness.faults import FaultError, FaultJournal, FaultSpec, Nemesis, Schedule, Step, live_faults
from harness.workload.history import HistoryHeader, load_history
from tests.unit.faults.flag_fault import FlagFault

CATALOGUE = [
    FaultSpec.of("blackhole", "sync"),
    FaultSpec.of("cut", "iscsi1"),
    FaultSpec.of("delay", "heartbeat", delay_ms=50.0),
    FaultSpec.of("kill", "SWS-Store2"),
]


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []

    def fault_start(self, name: str, *, time_ns: int | None = None, **attrs: Any) -> int:
        self.events.append(("start", name, time_ns or 0))
        return len(self.events)

    def fault_stop(self, name: str, *, time_ns: int | None = None, **attrs: Any) -> None:
        self.events.append(("stop", name, time_ns or 0))


def test_schedule_rejects_nonsense() -> None:
    with pytest.raises(FaultError, match="negative"):
        Schedule.scripted([(-1.0, 1.0, CATALOGUE[0])])


def make(tmp_path: Path, journal: FaultJournal, built: list[FlagFault]):
    def build(spec: FaultSpec) -> FlagFault:
        fault = FlagFault(tmp_path / f"{spec.action}-{spec.target}-{len(built)}", journal=journal)
        built.append(fault)
        return fault

    return build


def test_overlapping_script_runs_in_time_order_and_heals_everything(tmp_path: Path) -> None:
    journal = FaultJournal(tmp_path / "j.jsonl")
    built: list[FlagFault] = []
    recorder = Recorder()
    sched = Schedule.scripted(
        [
            Step(0.0, 0.03, FaultSpec.of("cut", "sync")),
            Step(0.01, 0.01, FaultSpec.of("kill", "SWS-Store1")),
        ]
    )
    names = Nemesis(sched, make(tmp_path, journal, built), recorder).run()
    assert names == ["cut sync [0]", "kill SWS-Store1 [1]"]
    assert [(e, n) for e, n, _ in recorder.events] == [
        ("start", "cut sync [0]"),
        ("start", "kill SWS-Store1 [1]"),
        ("stop", "kill SWS-Store1 [1]"),
        ("stop", "cut sync [0]"),
    ]
    times = [t for _, _, t in recorder.events]
    assert times == sorted(times)
    assert journal.open_faults() == [] and not any(f.flag.exists() for f in built)


def test_failure_mid_run_still_heals_and_records_stop(tmp_path: Path) -> None:
    journal = FaultJournal(tmp_path / "j.jsonl")
    built: list[FlagFault] = []
    recorder = Recorder()
    build = make(tmp_path, journal, built)

    def flaky(spec: FaultSpec) -> FlagFault:
        if spec.action == "boom":
            raise FaultError("cannot build")
        return build(spec)

    sched = Schedule.scripted(
        [Step(0.0, 10.0, FaultSpec.of("cut", "sync")), Step(0.0, 1.0, FaultSpec.of("boom", "x"))]
    )
    with pytest.raises(FaultError, match="cannot build"):
        Nemesis(sched, flaky, recorder).run()
    assert recorder.events[-1][:2] == ("stop", "cut sync [0]")
    assert journal.open_faults() == [] and live_faults() == []


def test_stop_ends_early_and_heals(tmp_path: Path) -> None:
    journal = FaultJournal(tmp_path / "j.jsonl")
    built: list[FlagFault] = []
    sched = Schedule.scripted(
        [
            Step(0.0, 3600.0, FaultSpec.of("blackhole", "sync")),
            Step(3000.0, 1.0, FaultSpec.of("cut", "iscsi1")),
        ]
    )
    nemesis = Nemesis(sched, make(tmp_path, journal, built))
    started = threading.Event()
    original = nemesis._start

    def start_and_signal(i: int) -> str:
        name = original(i)
        started.set()
        return name

    nemesis._start = start_and_signal  # type: ignore[method-assign]
    runner = threading.Thread(target=nemesis.run)
    runner.start()
    assert started.wait(10)
    assert built[0].flag.exists()
    nemesis.stop()
    runner.join(10)
    assert not runner.is_alive()
    assert len(built) == 1 and not built[0].flag.exists() and journal.open_faults() == []


def test_faults_land_in_the_workload_history(tmp_path: Path) -> None:
    journal = FaultJournal(tmp_path / "j.jsonl")
    built: list[FlagFault] = []
    path = tmp_path / "history.jsonl"
    from harness.workload.history import History

    header = HistoryHeader(
        seed=1, generation=0, block_size=4096, logical_block_size=512, num_blocks=8, device="test"
    )
    with History(path, header) as history:
        Nemesis(
            Schedule.scripted([Step(0.0, 0.01, FaultSpec.of("cut", "sync"))]),
            make(tmp_path, journal, built),
            history,
        ).run()
    recorded = load_history(path)
    assert [f.name for f in recorded.faults] == ["cut sync [0]"]
    assert recorded.faults[0].stop_ns is not None
    assert recorded.faults[0].stop_ns >= recorded.faults[0].start_ns
