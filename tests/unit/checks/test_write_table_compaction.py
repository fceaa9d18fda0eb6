"""The streamed write table drops writes overwritten everywhere, so its memory follows the
device, not the run; every checker still finds what it found with every write held."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from harness.checks import stream_check
from harness.checks.stream_check import check_history_file, check_run_file
from harness.checks.write_table import WriteTable
from harness.workload import history_stream

BS = 4096


@pytest.fixture
def compact_often(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compact after every chunk, with no slack (hand-made times are a few ns apart)."""
    monkeypatch.setattr(stream_check, "COMPACT_ROWS", 1)
    monkeypatch.setattr(history_stream, "HORIZON_SLACK_NS", 0)


def kinds(verdict):
    return sorted((p.kind, p.offset) for p in verdict.problems)


def rewrites(s, rounds: int, blocks: int = 4) -> None:
    """``rounds`` rounds of one ok write per block, one after the other."""
    t = 0
    for r in range(rounds):
        for b in range(blocks):
            s.write(0, r * blocks + b, b, invoke=t, complete=t + 5)
            t += 10


def test_dead_ranges_merge_and_answer_lookups() -> None:
    from harness.checks.write_table import _Writer

    w = _Writer()
    w.cols = {k: np.arange(10, dtype=v.dtype) for k, v in w.cols.items()}
    w.n = 10
    w.drop(np.array([2, 3, 4, 7]))
    assert (w.dead_start.tolist(), w.dead_stop.tolist()) == ([2, 7], [5, 8])
    assert w.cols["seq"][:w.n].tolist() == [0, 1, 5, 6, 8, 9]
    w.drop(np.array([2, 3]))  # rows 2, 3 now hold seqs 5 and 6: the ranges join
    assert (w.dead_start.tolist(), w.dead_stop.tolist()) == ([2], [8])
    assert w.is_dead(np.array([1, 2, 5, 7, 8])).tolist() == [False, True, True, True, False]


def test_a_table_gives_back_the_room_it_grew_to() -> None:
    from harness.checks.write_table import _Writer

    w = _Writer()
    w.cols = {k: np.arange(100_000, dtype=v.dtype) for k, v in w.cols.items()}
    w.n = 100_000
    w.drop(np.arange(99_000))
    assert w.n == 1000 and len(w.cols["seq"]) == 2000  # not 100,000 rows of room
    assert w.cols["seq"][:w.n].tolist() == list(range(99_000, 100_000))


def test_memory_follows_the_device_not_the_writes(scenario, compact_often) -> None:
    rewrites(scenario, rounds=200)  # 800 writes on 4 blocks
    s = stream_history = stream_check.stream_history(scenario.path, chunk=64)
    assert s.table.writes == 800
    assert s.table.live <= 4 * 8 + 64  # about the last round and a chunk, not 800
    assert s.table.dropped >= 700
    assert stream_history.register.valid and stream_history.monotonic.valid


def test_a_read_of_a_dropped_write_is_still_a_stale_read(scenario, compact_often) -> None:
    s = scenario
    s.write(0, 0, 1, invoke=10, complete=20)
    old = bytes(s.image[BS:2 * BS])
    s.write(0, 1, 1, invoke=30, complete=40)
    for seq in range(2, 40):  # other traffic moves the stream on past both writes
        s.write(1, seq, 5, invoke=100 + 10 * seq, complete=105 + 10 * seq)
    s.read(1, invoke=1000, complete=1010, data=old)
    s.read(1, invoke=1020, complete=1030)  # the right value: fine
    got, _ = check_history_file(s.path, chunk=4)
    table = stream_check.stream_history(s.path, chunk=4).table
    assert table.is_dead(np.array([0]), np.array([0])).tolist() == [True]  # it was dropped
    assert kinds(got.verdict("register")) == [("stale_read", BS)]
    (p,) = got.verdict("register").problems
    assert "w0#0" in p.message and "overwritten" in p.message


def test_without_compaction_the_same_problems(scenario, monkeypatch) -> None:
    """The hand-made history of every register verdict gives the same problems whether
    the table compacts after every chunk or never."""
    from test_stream_check import stale_and_friends

    stale_and_friends(scenario)
    for seq in range(10, 30):  # later traffic on another block moves the horizon on
        scenario.write(2, seq, 9, invoke=1000 + 10 * seq, complete=1005 + 10 * seq)
    never, _ = check_history_file(scenario.path, chunk=3)
    monkeypatch.setattr(stream_check, "COMPACT_ROWS", 1)
    monkeypatch.setattr(history_stream, "HORIZON_SLACK_NS", 0)
    always, _ = check_history_file(scenario.path, chunk=3)
    for checker in ("register", "monotonic"):
        assert kinds(always.verdict(checker)) == kinds(never.verdict(checker)), checker
    assert kinds(never.verdict("register"))  # the history does hold problems


