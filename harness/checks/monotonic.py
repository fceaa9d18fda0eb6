"""Read monotonicity: once a read has seen a block's newer value, later reads may not go back.

The model (Jepsen's monotonic reads, per block register): a read ``R1`` of
block ``b`` returns write ``W1``. Every write ``W2`` to ``b`` that completed
before ``R1`` began is then ordered before ``W1`` (``R1`` saw ``W1`` as the
block's latest value although ``W2`` had already taken effect). So a later read
``R2`` (invoked after ``R1`` completed, from any process, path or initiator)
may not return ``W2`` once ``W1`` is acknowledged: that is a
``nonmonotonic_read``, the symptom of two replicas serving different histories
of one block (paths to two storage nodes that disagree, or a failover to a
replica that missed writes).

Precisely, ``R2`` returning ``W2 != W1`` is reported when ``R1.complete <
R2.invoke``, ``W1`` is ``ok`` and completed before ``R2.invoke``, ``W2``
completed before ``R1.invoke`` (the initial content counts as completed before
everything), and ``W2`` is not certainly newer than ``W1`` (not invoked after
``W1`` completed: then ``R1`` was the stale read, which ``register`` reports).
Concurrent writes whose order only the reads reveal are covered; so is a
block read through two initiators.

Each block keeps one anchor, the latest-completing read that did not return an
older value than the anchor's (an older value returned while the anchor's write
is still in flight is allowed, and the anchor stays): the check is sound (every
report is a real violation) and uses memory per block, not per operation.
Reads of torn, corrupt or foreign blocks are left to ``register``. So are reads
whose anchor or returned write the streamed write table dropped (overwritten on
every block before the read began, ``write_table.WriteTable.compact``): without
its times the order cannot be judged here, and ``register`` reports every read
of a dropped write as ``stale_read`` (on the two 600 s nightly histories of
docs/chaos.md, 1 and 31 such reads, each in ``register``'s problems).
"""

from __future__ import annotations

import os
from array import array
from typing import Any

from harness.checks.register_stream import ReadBlocks, read_blocks
from harness.checks.verdict import Problem, Verdict
from harness.checks.write_table import WriteTable
from harness.workload.history_stream import NEVER, OK, OpChunk, OpStream, outline, read_records

NONE = -2  # no anchor yet
VIOLATION, OLDER, NEWER = 0, 1, 2
INITIAL = -1  # the block's initial content
MAX_PROBLEMS = 1000  # reported in full; the rest are counted


