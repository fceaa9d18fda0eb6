"""Every history checker in one streamed pass: what a one-hour nightly can afford.

``stream_history`` reads a history once, in ``OpChunk``s, and feeds the write
table, the streamed register check (``register_stream``), read monotonicity
(``monotonic``), the whole run's pause and errors and the per-fault timer
(``faults_report``). No Python object per operation is kept: memory is per
block of the device, per 5 ms of history, per live write (57 bytes in
``write_table``, which drops the writes overwritten everywhere) and per rare slow or
failed operation. ``bench/check_scale.py``
measures it.

``check_history_file`` returns those verdicts; ``check_run_file`` is
``compose.check_run`` for a history of any length: the same pass, then the
device read back through every path (``integrity``) and the replicas compared
(``divergence``) with a ``WriteIndex`` built from the write table, and a
capture's numbers beside the per-fault report (``packet_timing``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.checks.compose import RunVerdict
from harness.checks.divergence import ChunkReader, compare_replicas
from harness.checks.episodes import outside
from harness.checks.faults_report import (
    FaultReport,
    FaultsJudgement,
    FaultTimer,
    caller_errors,
    faults_verdict,
    judge_faults,
    redundancy_windows,
    resolve_budgets,
)
from harness.checks.integrity import IntegrityCheck, check_devices
from harness.checks.model import WriteIndex
from harness.checks.monotonic import MonotonicReads
from harness.checks.packet_timing import check_scenario_capture
from harness.checks.register_stream import StreamRegisterCheck, read_blocks
from harness.checks.verdict import Problem, Verdict
from harness.checks.write_table import WriteTable
from harness.workload.device import BlockDevice
from harness.workload.history import FaultWindow
from harness.workload.history_stream import CHUNK, HistoryOutline, OpStream, outline

STREAM_CHUNK = 8192  # operations per chunk: a few seconds of a busy run
COMPACT_ROWS = 65536  # the write table drops its dead writes when it holds this many, or
# twice as many as after the last time
WHOLE_RUN = {"io_pause": "io_pause_s", "caller_errors": "caller_errors_max"}


@dataclass(slots=True)
class StreamedHistory:
    """What one streamed pass over a history leaves: small, per block, per write."""

    outline: HistoryOutline
    table: WriteTable
    register: Verdict
    monotonic: Verdict
    timing: Verdict
    reports: list[FaultReport]
    judgement: FaultsJudgement


def stream_history(history_path: str | os.PathLike[str],
                   budgets: Mapping[str, float] | None = None, *,
                   fault_windows: Sequence[FaultWindow] | None = None,
                   chunk: int = STREAM_CHUNK) -> StreamedHistory:
    """One pass: the write table, register, monotonic, whole-run timing and faults."""
    started = time.perf_counter()
    given = {WHOLE_RUN.get(k, k): float(v) for k, v in (budgets or {}).items()}
    budget = resolve_budgets(given)
    out = outline(history_path)
    h = out.header
    table = WriteTable(h.generation, h.block_size, h.logical_block_size)
    nb = h.size // h.block_size
    register = StreamRegisterCheck(nb, h.block_size, h.logical_block_size, table,
                                   history_path, h.initial)
    monotonic = MonotonicReads(nb, h.block_size, h.logical_block_size, table, history_path,
                               h.initial)
    beyond = redundancy_windows(out, budget)
    timer = FaultTimer(list(out.faults if fault_windows is None else fault_windows),
                       budget["stall_s"], [w.end_ns for w in beyond])
    stream = OpStream(history_path, chunk=chunk or CHUNK)
    compact_at = COMPACT_ROWS
    for c in stream:
        table.add(c)
        blocks = read_blocks(c, h.block_size, h.logical_block_size, h.initial == "zero")
        register.add(c, stream.path_names, blocks)
        monotonic.add(c, stream.path_names, blocks)
        timer.add(c)
        timer.pending(c)
        if table.live >= compact_at:  # drop the dead writes: memory per block, not per write
            table.compact(register.certainly_overwritten, stream.horizon_ns,
                          stream.pending_floor)
            compact_at = max(COMPACT_ROWS, 2 * table.live)
    judgement = judge_faults(timer, stream, out.replicas, budget, history_path, beyond)
    reg = register.verdict()
    reg.stats.update({"operations": stream.operations, "records": stream.records,
                      "writes": table.writes, "write_table_bytes": table.nbytes(),
                      "writes_dropped": table.dropped,
                      "torn_tail": stream.torn_tail,
                      "seconds": time.perf_counter() - started})
    return StreamedHistory(out, table, reg, monotonic.verdict(),
                           _whole_run(timer, stream, given, history_path,
                                      judgement.expected_spans),
                           judgement.reports, judgement)


def _whole_run(timer: FaultTimer, stream: OpStream, budget: dict[str, float],
               history_path: str | os.PathLike[str],
               expected: Sequence[tuple[int, int]] = ()) -> Verdict:
    """The longest pause and the caller errors of the whole run, against their budgets;
    what fell while every replica was impaired (``expected``: the beyond-redundancy
    windows and their settle) is counted apart and not judged."""
    first = stream.first_ns if stream.first_ns is not None else 0
    if timer.origin is None:
        timer.origin = first
    gs, ge = timer.gaps(first, stream.end_ns)
    lengths = (ge - gs).astype(np.int64)
    starts = gs.astype(np.int64)
    for s, e in expected:  # only the gaps that cross a window are cut
        for k in np.flatnonzero((gs < e) & (ge > s)).tolist():
            parts = outside(int(gs[k]), int(ge[k]), expected) or [(int(gs[k]), int(gs[k]))]
            x, y = max(parts, key=lambda p: p[1] - p[0])
            lengths[k], starts[k] = y - x, x
    i = int(np.argmax(lengths)) if len(gs) else 0
    pause = float(lengths[i]) / 1e9 if len(gs) else 0.0
    rows = caller_errors(timer.errors.table(), history_path)
    excused = sum(1 for r in rows if any(s <= r[1] <= e for s, e in expected))
    errors = len(rows) - excused
    stats: dict[str, Any] = {"longest_pause_s": pause,
                             "longest_pause_start_s": (int(starts[i]) - first) / 1e9
                             if len(gs) else None, "caller_errors": errors,
                             "expected_caller_errors": excused, "budget": budget,
                             "faults": [], "paths": list(stream.path_names)}
    problems = []
    for measure, name, value in (("io_pause", "io_pause_s", pause),
                                 ("caller_errors", "caller_errors_max", errors)):
        if name in budget and value > budget[name]:
            shown = f"{value:.3f} s" if name.endswith("_s") else f"{value:g}"
            problems.append(Problem("over_budget", f"over budget: the whole run's {measure} "
                                    f"is {shown}; budget {name} = {budget[name]:g}",
                                    detail={"measure": measure, "value": value,
                                            "budget": budget[name], "budget_name": name}))
    return Verdict("timing", problems, stats)


def check_history_file(history_path: str | os.PathLike[str],
                       budgets: Mapping[str, float] | None = None, *,
                       fault_windows: Sequence[FaultWindow] | None = None,
                       chunk: int = STREAM_CHUNK) -> tuple[RunVerdict, list[FaultReport]]:
    """The register, monotonic, timing and faults verdicts of a history file, in one pass."""
    s = stream_history(history_path, budgets, fault_windows=fault_windows, chunk=chunk)
    result = RunVerdict(os.fspath(history_path))
    result.verdicts += [s.register, s.monotonic, s.timing,
                        faults_verdict(s.reports, s.judgement)]
    return result, s.reports


async def check_run_file(
    history_path: str | os.PathLike[str],
    *,
    devices: dict[str, BlockDevice] | None = None,
    replicas: dict[str, ChunkReader] | None = None,
    budget: Mapping[str, float] | None = None,
    pcap: str | None = None,
    iscsi_ports: tuple[int, ...] = (3260,),
    wire_tolerance_s: float = 0.01,
    fault_windows: Sequence[FaultWindow] | None = None,
    span: int | None = None,
    whole: Collection[str] | None = None,
) -> tuple[RunVerdict, list[FaultReport]]:
    """``compose.check_run`` for a history of any length: streamed, then the devices.

    ``span``: read the ``devices`` back only over the first ``span`` bytes (where the
    workload wrote); the replicas named in ``whole`` (default: every one; those that
    must hold every acknowledged write, i.e. Synchronized) are then checked for integrity
    in full, in the same pass that compares them, so no block goes unchecked. With none
    of them, the devices are read back in full."""
    s = stream_history(history_path, budget, fault_windows=fault_windows)
    result = RunVerdict(os.fspath(history_path))
    result.verdicts += [s.register, s.monotonic, s.timing,
                        faults_verdict(s.reports, s.judgement)]
    if pcap is not None:
        result.verdicts.append(check_scenario_capture(
            pcap, history_path, s.reports, ports=iscsi_ports, tolerance_s=wire_tolerance_s,
            fault_windows=fault_windows))
    if devices or replicas:
        h = s.outline.header
        index = WriteIndex.from_table(h, s.table, history_path)
        in_full = set(replicas or {}) if whole is None else set(whole) & set(replicas or {})
        whole_device = span is None or span >= h.size or not in_full
        check = IntegrityCheck(s.outline, index)
        in_images: list[Problem] = []

        def each(name: str, offset: int, data: bytes) -> None:
            if name in in_full:
                in_images.extend(check.check_buffer(offset, data, name))

        divergence = None
        if replicas:
            t0 = time.perf_counter()
            divergence = await compare_replicas(replicas, h.size, h.block_size, s.outline,
                                                index=index,
                                                each=None if whole_device else each)
            divergence.stats["wall_s"] = round(time.perf_counter() - t0, 3)
        if devices:
            t0 = time.perf_counter()
            integrity = await check_devices(
                s.outline, devices, index=index, span=None if whole_device else span,
                check=check, problems=in_images)
            integrity.stats["wall_s"] = round(time.perf_counter() - t0, 3)
            if not whole_device:
                integrity.stats["read_back_bytes"] = min(span or h.size, h.size)
                integrity.stats["checked_in_full"] = sorted(in_full)
            result.verdicts.append(integrity)
        elif not whole_device:  # no path to read: the images' own integrity still
            result.verdicts.append(check.verdict(in_images))
        if divergence is not None:
            result.verdicts.append(divergence)
    return result, s.reports
