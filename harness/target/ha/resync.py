"""Resynchronization of a returning replica, with client I/O going on.

The source walks a snapshot of its dirty map (every region for a full resync).
Each region is copied like a write: its range lock is enqueued and its
sequence number taken in one step, the region is read once the lock is
granted, and the copy travels as an ORDER of kind RESYNC. Writes that arrive
meanwhile are sequenced and mirrored as usual, so a copy can never overwrite a
newer write on the target (docs/ha.md). A region's dirty bit is cleared only
when the target acknowledged its copy; if the link fails first, the region
stays dirty and the next resync copies it again.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from harness.target.ha.protocol import Message, MessageKind, OrderKind
from harness.target.ha.replica import ResyncMode

if TYPE_CHECKING:
    from harness.target.ha.mirror import HaDevice

#: regions in flight at once (each up to region_bytes)
WINDOW = 8


class Resync:
    def __init__(self, device: HaDevice, mode: ResyncMode, *, receiving: bool = False) -> None:
        self.device = device
        self.mode = mode
        self.receiving = receiving
        self.total = len(device.dirty) if not receiving else 0
        self.copied = 0
        self.started_ns = time.monotonic_ns()
        self._aborted = False

    def abort(self) -> None:
        self._aborted = True

    def progress(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "role": "target" if self.receiving else "source",
            "regions_total": self.total,
            "regions_copied": self.copied,
            "percent": round(100 * self.copied / self.total, 1) if self.total else None,
            "elapsed_s": round((time.monotonic_ns() - self.started_ns) / 1e9, 3),
        }

    async def run(self) -> None:
        dev = self.device
        if dev.pr_snapshot is not None:  # reservations travel first, in sequence
            await dev.replicate(dev.pr_snapshot())
        window = asyncio.Semaphore(WINDOW)
        copies = []
        for region in dev.dirty.dirty_regions():
            if self._aborted:
                return
            await window.acquire()
            copies.append(asyncio.ensure_future(self._copy(region, window)))
        results = await asyncio.gather(*copies, return_exceptions=True)
        if self._aborted or any(isinstance(r, BaseException) for r in results):
            return
        dev.resync_finished()

    async def _copy(self, region: int, window: asyncio.Semaphore) -> None:
        dev = self.device
        try:
            link = dev.sync.link
            if link is None or link.lost.is_set() or self._aborted:
                raise ConnectionError("sync link lost during resync")
            lba, count = dev.dirty.region_extent(region)
            lock = dev.locks.enqueue(lba, count)
            dev._seq += 1
            seq = dev._seq
            dev._unacked[seq] = (lba, count)
            ack = dev._acks[seq] = asyncio.get_running_loop().create_future()
            with dev.locks.holding(lock):
                await lock.acquire()
                data = await dev.store.read(lba, count)
                link.send(Message(MessageKind.ORDER, seq=seq, lba=lba, payload=data,
                                  flags=OrderKind.RESYNC))
            await link.drain()
            await dev._await_ack(seq, ack)
            if not self._aborted:
                dev.dirty.clear(region)
                self.copied += 1
        finally:
            window.release()
