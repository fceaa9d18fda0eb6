"""Writers: what each device answer becomes in the history (ok, fail, info), Jepsen's
new process after an info, reproducible plans, rate limiting, stop."""

from __future__ import annotations

import asyncio

import pytest

from harness.workload.device import Completion
from harness.workload.errors import DeviceError, WorkloadConfigError
from harness.workload.generator import WorkloadSpec
from harness.workload.history import History, load_history
from harness.workload.iscsi_device import ScsiIoError
from harness.workload.writers import Workload, header_for


class ScriptedDevice:
    """In-memory disk; ``script`` maps an op number to how that op ends."""

    block_size = 512
    num_blocks = 2048

    def __init__(self, script: dict[int, str] | None = None) -> None:
        self.data = bytearray(self.num_blocks * 512)
        self.script = script or {}
        self.n = 0

    async def _maybe_fail(self) -> None:
        what = self.script.get(self.n)
        self.n += 1
        if what == "hang":
            await asyncio.sleep(3600)
        elif what == "conflict":
            raise ScsiIoError("WRITE(16) on p0 ended with status 0x18", 0x18)
        elif what == "error":
            raise DeviceError("path p0 lost")

    async def read(self, lba: int, count: int) -> Completion:
        await self._maybe_fail()
        return Completion(bytes(self.data[lba * 512:(lba + count) * 512]), "p0")

    async def write(self, lba: int, data: bytes) -> Completion:
        await self._maybe_fail()
        self.data[lba * 512:lba * 512 + len(data)] = data
        return Completion(b"", "p0")

    async def flush(self) -> None:
        pass


def run_workload(tmp_path, device, **kw):
    spec = WorkloadSpec(**{"seed": 1, "writers": 1, "queue_depth": 1, "duration": None,
                           "ops_per_writer": 6, **kw})

    async def body():
        with History(tmp_path / "h.jsonl", header_for(device, spec, name="mem")) as h:
            return await Workload(device, spec, h).run()

    result = asyncio.run(asyncio.wait_for(body(), 30))
    return result, load_history(tmp_path / "h.jsonl")


def test_outcomes_of_writes_and_reads(tmp_path):
    device = ScriptedDevice({1: "hang", 2: "conflict", 3: "error"})
    result, history = run_workload(tmp_path, device, op_timeout=0.2)
    ops = [o for o in history.ops if o.f == "write"]
    assert [o.outcome for o in ops] == ["ok", "info", "fail", "info", "ok", "ok"]
    assert ops[1].error == "timeout" and "0x18" in ops[2].error
    # after each info the writer continues as a new process, as in Jepsen
    procs = [o.process for o in ops]
    assert procs[0] == procs[1] == 0 and procs[2] == procs[3] != 0
    assert procs[4] == procs[5] not in (0, procs[2])
    assert (result.ok, result.fail, result.info) == (3, 1, 2)
    assert [o.seq for o in ops] == list(range(6))


def test_failed_reads_are_fail_and_ok_reads_record_what_they_saw(tmp_path):
    device = ScriptedDevice({0: "error"})
    _, history = run_workload(tmp_path, device, read_ratio=1.0)
    reads = history.reads
    assert reads[0].outcome == "fail" and reads[0].value is None
    assert all(r.outcome == "ok" and r.value == [None] for r in reads[1:])


def test_same_seed_same_operations(tmp_path):
    _, a = run_workload(tmp_path / "a", ScriptedDevice(), writers=2, read_ratio=0.5,
                        ops_per_writer=20)
    _, b = run_workload(tmp_path / "b", ScriptedDevice(), writers=2, read_ratio=0.5,
                        ops_per_writer=20)

    def plan_of(h):
        return sorted((o.f, o.lba, o.count, o.writer, o.seq) for o in h.ops if o.f != "flush")

    assert plan_of(a) == plan_of(b)


def test_rate_limit_paces_operations(tmp_path):
    _, history = run_workload(tmp_path, ScriptedDevice(), rate=100, ops_per_writer=11)
    invokes = [o.invoke_ns for o in history.ops if o.f == "write"]
    assert invokes[-1] - invokes[0] >= 100_000_000  # 10 intervals of 10 ms at least


def test_header_must_describe_the_device(tmp_path):
    device = ScriptedDevice()
    spec = WorkloadSpec(duration=1.0)
    other = WorkloadSpec(duration=1.0, block_sizes=(8192,))
    with History(tmp_path / "h.jsonl", header_for(device, other, name="mem")) as h, \
            pytest.raises(WorkloadConfigError, match="history header"):
        Workload(device, spec, h)


@pytest.fixture(autouse=True)
def _dirs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()


def test_a_crashed_client_abandons_its_io_and_starts_nothing_until_it_restarts(tmp_path):
    """Every operation in flight when the client crashes is cancelled (never completed by
    the device, so never re-driven) and recorded info, ABANDONED; nothing starts while it
    is down; after the restart its slots go on as fresh processes."""
    from harness.workload.history import ABANDONED

    class Held(ScriptedDevice):
        def __init__(self) -> None:
            super().__init__()
            self.cancelled = 0
            self.calls: list[float] = []

        async def write(self, lba: int, data: bytes) -> Completion:
            self.calls.append(asyncio.get_running_loop().time())
            if len(self.calls) <= 2:  # the first two writes hang in the device
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    self.cancelled += 1
                    raise
            return await super().write(lba, data)

    device = Held()
    spec = WorkloadSpec(seed=1, writers=1, queue_depth=2, duration=None, ops_per_writer=6)

    async def body():
        with History(tmp_path / "h.jsonl", header_for(device, spec, name="mem")) as h:
            w = Workload(device, spec, h)
            run = asyncio.ensure_future(w.run())
            while len(device.calls) < 2:
                await asyncio.sleep(0.01)
            w.crash()
            await asyncio.sleep(0.2)
            down = len(device.calls)
            crashed_at = asyncio.get_running_loop().time()
            w.restart()
            result = await run
            return result, down, crashed_at

    result, down, crashed_at = asyncio.run(asyncio.wait_for(body(), 30))
    history = load_history(tmp_path / "h.jsonl")
    ops = [o for o in history.ops if o.f == "write"]
    assert device.cancelled == 2 and down == 2  # both abandoned; nothing new while down
    assert [o.outcome for o in ops[:2]] == ["info", "info"]
    assert ops[0].error == ABANDONED == ops[1].error
    assert all(o.outcome == "ok" for o in ops[2:]) and len(ops) == 6
    assert {o.process for o in ops[2:]}.isdisjoint({o.process for o in ops[:2]})
    assert all(t >= crashed_at for t in device.calls[2:])
    assert result.info == 2


def test_a_workload_cancelled_from_outside_is_not_a_crash(tmp_path):
    device = ScriptedDevice({0: "hang"})
    spec = WorkloadSpec(seed=1, writers=1, queue_depth=1, duration=None, ops_per_writer=3)

    async def body():
        with History(tmp_path / "h.jsonl", header_for(device, spec, name="mem")) as h:
            run = asyncio.ensure_future(Workload(device, spec, h).run())
            await asyncio.sleep(0.1)
            run.cancel()
            with pytest.raises(asyncio.CancelledError):
                await run

    asyncio.run(asyncio.wait_for(body(), 30))
