"""A VM's memory: pages the guest keeps dirtying, and the dirty log migration reads.

The model is the hypervisor's dirty-page tracking: ``pages`` pages of
``page_size`` bytes; the guest writes ``dirty_rate`` pages a second (each write
stamps the page with a running counter, so its content really changes), and
every write sets the page's bit in the dirty log. Live migration takes the log
(``take_dirty``: the set pages, cleared atomically with respect to the guest,
which runs on the same event loop) and copies those pages; a page written after
it was copied is in the next take. ``digest`` is what both ends compare after
the last copy: the destination's memory must equal the source's at the pause.
"""

from __future__ import annotations

import asyncio
import random
import struct

import crc32c
import numpy as np

from harness.cluster.errors import ClusterConfigError

TICK_S = 0.01


class GuestMemory:
    """``pages`` x ``page_size`` bytes with a dirty log, and the guest that dirties them."""

    def __init__(self, size: int, *, page_size: int = 4096, dirty_rate: float = 0.0,
                 seed: int = 0) -> None:
        if size <= 0 or page_size <= 0 or size % page_size:
            raise ClusterConfigError(
                f"VM memory of {size} bytes is not a positive multiple of its {page_size}-byte "
                "pages; give the memory in MiB")
        if dirty_rate < 0:
            raise ClusterConfigError(f"dirty rate {dirty_rate} pages/s is negative")
        self.page_size = page_size
        self.pages = size // page_size
        self.data = bytearray(size)
        self.dirty = np.zeros(self.pages, dtype=bool)
        self.dirty_rate = dirty_rate
        self.counter = 0
        self._rng = random.Random(seed)
        self._task: asyncio.Task[None] | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def touch(self, page: int) -> None:
        """The guest writes one page (its counter at the page's start)."""
        self.counter += 1
        off = page * self.page_size
        struct.pack_into("<QQ", self.data, off, self.counter, page)
        self.dirty[page] = True

    def take_dirty(self) -> np.ndarray:
        """The dirty pages' numbers, and the log cleared."""
        pages = np.flatnonzero(self.dirty)
        self.dirty[pages] = False
        return pages

    def mark_all_dirty(self) -> None:
        self.dirty[:] = True

    def page(self, n: int) -> bytes:
        off = n * self.page_size
        return bytes(self.data[off:off + self.page_size])

    def load(self, n: int, data: bytes) -> None:
        off = n * self.page_size
        self.data[off:off + self.page_size] = data

    def digest(self) -> str:
        """CRC32C of the whole memory (hardware-accelerated: it is taken inside the blackout)."""
        return f"{crc32c.crc32c(self.data):08x}"

    # -- the guest -------------------------------------------------------------

    def run_guest(self) -> None:
        if self._task is None and self.dirty_rate > 0:
            self._task = asyncio.create_task(self._dirty_pages())

    async def pause_guest(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _dirty_pages(self) -> None:
        owed = 0.0
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(TICK_S)
            now = loop.time()
            owed += (now - last) * self.dirty_rate
            last = now
            for _ in range(int(owed)):
                self.touch(self._rng.randrange(self.pages))
            owed -= int(owed)
