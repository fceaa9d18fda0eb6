"""Tampering with a device image behind the workload's back, for the integration tests:
pick written blocks from the history and delete, revert, corrupt, misplace or tear them,
returning exactly the problems the integrity checker must report."""

from __future__ import annotations

import os
from pathlib import Path

from harness.workload.history import Operation, RecordedHistory
from harness.workload.stamp import WriteId, encode_write


def writes_by_block(history: RecordedHistory) -> dict[int, list[Operation]]:
    """Checker block -> the writes covering it, in completion order."""
    h = history.header
    out: dict[int, list[Operation]] = {}
    for w in sorted(history.writes, key=lambda o: o.complete_ns or 0):
        first = w.lba * h.logical_block_size // h.block_size
        last = (w.lba + w.count) * h.logical_block_size // h.block_size
        for b in range(first, last):
            out.setdefault(b, []).append(w)
    return out


def block_bytes(history: RecordedHistory, w: Operation, block: int) -> bytes:
    """What write ``w`` put in ``block``, regenerated from the history alone."""
    h = history.header
    off = w.lba * h.logical_block_size
    data = encode_write(off, w.count * h.logical_block_size,
                        WriteId(h.generation, w.writer, w.seq), seed=h.seed,
                        timestamp=w.invoke_ns)
    rel = block * h.block_size - off
    return data[rel:rel + h.block_size]


def tamper(image: Path, history: RecordedHistory) -> dict[str, int]:
    """Damage five blocks of ``image``; returns kind -> block that must be reported.

    Needs a history where each block's writes are not concurrent (queue depth 1,
    private regions), so the last write of a block is the one it must hold.
    """
    bs = history.header.block_size
    writes = writes_by_block(history)
    once = sorted(b for b, ws in writes.items() if len(ws) == 1)
    twice = sorted(b for b, ws in writes.items() if len(ws) >= 2)
    chosen = {"lost": once[3], "corrupt": once[len(once) // 5],
              "misplaced": once[2 * len(once) // 5], "torn": once[3 * len(once) // 5],
              "stale": twice[len(twice) // 2]}
    source = once[4 * len(once) // 5]
    fd = os.open(image, os.O_RDWR)
    try:
        def get(block: int) -> bytes:
            return os.pread(fd, bs, block * bs)

        def put(block: int, data: bytes) -> None:
            assert os.pwrite(fd, data, block * bs) == bs

        assert get(chosen["stale"]) == block_bytes(history, writes[chosen["stale"]][-1],
                                                   chosen["stale"])
        put(chosen["lost"], bytes(bs))
        put(chosen["stale"], block_bytes(history, writes[chosen["stale"]][-2], chosen["stale"]))
        bad = bytearray(get(chosen["corrupt"]))
        bad[777] ^= 0x10
        put(chosen["corrupt"], bytes(bad))
        put(chosen["misplaced"], get(source))
        half = bytearray(get(chosen["torn"]))
        half[bs // 2:] = bytes(bs // 2)
        put(chosen["torn"], bytes(half))
        os.fsync(fd)
    finally:
        os.close(fd)
    return chosen
