"""Read monotonicity: hand-made histories where reads go back, and where they may not."""

from __future__ import annotations

from harness.checks.monotonic import check_read_monotonicity
from harness.checks.register import check_reads

BS = 4096


def value(s, writer, seq):
    return s.stamps[(writer, seq)]


def concurrent_writes(s):
    """w0#0 [10, 30] and w1#0 [20, 40] overlap: either order is allowed, once."""
    s.write(0, 0, 2, invoke=10, complete=30)
    s.write(1, 0, 2, invoke=20, complete=40)


def kinds(s):
    return [(p.kind, p.offset) for p in check_read_monotonicity(s.path).problems]


def test_two_initiators_reading_concurrent_writes_in_both_orders(scenario):
    s = scenario
    concurrent_writes(s)
    s.read(2, invoke=50, complete=60, path="Demo1->iscsi1/Store1", data=value(s, 1, 0))
    s.read(2, invoke=70, complete=80, path="Demo2->iscsi1/Store2", data=value(s, 0, 0))
    verdict = check_read_monotonicity(s.path)
    (p,) = verdict.problems
    assert (p.kind, p.offset, p.device) == ("nonmonotonic_read", 2 * BS, "Demo2->iscsi1/Store2")
    assert "returned write w0#0 after an earlier read had returned write w1#0" in p.message
    assert [r["type"] for r in p.records] == ["ok", "invoke", "ok"]
    assert verdict.stats["violations"] == 1
    # per-read register semantics cannot see it: each read alone is a legal value
    assert check_reads(s.load()).valid


def test_reads_that_overlap_are_not_ordered(scenario):
    s = scenario
    concurrent_writes(s)
    s.read(2, invoke=50, complete=60, data=value(s, 1, 0))
    s.read(2, invoke=55, complete=65, data=value(s, 0, 0))
    assert kinds(s) == []


def test_going_back_is_allowed_until_the_newer_write_is_acknowledged(scenario):
    s = scenario
    s.write(0, 0, 3, invoke=10, complete=20)
    s.write(1, 0, 3, invoke=30, complete=100)  # in flight until 100
    s.read(3, invoke=40, complete=50, data=value(s, 1, 0))  # sees the write in flight
    s.read(3, invoke=60, complete=70, data=value(s, 0, 0))  # not acknowledged yet: allowed
    assert kinds(s) == []
    s.read(3, invoke=110, complete=120, data=value(s, 0, 0))  # acknowledged: not any more
    assert kinds(s) == [("nonmonotonic_read", 3 * BS)]


def test_a_stale_earlier_read_does_not_blame_the_correct_later_one(scenario):
    s = scenario
    s.write(0, 0, 4, invoke=10, complete=20)
    s.write(0, 1, 4, invoke=30, complete=40)
    s.read(4, invoke=50, complete=60, data=value(s, 0, 0))  # stale: register reports it
    s.read(4, invoke=70, complete=80, data=value(s, 0, 1))
    assert kinds(s) == []
    assert [p.kind for p in check_reads(s.load()).problems] == ["stale_read"]


def test_ordinary_overwrites_read_in_order_are_clean(scenario):
    s = scenario
    for seq in range(5):
        t = 100 * seq
        s.write(0, seq, 5, invoke=t + 10, complete=t + 20)
        s.read(5, invoke=t + 30, complete=t + 40, path=f"p{seq % 2}")
        s.read(5, invoke=t + 50, complete=t + 60, path=f"p{(seq + 1) % 2}")
    verdict = check_read_monotonicity(s.path)
    assert verdict.valid and verdict.stats == {"reads": 10, "blocks": 10, "violations": 0}


def test_initial_content_after_an_acknowledged_value_was_read(scenario):
    s = scenario
    s.write(0, 0, 6, invoke=10, complete=20)
    s.read(6, invoke=30, complete=40)
    s.read(6, invoke=50, complete=60, data=bytes(BS))
    assert kinds(s) == [("nonmonotonic_read", 6 * BS)]


def test_multi_block_reads_are_judged_block_by_block(scenario):
    s = scenario
    s.write(0, 0, 8, 2, invoke=10, complete=30)
    s.write(1, 0, 9, invoke=20, complete=40)
    both = bytes(s.image[8 * BS:10 * BS])  # block 8 from w0#0, block 9 from w1#0
    s.read(8, 2, invoke=50, complete=60, data=both)
    s.read(8, 2, invoke=70, complete=80, data=value(s, 0, 0))  # block 9 went back to w0#0
    assert kinds(s) == [("nonmonotonic_read", 9 * BS)]
