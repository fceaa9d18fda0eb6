"""Replica comparison: divergence versus split brain, from hand-made histories."""

from __future__ import annotations

import asyncio

from harness.checks.divergence import compare_replicas

BS = 4096


def reader(image: bytes):
    async def read(offset: int, length: int) -> bytes:
        return bytes(image[offset:offset + length])

    return read


def compare(scenario, a: bytes, b: bytes, *, history=True):
    hist = scenario.load() if history else None
    return asyncio.run(compare_replicas({"node1": reader(a), "node2": reader(b)},
                                        len(a), BS, hist, chunk=8 * BS))


def test_identical_replicas_are_valid(scenario):
    scenario.write(0, 0, 1, invoke=10, complete=20)
    verdict = compare(scenario, bytes(scenario.image), bytes(scenario.image))
    assert verdict.valid and verdict.stats["split_brain"] is False


def test_replica_missing_acknowledged_write_diverged(scenario):
    behind = bytes(scenario.image)
    scenario.write(0, 0, 3, 2, invoke=10, complete=20)
    verdict = compare(scenario, bytes(scenario.image), behind)
    assert [(p.kind, p.offset, p.length) for p in verdict.problems] == [
        ("diverged", 3 * BS, 2 * BS)]
    msg = verdict.problems[0].message
    assert msg.startswith("replicas diverged") and "node2 is missing acknowledged data" in msg
    assert "split brain" not in msg


def test_each_replica_ahead_somewhere_is_split_brain(scenario):
    scenario.write(0, 0, 1, invoke=10, complete=20, apply=False)
    scenario.write(1, 0, 9, invoke=10, complete=20, apply=False)
    a = bytearray(scenario.image)
    b = bytearray(scenario.image)
    a[BS:2 * BS] = scenario.stamps[(0, 0)]
    b[9 * BS:10 * BS] = scenario.stamps[(1, 0)]
    verdict = compare(scenario, bytes(a), bytes(b))
    assert [(p.kind, p.offset) for p in verdict.problems] == [
        ("split_brain", BS), ("split_brain", 9 * BS)]
    assert all("split brain" in p.message for p in verdict.problems)
    assert verdict.stats["split_brain"] is True


def test_both_replicas_acknowledged_different_writes_to_one_block(scenario):
    scenario.write(0, 0, 4, invoke=10, complete=30)
    a = bytes(scenario.image)
    scenario.write(1, 0, 4, invoke=20, complete=40)
    verdict = compare(scenario, a, bytes(scenario.image))
    assert [p.kind for p in verdict.problems] == ["split_brain"]
    assert {r["op"] for r in verdict.problems[0].records} == {0, 1}


def test_replica_with_older_acknowledged_write_only_diverged(scenario):
    scenario.write(0, 0, 4, invoke=10, complete=20)
    old = bytes(scenario.image)
    scenario.write(1, 0, 4, invoke=30, complete=40)
    verdict = compare(scenario, old, bytes(scenario.image))
    assert [p.kind for p in verdict.problems] == ["diverged"]
    assert "node1 is missing acknowledged data" in verdict.problems[0].message


def test_without_history_every_difference_is_divergence(scenario):
    scenario.write(0, 0, 1, invoke=10, complete=20, apply=False)
    scenario.write(1, 0, 9, invoke=10, complete=20, apply=False)
    a = bytearray(scenario.image)
    b = bytearray(scenario.image)
    a[BS:2 * BS] = scenario.stamps[(0, 0)]
    b[9 * BS:10 * BS] = scenario.stamps[(1, 0)]
    verdict = compare(scenario, bytes(a), bytes(b), history=False)
    assert [p.kind for p in verdict.problems] == ["diverged", "diverged"]
