"""Reads during the run: did every read return a value the block could hold?

The model: each checker block is a register (``harness.checks.model``). A read
``R`` (invoked at ``R.invoke``, complete at ``R.complete``) may return

- a write ``W`` of this run to that block that did not ``fail``, that was
  invoked before the read completed (``W.invoke < R.complete``), and that no
  ``ok`` write certainly overwrote before the read began: there is no ``ok``
  write ``W'`` to the block with ``W'.invoke > W.complete`` and
  ``W'.complete < R.invoke`` (``info`` writes never complete, so they are
  never certainly overwritten);
- the block's initial content, if no ``ok`` write to it completed before the
  read began.

Anything else is a ``stale_read`` (old data after a newer write was
acknowledged, the classic symptom of failing over to a replica that missed
writes) or a ``future_read`` (a value whose write had not been issued yet),
reported with the faults active during the read. A read that returned a torn,
misplaced or corrupt block is reported as ``torn_read``, ``misplaced_read`` or
``corrupt_read``. Only ``ok`` reads are judged; failed reads returned nothing.

This is per-block register safety, not full linearizability: it does not
require two successive reads of one block to agree on the order of concurrent
writes.
"""

from __future__ import annotations

from typing import Any

from harness.checks.model import INF, WriteIndex
from harness.checks.verdict import Problem, Verdict
from harness.workload.history import Operation, RecordedHistory

_INITIAL = "initial"


class RegisterCheck:
    """Judges the values the history's reads observed."""

    def __init__(self, history: RecordedHistory, index: WriteIndex | None = None) -> None:
        self.history = history
        self.index = index or WriteIndex(history)
        self.header = history.header
        self.reads_checked = 0
        self.blocks_checked = 0

    def check(self) -> Verdict:
        problems: list[Problem] = []
        h = self.header
        reads = [r for r in self.history.reads
                 if r.outcome == "ok" and isinstance(r.value, list)]
        blocks: set[int] = set()
        for r in reads:
            first = r.lba * h.logical_block_size // h.block_size
            blocks.update(range(first, first + len(r.value)))
        self.index.prepare_blocks(blocks)
        for read in reads:
            self.reads_checked += 1
            problems.extend(self._check_read(read))
        return Verdict("register", problems,
                       {"reads": self.reads_checked, "blocks": self.blocks_checked})

    def _check_read(self, read: Operation) -> list[Problem]:
        h = self.header
        first = read.lba * h.logical_block_size // h.block_size
        out: list[Problem] = []
        for i, value in enumerate(read.value):
            block = first + i
            self.blocks_checked += 1
            verdict = self._judge(read, block, value)
            if verdict is not None:
                kind, note, writes = verdict
                out.append(self._problem(read, block, kind, note, writes))
        return out

    def _judge(self, read: Operation, block: int,
               value: Any) -> tuple[str, str, list[int]] | None:
        if isinstance(value, str):
            return f"{value}_read", f"returned a {value} block", []
        if isinstance(value, dict) and "torn" in value:
            return self._judge_torn(read, block, value["torn"])
        return self._judge_value(read, block, self._decode(value))

    def _decode(self, value: Any) -> Any:
        """[writer, seq] -> write index (or ("unknown", w, s)); zeros/foreign -> initial."""
        if value is None:
            return _INITIAL
        if value == "f":
            value = {}
        if isinstance(value, dict):  # another run's block: initial content unless created empty
            return _INITIAL if self.header.initial != "zero" else ("foreign", value)
        w, s = int(value[0]), int(value[1])
        i = self.index.lookup_one(w, s)
        return i if i >= 0 else ("unknown", w, s)

    def _judge_torn(self, read: Operation, block: int,
                    sectors: list[Any]) -> tuple[str, str, list[int]] | None:
        h = self.header
        per_unit = max(1, min(h.logical_block_size, h.block_size) // 512)
        units = [sectors[j:j + per_unit] for j in range(0, len(sectors), per_unit)]
        if any(len({repr(x) for x in u}) > 1 for u in units) or any("x" in u for u in units):
            return "torn_read", "returned sectors of different writes inside one logical block", []
        for u in units:  # tearing at logical-block boundaries is allowed if each part is
            v = self._judge_value(read, block, self._decode(u[0]))
            if v is not None:
                return "torn_read", "returned a torn block with a part that " + v[1], v[2]
        return None

    def _judge_value(self, read: Operation, block: int,
                     value: Any) -> tuple[str, str, list[int]] | None:
        idx = self.index
        bw = idx.block_writes(block)
        r_invoke = read.invoke_ns
        r_complete = read.end_ns()
        if isinstance(value, tuple):
            if value[0] == "foreign":
                return "misplaced_read", "returned a block of another run", []
            return "phantom_read", f"returned stamp w{value[1]}#{value[2]} never issued", []
        if value == _INITIAL:
            over = bw.overwriter(-1, r_invoke)
            if over is None:
                return None
            return ("stale_read", f"returned initial content after {idx.describe(over)} "
                    "was acknowledged", [over])
        w = int(value)
        op = idx.writes[w]
        if not (idx.first[w] <= block < idx.stop[w]):
            return "phantom_read", f"returned {idx.describe(w)}, which never wrote here", [w]
        if op.outcome == "fail":
            return "phantom_read", f"returned {idx.describe(w)}, which failed", [w]
        if op.invoke_ns >= r_complete:
            return "future_read", f"returned {idx.describe(w)}, invoked after the read", [w]
        end = int(idx.end[w])
        over = bw.overwriter(end if end < INF else float("inf"), r_invoke)
        if over is None:
            return None
        return ("stale_read", f"returned {idx.describe(w)} after {idx.describe(over)} "
                "overwrote it", [w, over])

    def _problem(self, read: Operation, block: int, kind: str, note: str,
                 writes: list[int]) -> Problem:
        h = self.header
        faults = self.history.faults_during(read.invoke_ns, read.end_ns())
        records: list[dict[str, Any]] = list(read.records)
        for w in writes:
            records.extend(self.index.writes[w].records)
        for f in faults:
            records.extend(f.records)
        active = ", ".join(f.name for f in faults) or "none"
        return Problem(
            kind=kind,
            message=(f"{kind}: read op {read.op} via {read.path} at byte {block * h.block_size} "
                     f"{note} (faults active: {active})"),
            offset=block * h.block_size,
            length=h.block_size,
            device=read.path,
            records=records,
            detail={"read": read.op, "faults": [f.name for f in faults]},
        )


def check_reads(history: RecordedHistory, index: WriteIndex | None = None) -> Verdict:
    """Judge every ``ok`` read of a history against per-block register semantics."""
    return RegisterCheck(history, index).check()
