"""The stall watch: a node knows when its own event loop did not run (frozen, paused,
starved), so silence it heard meanwhile is not taken for its partner's."""

from __future__ import annotations

import asyncio
import time

from harness.target.ha.channel import StallWatch


def test_a_blocked_loop_is_a_stall_even_before_the_watch_ticks_again():
    async def scenario() -> tuple[float, float, float]:
        watch = StallWatch.of_running_loop()
        await asyncio.sleep(0.1)
        before = time.monotonic_ns()
        assert watch.longest_since(before) == 0.0  # ticking along: no stall
        time.sleep(0.4)  # the loop does not run (as under SIGSTOP)
        ongoing = watch.longest_since(before)  # the ticker has not run since
        await asyncio.sleep(0.1)
        return ongoing, watch.longest_since(before), watch.longest_since(time.monotonic_ns())
    ongoing, recorded, later = asyncio.run(scenario())
    assert ongoing >= 0.35 and recorded >= 0.35
    assert later == 0.0  # a stall that ended before the time asked about does not count


def test_one_watch_per_loop():
    async def scenario() -> bool:
        return StallWatch.of_running_loop() is StallWatch.of_running_loop()
    assert asyncio.run(scenario())


def test_the_last_long_stall_is_remembered_past_shorter_ones():
    async def scenario() -> tuple[int | None, int | None, int]:
        watch = StallWatch.of_running_loop()
        await asyncio.sleep(0.05)
        none_yet = watch.last_end(0.2)
        time.sleep(0.3)
        await asyncio.sleep(0.05)
        ended = time.monotonic_ns()
        time.sleep(0.1)  # a shorter one after it
        await asyncio.sleep(0.05)
        return none_yet, watch.last_end(0.2), ended
    none_yet, last, ended = asyncio.run(scenario())
    assert none_yet is None
    assert last is not None and last <= ended
