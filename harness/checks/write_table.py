"""The writes of a streamed history, in numpy columns sorted by (writer, seq).

A read records which write each block held as ``[writer, seq]`` (the block's
stamp), and judging it needs that write's times, outcome and blocks. Each
write is one row of sorted columns, 57 bytes (key, invoke and completion time,
first and stop checker block, outcome, op id and the byte offsets of its two
records, to cite them), no Python object; each chunk's writes
are merged in with one ``np.insert``. A write not yet completed when a read
returns it is simply not in the table yet: its completion is later than anything
already streamed, which is what the checkers assume for a missing write.
"""

from __future__ import annotations

import numpy as np

from harness.workload.history_stream import NEVER, PENDING, WRITE, OpChunk

_INT32_MAX = np.iinfo(np.int32).max


def write_key(writer: np.ndarray | int, seq: np.ndarray | int) -> np.ndarray:
    """One int64 per (writer, seq): the writer in the high bits, seq in the low 40."""
    return (np.asarray(writer, dtype=np.int64) << np.int64(40)) | np.asarray(seq, dtype=np.int64)


class WriteTable:
    """Every completed write of this run's generation, sorted by (writer, seq)."""

    def __init__(self, generation: int, block_size: int, logical_block_size: int) -> None:
        self.generation = generation
        self.lbs = logical_block_size
        self.block_size = block_size
        self.key = np.empty(0, dtype=np.int64)
        self.invoke = np.empty(0, dtype=np.int64)
        self.end = np.empty(0, dtype=np.int64)
        self.first = np.empty(0, dtype=np.int32)
        self.stop = np.empty(0, dtype=np.int32)
        self.outcome = np.empty(0, dtype=np.int8)
        self.op = np.empty(0, dtype=np.int64)
        self.invoke_at = np.empty(0, dtype=np.int64)  # byte offsets of its records
        self.complete_at = np.empty(0, dtype=np.int64)

    @property
    def writes(self) -> int:
        return len(self.key)

    def add(self, chunk: OpChunk) -> None:
        """Take the writes of a chunk (``info`` writes may still land: end = NEVER)."""
        mine = (chunk.f == WRITE) & (chunk.generation == self.generation) & (chunk.seq >= 0)
        if not mine.any():
            return
        key = write_key(chunk.writer[mine], chunk.seq[mine])
        order = np.argsort(key, kind="stable")
        key = key[order]
        lba, count = chunk.lba[mine][order], chunk.count[mine][order]
        outcome = chunk.outcome[mine][order]
        cols = {
            "invoke": chunk.invoke[mine][order],
            "end": np.where((outcome == 0) | (outcome == 2), chunk.complete[mine][order],
                            NEVER),
            "first": np.minimum(lba * self.lbs // self.block_size, _INT32_MAX).astype(np.int32),
            "stop": np.minimum((lba + count) * self.lbs // self.block_size,
                               _INT32_MAX).astype(np.int32),
            "outcome": np.where(outcome == PENDING, 1, outcome).astype(np.int8),
            "op": chunk.op[mine][order],
            "invoke_at": chunk.invoke_at[mine][order],
            "complete_at": chunk.complete_at[mine][order],
        }
        at = np.searchsorted(self.key, key)
        self.key = np.insert(self.key, at, key)
        for name, col in cols.items():
            setattr(self, name, np.insert(getattr(self, name), at, col))

    def get(self, writer: int, seq: int) -> tuple[int, int, int, int, int] | None:
        """(invoke, end, outcome, first block, stop block) of a write, or None."""
        if seq < 0 or writer < 0:
            return None
        k = (writer << 40) | seq
        i = int(self.key.searchsorted(k))
        if i >= len(self.key) or int(self.key[i]) != k:
            return None
        return (int(self.invoke[i]), int(self.end[i]), int(self.outcome[i]), int(self.first[i]),
                int(self.stop[i]))

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.key, self.invoke, self.end, self.first, self.stop,
                                      self.outcome, self.op, self.invoke_at, self.complete_at))
