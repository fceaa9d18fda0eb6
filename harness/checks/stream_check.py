"""Every history checker in one streamed pass: what a one-hour nightly can afford.

``check_history_file`` reads a history once, in ``OpChunk``s, and feeds the
write table, the streamed register check (``register_stream``), read
monotonicity (``monotonic``) and the per-fault timer (``faults_report``). No
Python object per operation is kept: memory is per block of the device, per
5 ms of history, per write (33 bytes in ``write_table``) and per rare slow or
failed operation. ``bench/check_scale.py`` measures it.

The device and replica checks (``integrity``, ``divergence``) read the device,
not the history; ``compose.check_run`` runs them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence

from harness.checks.compose import RunVerdict
from harness.checks.faults_report import (
    FaultReport,
    FaultTimer,
    faults_verdict,
    finish_reports,
    resolve_budgets,
)
from harness.checks.monotonic import MonotonicReads
from harness.checks.register_stream import StreamRegisterCheck, read_blocks
from harness.checks.verdict import Verdict
from harness.checks.write_table import WriteTable
from harness.workload.history import FaultWindow
from harness.workload.history_stream import CHUNK, OpStream, outline

STREAM_CHUNK = 8192  # operations per chunk: a few seconds of a busy run


def check_history_file(history_path: str | os.PathLike[str],
                       budgets: Mapping[str, float] | None = None, *,
                       fault_windows: Sequence[FaultWindow] | None = None,
                       chunk: int = STREAM_CHUNK) -> tuple[RunVerdict, list[FaultReport]]:
    """The register, monotonic and faults verdicts of a history file, in one pass."""
    started = time.perf_counter()
    budget = resolve_budgets(budgets)
    out = outline(history_path)
    h = out.header
    table = WriteTable(h.generation, h.block_size, h.logical_block_size)
    nb = h.size // h.block_size
    register = StreamRegisterCheck(nb, h.block_size, h.logical_block_size, table,
                                   history_path, h.initial)
    monotonic = MonotonicReads(nb, h.block_size, h.logical_block_size, table, history_path,
                               h.initial)
    timer = FaultTimer(list(out.faults if fault_windows is None else fault_windows),
                       budget["stall_s"])
    stream = OpStream(history_path, chunk=chunk or CHUNK)
    for c in stream:
        table.add(c)
        blocks = read_blocks(c, h.block_size, h.logical_block_size, h.initial == "zero")
        register.add(c, stream.path_names, blocks)
        monotonic.add(c, stream.path_names, blocks)
        timer.add(c)
        timer.pending(c)
    reports = finish_reports(timer, stream, out.replicas, budget, history_path)
    result = RunVerdict(os.fspath(history_path))
    result.verdicts += [register.verdict(), monotonic.verdict(), faults_verdict(reports)]
    result.verdicts.append(Verdict("stream", [], {
        "operations": stream.operations, "records": stream.records, "writes": table.writes,
        "write_table_bytes": table.nbytes(), "torn_tail": stream.torn_tail,
        "seconds": time.perf_counter() - started}))
    return result, reports