class MonotonicReads:
    """Per-block anchors fed by a stream of ``OpChunk``s (see the module docstring)."""

    def __init__(self, num_blocks: int, block_size: int, logical_block_size: int,
                 table: WriteTable, history_path: str | os.PathLike[str] | None = None,
                 initial: str = "unknown") -> None:
        self.block_size = block_size
        self.lbs = logical_block_size
        self.table = table
        self.history_path = history_path
        self.initial_zero = initial == "zero"
        self.nb = num_blocks
        # array.array: 8 bytes a block like numpy, and a Python int per access ~3x faster
        self.anchor_w = array("q", [NONE]) * num_blocks
        self.anchor_s = array("q", bytes(8 * num_blocks))
        self.anchor_invoke = array("q", bytes(8 * num_blocks))
        self.anchor_complete = array("q", bytes(8 * num_blocks))
        self.anchor_at = array("q", bytes(8 * num_blocks))  # its completion record
        self.problems: list[Problem] = []
        self.violations = 0
        self.reads = 0
        self.blocks = 0
        self.paths: list[str] = []

    def add(self, chunk: OpChunk, path_names: list[str] | None = None,
            blocks: ReadBlocks | None = None) -> None:
        """Judge a chunk's ``ok`` reads (its writes must already be in the table)."""
        if path_names is not None:
            self.paths = path_names
        if blocks is None:
            blocks = read_blocks(chunk, self.block_size, self.lbs, self.initial_zero)
        self.reads += blocks.reads
        self.blocks += len(blocks.rows)
        if not len(blocks.rows):
            return
        invoke, complete, at = chunk.invoke.tolist(), chunk.complete.tolist(), \
            chunk.complete_at.tolist()
        aw_, as_, ai_, ac_ = self.anchor_w, self.anchor_s, self.anchor_invoke, \
            self.anchor_complete
        nb = self.nb
        for i, b, w, s in blocks.rows.tolist():
            if b >= nb:
                continue
            aw = aw_[b]
            ri, rc = invoke[i], complete[i]
            if aw != NONE and (w != aw or s != as_[b]) and ri > ac_[b]:
                back = self._back(b, w, s, ri)
                if back == VIOLATION:
                    self._report(chunk, i, b, w, s)
                if back != NEWER:
                    continue  # the anchor stays: it is the newer value
            if aw == NONE or rc > ac_[b]:
                aw_[b], as_[b], ai_[b], ac_[b] = w, s, ri, rc
                self.anchor_at[b] = at[i]

    def _back(self, b: int, w: int, s: int, ri: int) -> int:
        """Is returning (w, s) at ``ri`` going back from the block's anchor value?

        ``VIOLATION``: yes, and the anchor's write is acknowledged; ``OLDER``: it
        is older, but the anchor's write is not acknowledged yet (allowed, and the
        anchor stays); ``NEWER``: not older (the read becomes the anchor).
        """
        aw, as_ = int(self.anchor_w[b]), int(self.anchor_s[b])
        if aw == INITIAL:
            return NEWER  # nothing is older than the initial content
        newer = self.table.get(aw, as_)
        if newer is None:  # the anchor's write has not completed yet
            newer = (0, NEVER, OK, 0, 0)
        elif newer[2] != OK:
            return NEWER  # failed or unknown: it never became the block's value
        if w != INITIAL:
            older = self.table.get(w, s)
            if older is None or older[2] != OK:
                return NEWER  # unknown, failed or unacknowledged: register's business
            if older[1] >= int(self.anchor_invoke[b]):
                return NEWER  # it had not completed when the anchor read began
            if newer[1] != NEVER and older[0] > newer[1]:
                return NEWER  # certainly newer: the anchor read was the stale one
        return VIOLATION if newer[1] < ri else OLDER

    def _report(self, chunk: OpChunk, i: int, b: int, w: int, s: int) -> None:
        self.violations += 1
        if len(self.problems) >= MAX_PROBLEMS:
            return

        def name(writer: int, seq: int) -> str:
            return "initial content" if writer == INITIAL else f"write w{writer}#{seq}"

        p = int(chunk.path[i])
        via = self.paths[p] if 0 <= p < len(self.paths) else None
        offsets = [int(self.anchor_at[b]), int(chunk.invoke_at[i]), int(chunk.complete_at[i])]
        records: list[dict[str, Any]] = []
        if self.history_path is not None:
            records = read_records(self.history_path, offsets)
        older = name(w, s)
        newer = name(int(self.anchor_w[b]), int(self.anchor_s[b]))
        self.problems.append(Problem(
            "nonmonotonic_read",
            f"nonmonotonic_read: read op {int(chunk.op[i])} via {via} at byte "
            f"{b * self.block_size} returned {older} after an earlier read had returned "
            f"{newer}, which was acknowledged; the block went back to an older value",
            offset=b * self.block_size, length=self.block_size, device=via, records=records,
            detail={"read": int(chunk.op[i]), "returned": older, "earlier_read_returned": newer,
                    "earlier_read_completed_ns": int(self.anchor_complete[b])}))

    def verdict(self) -> Verdict:
        return Verdict("monotonic", list(self.problems),
                       {"reads": self.reads, "blocks": self.blocks,
                        "violations": self.violations})


def check_read_monotonicity(history_path: str | os.PathLike[str]) -> Verdict:
    """Stream a history and judge every ``ok`` read against the earlier ones."""
    h = outline(history_path).header
    table = WriteTable(h.generation, h.block_size, h.logical_block_size)
    check = MonotonicReads(h.size // h.block_size, h.block_size, h.logical_block_size, table,
                           history_path, h.initial)
    stream = OpStream(history_path)
    for chunk in stream:
        table.add(chunk)
        check.add(chunk, stream.path_names)
    return check.verdict()
