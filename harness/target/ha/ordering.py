"""Range locks granted in the order they were requested.

The model: every I/O on a replica *enqueues* a lock on its LBA range at the
moment its place in the order is decided (the sequencer assigns a sequence
number; a partner reads the next ORDER off the FIFO sync stream), and later
*waits* for it. A lock is granted once every earlier lock that overlaps it has
been released. Non-overlapping ranges never wait for each other, and
overlapping ones are granted strictly in enqueue order, which is what makes
every replica apply overlapping writes in the same order (docs/ha.md).

``enqueue`` is synchronous on purpose: callers do it in the same step as the
decision it orders, with no ``await`` in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class RangeLock:
    """One enqueued lock on blocks ``[start, end)``."""

    __slots__ = ("_released", "_waits_for", "end", "start")

    def __init__(self, start: int, end: int, waits_for: list[RangeLock]) -> None:
        self.start = start
        self.end = end
        self._waits_for = waits_for
        self._released = asyncio.Event()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    async def acquire(self) -> None:
        """Wait until every earlier overlapping lock is released."""
        for earlier in self._waits_for:
            await earlier._released.wait()
        self._waits_for = []


class RangeLocks:
    """The lock queue of one replica of one device."""

    def __init__(self) -> None:
        self._held: list[RangeLock] = []

    def __len__(self) -> int:
        return len(self._held)

    def enqueue(self, lba: int, count: int) -> RangeLock:
        """Take a place in the order for ``count`` blocks at ``lba``."""
        start, end = lba, lba + max(count, 1)
        waits_for = [h for h in self._held if h.start < end and start < h.end]
        lock = RangeLock(start, end, waits_for)
        self._held.append(lock)
        return lock

    def release(self, lock: RangeLock) -> None:
        if lock.released:
            return
        lock._released.set()
        self._held.remove(lock)

    @contextmanager
    def holding(self, lock: RangeLock) -> Iterator[RangeLock]:
        """Release ``lock`` on exit, whatever happens inside."""
        try:
            yield lock
        finally:
            self.release(lock)

    def pending(self) -> list[tuple[int, int]]:
        """Ranges enqueued and not yet released, in order."""
        return [(h.start, h.end - h.start) for h in self._held]
