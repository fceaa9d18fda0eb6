"""The activity log: regions are persisted before a write leaves, read back after a
crash, emptied by a clean shutdown, and a steady workload persists nothing."""

from __future__ import annotations

from harness.target.ha.activity_log import ActivityLog


def log(tmp_path, capacity: int = 4) -> ActivityLog:
    return ActivityLog(tmp_path / "HA1.al", blocks_per_region=128, num_blocks=128 * 16,
                       capacity=capacity)


def test_a_crash_leaves_the_active_regions_suspect(tmp_path):
    al = log(tmp_path)
    al.begin(130, 200)  # regions 1..2
    al.begin(0, 1)  # region 0
    after_crash = log(tmp_path)
    assert after_crash.recover() == {0, 1, 2}
    assert after_crash.extents() == [(0, 128), (128, 128), (256, 128)]
    after_crash.forget_suspects()
    assert log(tmp_path).recover() == set()


def test_hot_regions_persist_once_and_idle_ones_leave_beyond_capacity(tmp_path):
    al = log(tmp_path, capacity=2)
    for _ in range(100):
        al.end(al.begin(5, 1))
    assert al.persists == 1  # only when region 0 became active
    busy = al.begin(128 * 3, 1)  # region 3, still in flight
    al.end(al.begin(128 * 5, 1))
    al.end(al.begin(128 * 7, 1))
    assert 3 in log(tmp_path).recover()  # a region with a write in flight never leaves
    al.end(busy)


def test_clean_shutdown_empties_it_and_an_unreadable_log_suspects_everything(tmp_path):
    al = log(tmp_path)
    al.begin(0, 1)
    al.clear()
    assert log(tmp_path).recover() == set()
    (tmp_path / "HA1.al").write_text("{torn")
    assert log(tmp_path).recover() == set(range(16))


def test_a_stopped_sequencers_unacknowledged_write_is_suspect_until_a_resync(tmp_path):
    al = log(tmp_path, capacity=1)
    al.recover()
    al.end(al.begin(128 * 5, 1))  # acknowledged by the partner: nothing special
    assert al.extents() == []
    al.mark_suspect(128 * 5, 1)  # never acknowledged: the partner may lack it
    assert al.extents() == [(128 * 5, 128)]
    al.end(al.begin(128 * 7, 1))  # capacity 1: an idle suspect region never leaves
    assert log(tmp_path).recover() == {5, 7}  # and a crash before the resync names it
    al.clear()  # a clean shutdown before the resync: still suspect after the restart
    assert log(tmp_path).recover() == {5}
    al.forget_suspects()
    assert al.extents() == []
