"""Split-brain attribution counts writes from when a fault took effect, not from its start
record: on a real host the injection (ssh, dead-man timer, nft) takes seconds, and the
replicas are still mirroring meanwhile."""

from __future__ import annotations

from pathlib import Path

from harness.chaos.verdict import acknowledged_alone, split_window
from harness.lab.inventory import loads
from harness.workload.history import History, HistoryHeader, load_history
from tests.unit.lab.test_inventory import BASE

S = 1_000_000_000


def history(tmp_path: Path, *, applied_s: float | None) -> object:
    h = History(tmp_path / "h.jsonl", HistoryHeader(1, 1, 4096, 512, 2048, "d"))
    h.fault_start("blackhole sync/Store1/HA1 [0]", time_ns=0, action="blackhole",
                  target="sync/Store1/HA1")
    for i, host in enumerate(["Store1", "Store2"] * 4):  # writes at 2.5..6 s on both paths
        t = int((2.5 + i * 0.5) * S)
        op = h.invoke(0, "write", 8 * i, 8, writer=0, seq=i, time_ns=t)
        h.complete(op, "ok", invoke_ns=t, path=f"Node1->iscsi/{host}", time_ns=t + 1000)
    extra = {} if applied_s is None else {"applied_ns": int(applied_s * S),
                                          "healing_ns": 10 * S}
    h.fault_stop("blackhole sync/Store1/HA1 [0]", time_ns=11 * S, **extra)
    h.close()
    return load_history(tmp_path / "h.jsonl")


def test_writes_before_the_fault_took_effect_are_not_acknowledged_alone(tmp_path):
    device = loads(BASE).device("HA1")
    # recorded without applied_ns (the lab): the start record counts, both sides "alone"
    assert acknowledged_alone(history(tmp_path, applied_s=None), device) == [{
        "Store1": 4, "Store2": 4}]
    # the injection returned at 6.5 s: every write came before it settled, none alone
    assert acknowledged_alone(history(tmp_path, applied_s=6.5), device) == [{
        "Store1": 0, "Store2": 0}]


def two_windows(tmp_path: Path, *, overlapping: bool) -> object:
    """Two black holes of the sync link; Store1 acknowledges alone in the first and
    Store2 in the second (a nightly: the first window's stopped side survives the next)."""
    h = History(tmp_path / "h.jsonl", HistoryHeader(1, 1, 4096, 512, 2048, "d"))
    second = 5 if overlapping else 20
    h.fault_start("blackhole sync/Store1/HA1 [0]", time_ns=0, action="blackhole",
                  target="sync/Store1/HA1")
    h.fault_start("blackhole sync/Store1/HA1 [1]", time_ns=second * S, action="blackhole",
                  target="sync/Store1/HA1")
    for i, (t_s, host) in enumerate([(3, "Store1"), (second + 3, "Store2")]):
        t = t_s * S
        op = h.invoke(0, "write", 8 * i, 8, writer=0, seq=i, time_ns=t)
        h.complete(op, "ok", invoke_ns=t, path=f"Node1->iscsi/{host}", time_ns=t + 1000)
    h.fault_stop("blackhole sync/Store1/HA1 [0]", time_ns=10 * S)
    h.fault_stop("blackhole sync/Store1/HA1 [1]", time_ns=(second + 10) * S)
    h.close()
    return load_history(tmp_path / "h.jsonl")


def test_each_sync_loss_window_is_judged_on_its_own(tmp_path):
    """Nightly seed 42 was called a split brain because Store1's writes alone in some
    windows were added to Store2's in others; each window had one survivor."""
    device = loads(BASE).device("HA1")
    alone = acknowledged_alone(two_windows(tmp_path, overlapping=False), device)
    assert alone == [{"Store1": 1, "Store2": 0}, {"Store1": 0, "Store2": 1}]
    assert split_window(alone) is None


def test_overlapping_sync_faults_are_one_window(tmp_path):
    device = loads(BASE).device("HA1")
    alone = acknowledged_alone(two_windows(tmp_path, overlapping=True), device)
    assert alone == [{"Store1": 1, "Store2": 1}]
    assert split_window(alone) == {"Store1": 1, "Store2": 1}
