"""The evidence phase answers each fault's window from one index of the operations, with
the same answers as a pass over every operation; a slowed link is judged by the latency
its operations saw first, and by what the proxy held back only when they show nothing."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from harness.chaos.evidence import FaultEvidence, judge
from harness.faults.nemesis import FaultSpec, Step
from harness.lab.inventory import load
from harness.workload.history import History, HistoryHeader, load_history
from harness.workload.history_stream import NEVER, StreamedHistory

LAB = Path(__file__).resolve().parents[3] / "fixtures" / "inventories" / "lab.toml"
S = 1_000_000_000
MS = 1_000_000
LOADERS = {"recorded": load_history, "streamed": StreamedHistory}
HEADER = HistoryHeader(seed=1, generation=7, block_size=4096, logical_block_size=512,
                       num_blocks=1024, device="t")


@pytest.fixture(scope="module")
def lab():  # type: ignore[no-untyped-def]
    inv = load(LAB)
    return inv, inv.devices["HA1"]


def _random_history(path: Path, seed: int) -> None:
    """Operations of every outcome on four paths, some never completed, out of order."""
    rng = random.Random(seed)
    paths = ["Demo1->iscsi1/SWS-Store1", "Demo1->iscsi2/SWS-Store1",
             "Demo1->iscsi1/SWS-Store2", "Demo2->iscsi2/SWS-Store2"]
    with History(path, HEADER) as h:
        ops = []
        for i in range(400):
            at = 10 * S + rng.randrange(0, 20 * S)
            f = rng.choice(["read", "write"])
            op = h.invoke(i % 8, f, rng.randrange(0, 64) * 8, 8, writer=i % 8 if f == "write"
                          else -1, seq=i if f == "write" else -1, time_ns=at)
            ops.append((op, at))
        for op, at in sorted(ops, key=lambda o: rng.random()):
            roll = rng.random()
            if roll < 0.05:
                continue  # never completes
            outcome = "ok" if roll < 0.8 else "fail" if roll < 0.9 else "info"
            h.complete(op, outcome, invoke_ns=at, path=rng.choice(paths),
                       time_ns=at + rng.choice([1, 5, 40, 900, 4000]) * MS,
                       error=None if outcome == "ok" else rng.choice(["eio", "abandoned"]))
        for k, (action, target, kw) in enumerate([
            ("delay", "sync/SWS-Store1/HA1", {"delay_ms": 30.0}),
            ("delay", "iscsi1/SWS-Store1", {"delay_ms": 20.0}),
            ("disk-slow", "SWS-Store2", {"delay_ms": 50.0, "iqn": "x", "lun": 0}),
            ("disk-slow", "SWS-Store1", {"delay_ms": 600_000.0, "iqn": "x", "lun": 0}),
            ("disk-eio", "SWS-Store1", {"iqn": "x", "lun": 0}),
            ("client-crash", "Demo1", {}),
        ]):
            start = 10 * S + rng.randrange(0, 18 * S)
            h.fault_start(f"f{k}", time_ns=start, action=action, target=target, params=kw)
            h.fault_stop(f"f{k}", time_ns=start + rng.randrange(1, 3 * S))


def _steps() -> list[tuple[str, Step]]:
    specs = [FaultSpec.of("delay", "sync/SWS-Store1/HA1", delay_ms=30.0),
             FaultSpec.of("delay", "iscsi1/SWS-Store1", delay_ms=20.0),
             FaultSpec.of("disk-slow", "SWS-Store2", delay_ms=50.0, iqn="x", lun=0),
             FaultSpec.of("disk-slow", "SWS-Store1", delay_ms=600_000.0, iqn="x", lun=0),
             FaultSpec.of("disk-eio", "SWS-Store1", iqn="x", lun=0),
             FaultSpec.of("client-crash", "Demo1")]
    return [(f"f{k}", Step(0.0, 1.0, s)) for k, s in enumerate(specs)]


@pytest.mark.parametrize("seed", range(6))
def test_the_index_gives_the_same_evidence_streamed_and_in_memory(
        tmp_path: Path, lab, seed: int) -> None:
    """Both readers build the index their own way: every fault's evidence is word for word
    the same, but for which failed operation is cited first (each reader's own order, as a
    pass over its operations found it: invoke order in memory, completion order streamed)."""
    inv, dev = lab
    _random_history(tmp_path / "h.jsonl", seed)
    found = {name: [(e.proved, e.text.split(" (first: ")[0])
                    for e in judge(_steps(), load(tmp_path / "h.jsonl"), {}, inv, dev)]
             for name, load in LOADERS.items()}
    assert found["recorded"] == found["streamed"]
    assert any(p for p, _ in found["streamed"])  # the histories do prove something


@pytest.mark.parametrize("seed", range(4))
def test_the_index_windows_are_those_of_a_pass_over_every_operation(
        tmp_path: Path, seed: int) -> None:
    _random_history(tmp_path / "h.jsonl", seed)
    history = StreamedHistory(tmp_path / "h.jsonl")
    ix = history.index()
    ops = list(history.ops)
    assert len(ix.invoke) == len(ops) and np.all(np.diff(ix.invoke) >= 0)
    rng = random.Random(seed)
    for _ in range(50):
        lo = 10 * S + rng.randrange(0, 20 * S)
        hi = lo + rng.randrange(0, 5 * S)
        invoked = sorted(int(ix.order[r]) for r in ix.invoked(lo, hi))
        assert invoked == [i for i, o in enumerate(ops) if lo <= o.invoke_ns <= hi]
        completed = sorted(int(ix.order[r]) for r in ix.completed(lo, hi))
        assert completed == [i for i, o in enumerate(ops)
                             if o.complete_ns is not None and lo <= o.complete_ns <= hi]
    assert not any(ix.complete[r] == NEVER for r in ix.completed(0, NEVER - 1))


def _delay_history(tmp_path: Path, took_ms: int | None) -> StreamedHistory:
    with History(tmp_path / "h.jsonl", HEADER) as h:
        h.fault_start("d", time_ns=10 * S, action="delay", target="sync/SWS-Store1/HA1",
                      params={"delay_ms": 30.0})
        if took_ms is not None:
            for i in range(3):
                at = 10 * S + i * 100 * MS
                op = h.invoke(1, "write", 0, 8, writer=0, seq=i, time_ns=at)
                h.complete(op, "ok", invoke_ns=at, path="Demo1->iscsi1/SWS-Store1",
                           time_ns=at + took_ms * MS)
        h.fault_stop("d", time_ns=13 * S)
    return StreamedHistory(tmp_path / "h.jsonl")


def test_a_delay_is_proved_by_latency_first_and_by_the_proxy_only_without_it(
        tmp_path: Path, lab) -> None:
    inv, dev = lab
    spec = FaultSpec.of("delay", "sync/SWS-Store1/HA1", delay_ms=30.0)
    steps = [("d", Step(0.0, 3.0, spec))]
    held = FaultEvidence("d", spec, True, "the proxy held 40 chunks (4000 bytes) on "
                                          "sync/SWS-Store1/HA1 for 30-31 ms", 10 * S)
    (ev,) = judge(steps, _delay_history(tmp_path, 35), {"d": held}, inv, dev)
    assert ev.proved and ev.text.startswith("3 operations across it took median 35.0 ms")
    for took in (None, 2):  # nothing crossed it, or what crossed it was not slowed
        (ev,) = judge(steps, _delay_history(tmp_path, took), {"d": held}, inv, dev)
        assert ev is held
        (ev,) = judge(steps, _delay_history(tmp_path, took), {}, inv, dev)
        assert not ev.proved and ev.text.startswith("no evidence that delay sync/SWS-Store1")


class _Growing:
    """A slowed link as the probe sees it: what it held back grows while it lasts."""

    def __init__(self) -> None:
        self.calls = 0

    def effect(self) -> str:
        self.calls += 1
        return f"the proxy held {self.calls} chunks"


def test_the_probe_reads_a_slowed_link_until_the_fault_ends(lab) -> None:
    """A break is proved once seen; what a slowed link held back is read until the fault's
    end, so the evidence counts the whole fault, not its first chunk."""
    from harness.chaos.evidence import LiveProbe

    inv, dev = lab
    probe = LiveProbe(inv, dev, node_state=None, ha_status=None)
    slow, broken = _Growing(), _Growing()
    probe.hook("slow", Step(0.0, 0.6, FaultSpec.of("delay", "sync", delay_ms=30.0)), slow)
    probe.hook("broken", Step(0.0, 0.6, FaultSpec.of("blackhole", "sync")), broken)
    probe.join()
    assert broken.calls == 1 and probe.seen["broken"].text == "the proxy held 1 chunks"
    assert slow.calls > 1 and probe.seen["slow"].text == f"the proxy held {slow.calls} chunks"
