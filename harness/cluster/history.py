"""One VM's history across its processes: segments joined, and the migration checks.

Each VM process records its own segment (``harness.cluster.guest``); together
they are one run (one generation and geometry) on the VM's virtual disk.
``load_vm_history`` joins them into one ``RecordedHistory`` for the project's
checkers: operation ids and process ids are renumbered per segment so none
repeats, faults keep their windows.

``check_handover`` judges what the integrity checker cannot see from the data
alone, over the joined history:

- ``duplicate``: a write id (writer, seq) invoked twice (an I/O replayed after
  a move);
- ``in-flight``: an operation of a segment the VM *handed over* (live or quick
  migration: every segment but the last, when the role moved rather than
  died) that never completed: the pause must drain every I/O before the VM
  resumes elsewhere;
- ``error``: an operation that ended ``fail`` or ``info`` where the caller said
  none may (a migration with no fault).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.checks.verdict import Problem, Verdict
from harness.cluster.errors import ClusterError
from harness.cluster.guest import segments
from harness.workload.history import RecordedHistory, load_history

PROCESS_STRIDE = 1 << 20


def load_vm_history(history_dir: str | os.PathLike[str]) -> RecordedHistory:
    """The VM's segments joined in segment order (one run, renumbered ops and processes)."""
    files = segments(history_dir)
    if not files:
        raise ClusterError(f"no history segments in {history_dir}; did the VM ever start?")
    parts = [load_history(f) for f in files]
    first = parts[0]
    ops, faults, paths, records, replicas = [], [], [], [], []
    op_base = fault_base = 0
    for i, part in enumerate(parts):
        h = part.header
        if (h.generation, h.block_size, h.num_blocks) != (
                first.header.generation, first.header.block_size, first.header.num_blocks):
            raise ClusterError(f"{files[i]} belongs to another run than {files[0]}; "
                               "one VM's history directory holds one run")
        for op in part.ops:
            ops.append(replace(op, op=op.op + op_base, process=op.process + i * PROCESS_STRIDE))
        for f in part.faults:
            faults.append(replace(f, fault=f.fault + fault_base))
        paths.extend(part.paths)
        replicas.extend(part.replicas)
        records.extend({**r, "segment": i} for r in part.records)
        op_base += max((o.op for o in part.ops), default=-1) + 1
        fault_base += max((f.fault for f in part.faults), default=-1) + 1
    ops.sort(key=lambda o: (o.invoke_ns, o.op))
    return RecordedHistory(first.header, ops, sorted(faults, key=lambda f: f.start_ns),
                           sorted(paths, key=lambda p: p.time_ns), records,
                           any(p.torn_tail for p in parts),
                           sorted(replicas, key=lambda r: r.time_ns))


def segment_of(op: Any) -> int:
    return int(op.process // PROCESS_STRIDE)


def check_handover(history: RecordedHistory, *, handed_over: set[int],
                   errors_allowed: bool = True) -> Verdict:
    """Duplicate write ids, I/O left in flight by a handed-over segment, and errors."""
    problems: list[Problem] = []
    seen: dict[tuple[int, int], Any] = {}
    size = history.header.logical_block_size
    for op in history.ops:
        where = (op.lba * size, op.count * size)
        if op.f == "write" and op.writer >= 0:
            key = (op.writer, op.seq)
            if key in seen:
                problems.append(Problem(
                    "duplicate", f"duplicate: write {key} was issued twice (ops {seen[key].op} "
                    f"and {op.op})", *where, "history",
                    records=seen[key].records + op.records))
            seen[key] = op
        if segment_of(op) in handed_over and op.complete_ns is None:
            problems.append(Problem(
                "in-flight", f"in-flight: op {op.op} ({op.f}) of segment {segment_of(op)} never "
                "completed before the VM was handed over", *where, "history",
                records=op.records))
        if not errors_allowed and op.outcome != "ok":
            problems.append(Problem(
                "error", f"error: op {op.op} ({op.f}) ended {op.outcome}: {op.error}",
                *where, "history", records=op.records))
    return Verdict("handover", problems,
                   {"ops": len(history.ops), "write_ids": len(seen),
                    "segments": 1 + max((segment_of(o) for o in history.ops), default=0)})


def history_files(history_dir: str | os.PathLike[str]) -> list[Path]:
    return segments(history_dir)
