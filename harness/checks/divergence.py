"""Replica divergence and split brain: do the replicas of an HA device hold the same data?

The model: replicas of a synchronously mirrored device must be byte-identical
once resync has finished. Each replica is read on its own (through its own
paths, or its image file directly in the lab) and compared block by block.
Where two replicas differ, the history says what each holds:

- replica X is *ahead* on a block when it holds an acknowledged (``ok``) write
  that the other replica lacks, i.e. the other holds something that is not
  certainly newer (initial content, an older write, a concurrent write);
- if each replica is ahead somewhere (on the same block, or one on some blocks
  and the other on others), both acknowledged writes the other never saw: that
  is a **split brain**, and every differing block is reported as
  ``split_brain`` with the words "split brain";
- otherwise one replica merely misses writes (or holds unacknowledged ones):
  the blocks are reported as ``diverged`` ("replicas diverged").

Without a history nothing is known about acknowledgements and every difference
is ``diverged``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.checks.model import WriteIndex
from harness.checks.verdict import Problem, Verdict
from harness.workload.device import BlockDevice
from harness.workload.errors import DeviceError
from harness.workload.history import RecordedHistory
from harness.workload.history_stream import HistoryOutline
from harness.workload.stamp import BlockKind, classify_blocks, scan_sectors

CHUNK = 4 << 20
INITIAL = -1
BAD = -2
DEAD = -3  # a write the streamed table dropped: overwritten on every block it wrote

ChunkReader = Callable[[int, int], Awaitable[bytes]]


def device_reader(dev: BlockDevice) -> ChunkReader:
    async def read(offset: int, length: int) -> bytes:
        lbs = dev.block_size
        return (await dev.read(offset // lbs, length // lbs)).data

    return read


def image_reader(path: str | os.PathLike[str]) -> ChunkReader:
    """Reads an image file read-only (a running target may still have it open)."""
    fd_box: list[int] = []

    async def read(offset: int, length: int) -> bytes:
        if not fd_box:
            try:
                fd_box.append(os.open(path, os.O_RDONLY))
            except OSError as exc:
                raise DeviceError(f"cannot open replica image {path}: {exc.strerror}") from exc
        data = await asyncio.to_thread(os.pread, fd_box[0], length, offset)
        if len(data) < length:  # sparse image shorter than the device: the rest reads zero
            data += bytes(length - len(data))
        return data

    read.close = lambda: [os.close(fd) for fd in fd_box]  # type: ignore[attr-defined]
    return read


@dataclass(slots=True)
class _Diff:
    a: str
    b: str
    first: int
    last: int
    va: int
    vb: int
    ahead_a: bool
    ahead_b: bool


@dataclass(slots=True)
class _Pair:
    a: str
    b: str
    diffs: list[_Diff] = field(default_factory=list)
    ahead_a: bool = False
    ahead_b: bool = False


class DivergenceCheck:
    """Compares replicas chunk by chunk; judges differences with the history if given."""

    def __init__(self, size: int, block_size: int,
                 history: RecordedHistory | HistoryOutline | None = None,
                 index: WriteIndex | None = None):
        self.size = size
        self.block_size = block_size
        self.history = history
        if index is None and isinstance(history, RecordedHistory):
            index = WriteIndex(history)
        self.index = index
        self.generation = history.header.generation if history is not None else None

    def _values(self, data: bytes, offset: int) -> np.ndarray:
        blocks = classify_blocks(scan_sectors(data, offset), self.block_size)
        values = np.full(len(blocks), BAD, dtype=np.int64)
        values[blocks.kind == BlockKind.NEVER_WRITTEN] = INITIAL
        if self.index is not None:
            intact = blocks.kind == BlockKind.INTACT
            ours = intact & (blocks.generation == self.generation)
            found = self.index.lookup(blocks.writer.astype(np.int64),
                                      blocks.seq.astype(np.int64))
            values[ours & (found >= 0)] = found[ours & (found >= 0)]
            lost = ours & (found < 0)
            if lost.any():  # dropped by the streamed table: overwritten everywhere
                lost[lost] = self.index.is_dead(blocks.writer[lost].astype(np.int64),
                                                blocks.seq[lost].astype(np.int64))
                values[lost] = DEAD
            values[intact & ~ours] = INITIAL
        return values

    def _newer(self, x: int, y: int) -> bool:
        """x certainly replaced y on a block (x is a write invoked after y completed)."""
        assert self.index is not None
        if x < 0:
            return False
        if y == INITIAL:
            return True
        if y < 0:
            return False
        return bool(self.index.invoke[x] > self.index.end[y])

    def _ok(self, x: int) -> bool:
        return x >= 0 and self.index is not None and self.index.outcome[x] == 0

    def compare_chunk(self, pair: _Pair, offset: int, da: bytes, db: bytes) -> None:
        if da == db:
            return
        bs = self.block_size
        a = np.frombuffer(da, dtype=np.uint8).reshape(-1, bs)
        b = np.frombuffer(db, dtype=np.uint8).reshape(-1, bs)
        differ = np.flatnonzero((a != b).any(axis=1))
        va_all = self._values(da, offset)
        vb_all = self._values(db, offset)
        first_block = offset // bs
        for rel in differ.tolist():
            blk = first_block + rel
            va, vb = int(va_all[rel]), int(vb_all[rel])
            ahead_a = self._ok(va) and not self._newer(vb, va)
            ahead_b = self._ok(vb) and not self._newer(va, vb)
            pair.ahead_a |= ahead_a
            pair.ahead_b |= ahead_b
            last = pair.diffs[-1] if pair.diffs else None
            if (last is not None and last.last == blk - 1 and (last.va, last.vb) == (va, vb)
                    and (last.ahead_a, last.ahead_b) == (ahead_a, ahead_b)):
                last.last = blk
            else:
                pair.diffs.append(_Diff(pair.a, pair.b, blk, blk, va, vb, ahead_a, ahead_b))

    def _name(self, v: int) -> str:
        if v == INITIAL:
            return "initial content"
        if v == DEAD:
            return "a write that later ok writes overwrote on every block"
        if v == BAD or self.index is None:
            return "data that is not one intact write"
        return self.index.describe(v)

    def problems(self, pair: _Pair) -> list[Problem]:
        split = pair.ahead_a and pair.ahead_b
        out: list[Problem] = []
        bs = self.block_size
        for d in pair.diffs:
            records: list[dict[str, Any]] = []
            for v in (d.va, d.vb):
                if v >= 0 and self.index is not None:
                    records.extend(self.index.records(v))
            n = d.last - d.first + 1
            where = f"{n} block{'s' if n > 1 else ''} at byte {d.first * bs}"
            held = (f"{d.a} holds {self._name(d.va)}, {d.b} holds {self._name(d.vb)}")
            if split:
                kind = "split_brain"
                message = (f"split brain: {where}: {held}; each replica acknowledged writes "
                           "the other never saw")
            else:
                kind = "diverged"
                behind = d.b if d.ahead_a else d.a if d.ahead_b else None
                tail = f"; {behind} is missing acknowledged data" if behind else ""
                message = f"replicas diverged: {where}: {held}{tail}"
            out.append(Problem(kind, message, d.first * bs, n * bs, f"{d.a}|{d.b}", records,
                               {"replicas": [d.a, d.b], "values": [self._name(d.va),
                                                                   self._name(d.vb)]}))
        return out


async def compare_replicas(replicas: dict[str, ChunkReader], size: int, block_size: int,
                           history: RecordedHistory | HistoryOutline | None = None,
                           *, chunk: int = CHUNK, index: WriteIndex | None = None,
                           each: Callable[[str, int, bytes], None] | None = None) -> Verdict:
    """Compare every pair of replicas over ``size`` bytes (a streamed history: pass its
    ``index``). ``each(name, offset, data)`` sees every chunk read (one pass over the
    replicas also checks each on its own, e.g. its integrity)."""
    if len(replicas) < 2:
        raise DeviceError("comparing replicas needs at least two; pass every replica")
    size = size // block_size * block_size  # a tail smaller than a block is never written
    check = DivergenceCheck(size, block_size, history, index)
    names = list(replicas)
    pairs = {(a, b): _Pair(a, b) for a, b in itertools.combinations(names, 2)}
    chunk = max(block_size, chunk // block_size * block_size)
    differing_bytes = 0
    for off in range(0, size, chunk):
        n = min(chunk, size - off)
        datas = await asyncio.gather(*(replicas[name](off, n) for name in names))
        by_name = dict(zip(names, datas, strict=True))
        if each is not None:
            for name in names:
                each(name, off, by_name[name])
        for (a, b), pair in pairs.items():
            check.compare_chunk(pair, off, by_name[a], by_name[b])
    for reader in replicas.values():
        close = getattr(reader, "close", None)
        if close is not None:
            close()
    problems: list[Problem] = []
    for pair in pairs.values():
        problems.extend(check.problems(pair))
        differing_bytes += sum((d.last - d.first + 1) * block_size for d in pair.diffs)
    split = any(p.ahead_a and p.ahead_b for p in pairs.values())
    return Verdict("divergence", problems, {"replicas": names, "bytes": size,
                                            "differing_bytes": differing_bytes,
                                            "split_brain": split})
