"""A VM's history segments joined, and the hand-over check that can fail."""

from __future__ import annotations

from pathlib import Path

from harness.cluster.budgets import judge_migrations, nearest_rank
from harness.cluster.guest import SEGMENT_SHIFT, open_segment
from harness.cluster.history import check_handover, load_vm_history
from harness.cluster.migration import MigrationReport
from harness.workload.history import HistoryHeader

HEADER = HistoryHeader(seed=1, generation=7, block_size=4096, logical_block_size=512,
                       num_blocks=2048, device="vm:x", initial="zero")


def write(h, t: int, seq: int, *, complete: bool = True) -> None:
    op = h.invoke(0, "write", 8, 8, writer=0, seq=seq, time_ns=t)
    if complete:
        h.complete(op, "ok", invoke_ns=t, time_ns=t + 1)


def test_segments_join_into_one_run_with_unique_ids(tmp_path: Path) -> None:
    a, n0 = open_segment(tmp_path, HEADER, "Demo1")
    write(a, 10, 0)
    a.close()
    b, n1 = open_segment(tmp_path, HEADER, "Demo2")
    write(b, 20, 1 << SEGMENT_SHIFT)
    b.close()
    assert (n0, n1) == (0, 1)
    joined = load_vm_history(tmp_path)
    assert [o.op for o in joined.ops] == [0, 1]
    assert len({o.process for o in joined.ops}) == 2
    assert check_handover(joined, handed_over={0}, errors_allowed=False).valid


def test_a_replayed_write_and_io_left_in_flight_are_caught(tmp_path: Path) -> None:
    a, _ = open_segment(tmp_path, HEADER, "Demo1")
    write(a, 10, 0)
    write(a, 11, 1, complete=False)  # still in flight when the VM was handed over
    a.close()
    b, _ = open_segment(tmp_path, HEADER, "Demo2")
    write(b, 20, 0)  # the same write id again on the destination
    b.close()
    verdict = check_handover(load_vm_history(tmp_path), handed_over={0}, errors_allowed=False)
    assert verdict.counts() == {"duplicate": 1, "in-flight": 1, "error": 1}


def test_budgets_judge_the_blackout_p99_and_can_fail() -> None:
    reports = [MigrationReport("vm", "live", "a", "b", 0, 1, 1 + int(ms * 1e6), int(2e9))
               for ms in range(10, 210, 10)]
    assert nearest_rank([r.blackout_s for r in reports], 0.99) == 0.2
    ok = judge_migrations(reports, {"live_migration_blackout_s": 0.5, "live_migration_s": 30})
    assert ok.valid and ok.stats["blackout_p99_s"] == 0.2
    bad = judge_migrations(reports, {"live_migration_blackout_s": 0.1, "live_migration_s": 1})
    assert bad.counts() == {"over_budget": 21}
    assert "nothing" in judge_migrations(reports, {}).stats["judged"]
