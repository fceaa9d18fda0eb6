"""Writers: run a seeded plan against a ``BlockDevice`` and record every operation.

Each writer runs ``queue_depth`` slots that take the writer's next planned
operation, stamp it (writes) and record it in the ``History``: ``invoke``
before the I/O is issued, then ``ok`` with the path that served it, ``fail``
(a read that errored or timed out: reads change nothing, so Jepsen's rule
applies), or ``info`` (a write whose fate is unknown: timeout, lost path,
SCSI error mid-command). Like a Jepsen process, a slot whose write ended
``info`` continues under a new process id, because its old I/O may still be
in flight. Reads record what every checker block held (``observe``) so the
register checker can judge them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from harness.errors import SplitbrainError
from harness.workload.device import BlockDevice
from harness.workload.errors import WorkloadConfigError
from harness.workload.generator import PlannedOp, WorkloadSpec, plan
from harness.workload.history import ABANDONED, History, HistoryHeader
from harness.workload.stamp import (
    BlockKind,
    SectorState,
    WriteId,
    classify_blocks,
    encode_write,
    scan_sectors,
)


def observe(data: bytes, offset: int, block_size: int, generation: int) -> list[Any]:
    """What each ``block_size`` block of a read holds, as recorded in the history.

    ``[writer, seq]`` for a block intact from a write of this run; ``None`` for
    zeros; ``{"generation", "writer", "seq"}`` for an intact block of another run;
    ``"misplaced"`` or ``"corrupt"``; ``{"torn": [...]}`` with one entry per
    512-byte sector (``[writer, seq]``, ``None`` for zero, ``"f"`` for another
    run's sector, ``"x"`` for anything else) for a block whose sectors come from
    different writes.
    """
    blocks = classify_blocks(scan_sectors(data, offset), block_size)
    scan = blocks.scan
    out: list[Any] = []
    for i, kind in enumerate(blocks.kind.tolist()):
        if kind == BlockKind.NEVER_WRITTEN:
            out.append(None)
        elif kind == BlockKind.INTACT:
            w, g, s = int(blocks.writer[i]), int(blocks.generation[i]), int(blocks.seq[i])
            out.append([w, s] if g == generation else {"generation": g, "writer": w, "seq": s})
        elif kind == BlockKind.TORN:
            sectors: list[Any] = []
            for j in range(i * blocks.sectors, (i + 1) * blocks.sectors):
                st = scan.state[j]
                if st == SectorState.ZERO:
                    sectors.append(None)
                elif st == SectorState.STAMPED and int(scan.generation[j]) == generation:
                    sectors.append([int(scan.writer[j]), int(scan.seq[j])])
                elif st == SectorState.STAMPED and int(scan.lba[j]) == scan.first_lba + j:
                    sectors.append("f")  # another run's sector in its place
                else:
                    sectors.append("x")
            out.append({"torn": sectors})
        else:
            out.append(BlockKind(kind).name.lower())
    return out


RESERVATION_CONFLICT = 0x18


def write_not_applied(exc: BaseException) -> bool:
    """Whether an error proves the write never took effect (so it may be recorded ``fail``).

    Only RESERVATION CONFLICT qualifies (SPC-4: the command is not executed), or an
    error that says so itself (``not_applied = True``). Everything else (timeouts,
    lost paths, other check conditions) leaves the write's fate unknown: ``info``.
    """
    return bool(getattr(exc, "not_applied", False)) or \
        getattr(exc, "status", None) == RESERVATION_CONFLICT


class ClientCrashed(Exception):
    """The operation was abandoned: its client crashed (``Workload.crash``)."""


@dataclass(slots=True)
class WorkloadResult:
    """Counts of what a workload run did."""

    ops: int = 0
    ok: int = 0
    fail: int = 0
    info: int = 0
    reads: int = 0
    writes: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    elapsed_s: float = 0.0

    def summary(self) -> str:
        rate = self.ops / self.elapsed_s if self.elapsed_s else 0.0
        return (f"{self.ops} ops ({self.writes} writes, {self.reads} reads) in "
                f"{self.elapsed_s:.1f} s, {rate:.0f} ops/s: {self.ok} ok, {self.fail} fail, "
                f"{self.info} info; {self.bytes_written / 2**20:.1f} MiB written")


class RateLimit:
    """Paces operations to ``rate`` per second over all writers (no bursts beyond one)."""

    def __init__(self, rate: float) -> None:
        self._interval_ns = int(1e9 / rate)
        self._next_ns = time.monotonic_ns()

    async def acquire(self) -> None:
        now = time.monotonic_ns()
        slot = max(self._next_ns, now)
        self._next_ns = slot + self._interval_ns
        if slot > now:
            await asyncio.sleep((slot - now) / 1e9)


def header_for(device: BlockDevice, spec: WorkloadSpec, *, name: str,
               initial: str = "unknown", generation: int | None = None,
               options: dict[str, Any] | None = None) -> HistoryHeader:
    """The history header of a workload run on ``device`` (a fresh random generation)."""
    if generation is None:
        generation = int.from_bytes(os.urandom(4), "little")
    return HistoryHeader(
        seed=spec.seed, generation=generation & 0xFFFFFFFF, block_size=spec.check_block,
        logical_block_size=device.block_size, num_blocks=device.num_blocks, device=name,
        initial=initial, start_ns=time.monotonic_ns(), wall_clock=time.time(),
        options=dict(options or {}),
    )


class Workload:
    """A seeded workload bound to a device and a history."""

    def __init__(self, device: BlockDevice, spec: WorkloadSpec, history: History,
                 *, on_op: Callable[[str], None] | None = None, seq_base: int = 0,
                 first_writer: int = 0) -> None:
        """``first_writer``: the first writer id of this workload in the history, when
        several workloads (one per cluster node, private and shared regions) share it."""
        self.device = device
        self.history = history
        self.spec = spec.validate(device.num_blocks * device.block_size, device.block_size)
        h = history.header
        if (h.block_size, h.logical_block_size, h.num_blocks) != (
                self.spec.check_block, device.block_size, device.num_blocks):
            raise WorkloadConfigError(
                f"history header says {h.block_size}-byte checker blocks on {h.num_blocks} x "
                f"{h.logical_block_size} bytes, but the workload uses {self.spec.check_block} "
                f"on {device.num_blocks} x {device.block_size}; build the header from both"
            )
        self.generation = history.header.generation
        self.result = WorkloadResult()
        self._on_op = on_op
        self._stop = asyncio.Event()
        self._up = asyncio.Event()  # cleared while the client is crashed
        self._up.set()
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._deadline_ns: int | None = None
        self.first_writer = first_writer
        # slots are processes (first_writer + w) * qd + q; one whose write ended info
        # continues as a fresh process id, unique over every workload of the history
        self._next_process = 1_000_000 * (first_writer + 1)
        self._rate = RateLimit(spec.rate) if spec.rate else None
        # A later part of one logical run (a VM resumed elsewhere) numbers its writes
        # from seq_base, drawn from a plan of its own, so no stamp id repeats.
        self._seq_base = seq_base

    def stop(self) -> None:
        """Ask every slot to stop after its current operation."""
        self._stop.set()
        self._up.set()

    def crash(self) -> None:
        """The client dies: every operation in flight is abandoned (cancelled, so never
        re-driven; recorded ``info`` with the error ``ABANDONED``), and no slot starts
        another until ``restart``. Call on the workload's event loop."""
        self._up.clear()
        for task in list(self._in_flight):
            task.cancel()

    def restart(self) -> None:
        """The crashed client is back: its slots go on, each as a fresh process."""
        self._up.set()

    async def _io(self, aw: Any) -> Any:
        """Await one device call; a crash abandons it (``ClientCrashed``)."""
        task = asyncio.current_task()
        assert task is not None
        if not self._up.is_set():
            aw.close()  # never started: nothing was sent
            raise ClientCrashed
        self._in_flight.add(task)
        try:
            return await aw
        except asyncio.CancelledError:
            if self._up.is_set():
                raise  # not a crash: the run itself is being cancelled
            task.uncancel()
            raise ClientCrashed from None
        finally:
            self._in_flight.discard(task)

    async def run(self) -> WorkloadResult:
        spec = self.spec
        start = time.monotonic_ns()
        if spec.duration is not None:
            self._deadline_ns = start + int(spec.duration * 1e9)
        first = self.first_writer
        streams = [self._plan(w) for w in range(spec.writers)]
        writes_done = [0] * spec.writers
        tasks = [
            asyncio.create_task(
                self._slot(w, (first + w) * spec.queue_depth + q, streams[w], writes_done))
            for w in range(spec.writers)
            for q in range(spec.queue_depth)
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
        await self._flush(process=-1)
        self.result.elapsed_s = (time.monotonic_ns() - start) / 1e9
        return self.result

    def _plan(self, writer: int) -> Iterator[PlannedOp]:
        wid = self.first_writer + writer
        if not self._seq_base:
            return plan(self.spec, writer, wid)
        base = self._seq_base
        spec = replace(self.spec, seed=self.spec.seed + base)
        return (replace(op, seq=base + op.seq) for op in plan(spec, writer, wid))

    def _running(self) -> bool:
        if self._stop.is_set():
            return False
        return self._deadline_ns is None or time.monotonic_ns() < self._deadline_ns

    async def _slot(self, writer: int, process: int, stream: Any, writes_done: list[int]) -> None:
        while self._running():
            if not self._up.is_set():  # crashed: nothing starts until the client is back
                await self._up.wait()
                continue
            op: PlannedOp | None = next(stream, None)
            if op is None:
                return
            if self._rate is not None:
                await self._rate.acquire()
            if op.kind == "write":
                outcome = await self._write(process, op)
                writes_done[writer] += 1
                if self.spec.flush_every and writes_done[writer] % self.spec.flush_every == 0:
                    await self._flush(process)
            else:
                outcome = await self._read(process, op)
            if outcome == "info":  # its I/O may still be in flight: continue as a new process
                process = self._next_process
                self._next_process += 1

    def _account(self, outcome: str) -> None:
        r = self.result
        r.ops += 1
        setattr(r, outcome, getattr(r, outcome) + 1)
        if self._on_op is not None:
            self._on_op(outcome)

    async def _write(self, process: int, op: PlannedOp) -> str:
        lbs = self.device.block_size
        wid = WriteId(self.generation, op.writer, op.seq)
        invoke_ns = time.monotonic_ns()
        data = encode_write(op.offset, op.length, wid, seed=self.spec.seed, timestamp=invoke_ns)
        oid = self.history.invoke(process, "write", op.offset // lbs, op.length // lbs,
                                  writer=op.writer, seq=op.seq, time_ns=invoke_ns)
        self.result.writes += 1
        try:
            done = await self._io(asyncio.wait_for(self.device.write(op.offset // lbs, data),
                                                   self.spec.op_timeout))
        except ClientCrashed:
            return self._complete(oid, "info", invoke_ns, error=ABANDONED)
        except TimeoutError:
            return self._complete(oid, "info", invoke_ns, error="timeout")
        except SplitbrainError as exc:
            outcome = "fail" if write_not_applied(exc) else "info"
            return self._complete(oid, outcome, invoke_ns, error=str(exc))
        except OSError as exc:
            return self._complete(oid, "info", invoke_ns, error=str(exc))
        self.result.bytes_written += op.length
        return self._complete(oid, "ok", invoke_ns, path=done.path)

    async def _read(self, process: int, op: PlannedOp) -> str:
        lbs = self.device.block_size
        invoke_ns = time.monotonic_ns()
        oid = self.history.invoke(process, "read", op.offset // lbs, op.length // lbs,
                                  time_ns=invoke_ns)
        self.result.reads += 1
        try:
            done = await self._io(asyncio.wait_for(
                self.device.read(op.offset // lbs, op.length // lbs), self.spec.op_timeout))
        except ClientCrashed:
            return self._complete(oid, "info", invoke_ns, error=ABANDONED)
        except TimeoutError:
            return self._complete(oid, "fail", invoke_ns, error="timeout")
        except (SplitbrainError, OSError) as exc:
            return self._complete(oid, "fail", invoke_ns, error=str(exc))
        complete_ns = time.monotonic_ns()
        value = observe(done.data, op.offset, self.spec.check_block, self.generation)
        self.result.bytes_read += op.length
        return self._complete(oid, "ok", invoke_ns, path=done.path, value=value,
                              time_ns=complete_ns)

    async def _flush(self, process: int) -> None:
        invoke_ns = time.monotonic_ns()
        oid = self.history.invoke(process, "flush", 0, 0, time_ns=invoke_ns)
        try:
            await self._io(asyncio.wait_for(self.device.flush(), self.spec.op_timeout))
        except ClientCrashed:
            self.history.complete(oid, "info", invoke_ns=invoke_ns, error=ABANDONED)
            return
        except (TimeoutError, SplitbrainError, OSError) as exc:
            self.history.complete(oid, "info", invoke_ns=invoke_ns, error=str(exc) or "timeout")
            return
        self.history.complete(oid, "ok", invoke_ns=invoke_ns)

    def _complete(self, oid: int, outcome: str, invoke_ns: int, *, path: str | None = None,
                  value: Any = None, error: str | None = None,
                  time_ns: int | None = None) -> str:
        self.history.complete(oid, outcome, invoke_ns=invoke_ns, path=path, value=value,
                              error=error, time_ns=time_ns)
        self._account(outcome)
        return outcome