def test_a_dropped_write_left_on_the_device_is_stale(scenario, compact_often) -> None:
    """Integrity and divergence after the run: a block that holds a write the table
    dropped (overwritten everywhere) is stale, not a phantom."""
    s = scenario
    s.write(0, 0, 2, invoke=10, complete=20)
    old = bytes(s.image[2 * BS:3 * BS])
    s.write(0, 1, 2, invoke=30, complete=40)
    for seq in range(2, 40):
        s.write(1, seq, 6, invoke=100 + 10 * seq, complete=105 + 10 * seq)
    node1, node2 = bytearray(s.image), bytearray(s.image)
    node1[2 * BS:3 * BS] = old  # node1 went back to the overwritten write

    class Dev:
        block_size, num_blocks = 512, len(s.image) // 512

        async def read(self, lba, count):
            from harness.workload.device import Completion

            return Completion(bytes(node1[lba * 512:(lba + count) * 512]), "p")

    def reader(data):
        async def read(offset, length):
            return bytes(data[offset:offset + length])
        return read

    monkeypatch_chunk = stream_check.STREAM_CHUNK
    try:
        stream_check.STREAM_CHUNK = 4
        result, _ = asyncio.run(check_run_file(s.path, devices={"dev": Dev()},
                                               replicas={"n1": reader(node1),
                                                         "n2": reader(node2)}))
    finally:
        stream_check.STREAM_CHUNK = monkeypatch_chunk
    assert result.verdict("register").stats["writes_dropped"] > 0
    (lost,) = result.verdict("integrity").problems
    assert (lost.kind, lost.offset) == ("stale", 2 * BS)
    assert "overwrote on every block" in lost.message
    (diff,) = result.verdict("divergence").problems
    assert diff.kind == "diverged" and "n1 is missing acknowledged data" in diff.message


def test_a_table_that_holds_a_write_still_in_flight_keeps_it(scenario) -> None:
    """The horizon: a write is dropped only once every read that could still return it
    legitimately has completed (none began before the overwrite completed)."""
    s = scenario
    s.write(0, 0, 1, invoke=10, complete=20)
    s.write(0, 1, 1, invoke=30, complete=40)
    table = WriteTable(s.header.generation, s.block_size, s.lbs)
    from harness.checks.register_stream import StreamRegisterCheck
    from harness.workload.history_stream import OpStream

    reg = StreamRegisterCheck(16, BS, 512, table, s.path, "zero")
    for c in OpStream(s.path):
        table.add(c)
        reg.add(c)
    assert table.compact(reg.certainly_overwritten, horizon=35) == 0  # read from 35 on: ok
    assert table.compact(reg.certainly_overwritten, horizon=41) == 1  # w0#0 is dead
    assert table.get(0, 0) is None and table.get(0, 1) is not None


def test_zeros_where_no_write_landed_are_skipped_and_where_one_did_still_lost(scenario):
    """The integrity check's shortcut for all-zero data: taken only where no ok write
    covers the data (nothing to find there), never where a write must be visible."""
    from harness.checks.integrity import IntegrityCheck

    s = scenario
    s.write(0, 0, 3, invoke=10, complete=20, apply=False)  # acknowledged, never landed
    check = IntegrityCheck(s.load())
    zeros = bytes(16 * BS)
    assert kinds(check.verdict(check.check_buffer(0, zeros[:2 * BS], "d"))) == []
    assert kinds(check.verdict(check.check_buffer(0, zeros, "d"))) == [("lost", 3 * BS)]
    assert check.stats["d"]["bytes"] == 18 * BS  # both buffers accounted


def test_dead_ranges_join_across_read_seqs_below_the_floor_only() -> None:
    from harness.checks.write_table import _Writer

    def writer() -> _Writer:  # writes at even seqs 0..18 (odd seqs were reads)
        w = _Writer()
        w.cols = {k: (np.arange(10, dtype=v.dtype) * 2) for k, v in w.cols.items()}
        w.n = 10
        return w

    apart = writer()
    apart.drop(np.array([0, 1, 2, 5, 6]))  # seqs 0, 2, 4, 10, 12; floor unknown
    assert len(apart.dead_start) == 5  # no read seq is assumed
    joined = writer()
    joined.drop(np.array([0, 1, 2, 5, 6]), floor=11)  # a write at seq 11 still in flight
    # 0-4 join across reads 1 and 3; 6 and 8 are live, so 10 starts anew; the gap before
    # 12 (seq 11) is not below the floor: that seq may be a write still to complete
    assert list(zip(joined.dead_start.tolist(), joined.dead_stop.tolist(),
                    strict=True)) == [(0, 5), (10, 11), (12, 13)]
    assert joined.is_dead(np.array([3, 6, 11])).tolist() == [True, False, False]


def test_on_a_long_run_the_ranges_follow_the_live_writes(scenario, compact_often) -> None:
    """Reads take seqs too: without joining across them the dead ranges would grow with
    every write (one range per dropped write here)."""
    t = 0
    for r in range(200):
        for b in range(4):
            scenario.write(0, 2 * (r * 4 + b), b, invoke=t, complete=t + 5)  # odd: reads
            t += 10
    s = stream_check.stream_history(scenario.path, chunk=64)
    (tab,) = s.table._writers.values()
    assert s.table.dropped >= 700 and len(tab.dead_start) <= s.table.live + 2
