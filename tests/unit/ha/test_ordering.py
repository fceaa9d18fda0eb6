"""Range locks: overlapping ranges are granted in enqueue order, others in parallel."""

from __future__ import annotations

import asyncio
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.target.ha.ordering import RangeLocks


async def _run(ops: list[tuple[int, int]], delays: list[float]) -> list[int]:
    """Enqueue all, then let them finish in random time; return grant order."""
    locks = RangeLocks()
    granted: list[int] = []

    async def worker(i: int, lock, delay: float) -> None:
        await asyncio.sleep(delay)
        await lock.acquire()
        granted.append(i)
        await asyncio.sleep(0)
        locks.release(lock)

    queued = [locks.enqueue(lba, n) for lba, n in ops]
    pairs = enumerate(zip(queued, delays, strict=True))
    await asyncio.gather(*(worker(i, q, d) for i, (q, d) in pairs))
    assert len(locks) == 0
    return granted


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 8)), min_size=1, max_size=12),
       st.randoms(use_true_random=False))
def test_overlapping_locks_are_granted_in_enqueue_order(ops, rnd: random.Random):
    delays = [rnd.random() / 1000 for _ in ops]
    granted = asyncio.run(_run(ops, delays))
    position = {op: i for i, op in enumerate(granted)}
    for i, (a_lba, a_n) in enumerate(ops):
        for j in range(i + 1, len(ops)):
            b_lba, b_n = ops[j]
            if a_lba < b_lba + b_n and b_lba < a_lba + a_n:
                assert position[i] < position[j], (ops[i], ops[j], granted)


def test_disjoint_ranges_do_not_wait_for_each_other():
    async def scenario() -> bool:
        locks = RangeLocks()
        first = locks.enqueue(0, 8)
        second = locks.enqueue(8, 8)
        await first.acquire()
        # first is still held: second must be granted anyway
        await asyncio.wait_for(second.acquire(), timeout=1)
        locks.release(second)
        locks.release(first)
        return True

    assert asyncio.run(scenario())


def test_overlapping_range_waits_until_release():
    async def scenario() -> list[str]:
        locks = RangeLocks()
        events: list[str] = []
        first = locks.enqueue(0, 8)
        second = locks.enqueue(4, 1)
        await first.acquire()

        async def take_second() -> None:
            await second.acquire()
            events.append("second")

        task = asyncio.create_task(take_second())
        await asyncio.sleep(0.01)
        events.append("release first")
        locks.release(first)
        await task
        return events

    assert asyncio.run(scenario()) == ["release first", "second"]
