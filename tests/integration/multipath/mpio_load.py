"""A closed-loop writer load for the multipath integration tests.

``depth`` writers, each on its own LBAs (so acknowledged data per LBA is exact),
record every completion (monotonic ns, path, LBA) and keep the data of every
acknowledged write; an error ends that writer and is kept for the test to assert on.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from harness.initiator.mpio.device import MultipathDevice


class Writers:
    def __init__(self, dev: MultipathDevice, depth: int = 4, span: int = 1024) -> None:
        self.dev, self.depth, self.span = dev, depth, span
        self.completions: list[tuple[int, str, int]] = []
        self.acked: dict[int, bytes] = {}
        self.errors: list[BaseException] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _one(self, worker: int) -> None:
        lba = worker
        while not self._stop.is_set():
            data = os.urandom(self.dev.block_size)
            try:
                c = await self.dev.write(lba, data)
            except Exception as exc:  # the tests assert there are none
                self.errors.append(exc)
                return
            self.acked[lba] = data
            self.completions.append((time.monotonic_ns(), c.path, lba))
            lba = (lba + self.depth) % self.span

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._one(w)) for w in range(self.depth)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def paths_after(self, ns: int) -> Counter[str]:
        return Counter(p for t, p, _ in self.completions if t > ns)


async def writing(dev: MultipathDevice, paths: int) -> Writers:
    """``Writers`` started on ``dev``, once their writes came back through ``paths`` paths."""
    writers = Writers(dev)
    writers.start()
    await eventually(lambda: holds(len(writers.paths_after(0)) == paths))
    return writers


async def eventually(check, timeout_s: float = 15.0) -> None:
    """Wait until ``check()`` stops raising AssertionError, with a deadline."""
    async for attempt in AsyncRetrying(stop=stop_after_delay(timeout_s), wait=wait_fixed(0.02),
                                       retry=retry_if_exception_type(AssertionError),
                                       reraise=True):
        with attempt:
            check()


def run(coro, timeout_s: float = 90.0):
    """Run one test body on a fresh loop with an overall deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def holds(condition: bool) -> None:
    assert condition
