"""The streamed checks agree with the in-memory ones on hand-made histories."""

from __future__ import annotations

import pytest

from harness.checks.register import check_reads
from harness.checks.stream_check import check_history_file

BS = 4096


def kinds(verdict):
    return sorted((p.kind, p.offset) for p in verdict.problems)


def streamed(s, chunk=8192):
    result, _ = check_history_file(s.path, chunk=chunk)
    return result


def stale_and_friends(s):
    s.write(0, 0, 2, invoke=10, complete=20)
    old = bytes(s.image[2 * BS:3 * BS])
    s.write(1, 0, 2, invoke=30, complete=40)
    s.read(2, invoke=50, complete=60, data=old)  # stale
    s.write(0, 1, 3, invoke=10, complete=20, apply=False)
    s.read(3, invoke=30, complete=40)  # initial content after an ok write: stale
    s.read(4, invoke=1, complete=5, data=s.stamp(0, 2, 4))
    s.write(0, 2, 4, invoke=10, complete=20)  # the read above saw it first: future
    s.write(0, 3, 5, invoke=10, complete=20, outcome="fail")
    s.read(5, invoke=30, complete=40)  # a failed write read back: phantom
    s.write(0, 4, 6, invoke=10, complete=20, outcome="info")
    info = bytes(s.image[6 * BS:7 * BS])
    s.write(1, 1, 6, invoke=30, complete=40)
    s.read(6, invoke=500, complete=510, data=info)  # info may land late: fine
    s.write(0, 5, 7, invoke=10, complete=30)
    early = bytes(s.image[7 * BS:8 * BS])
    s.write(1, 2, 7, invoke=20, complete=40)
    s.read(7, invoke=35, complete=45, data=early)  # concurrent: either is fine


@pytest.mark.parametrize("chunk", [8192, 2])
def test_streamed_register_matches_the_in_memory_one(scenario, chunk):
    stale_and_friends(scenario)
    expected = kinds(check_reads(scenario.load()))
    assert expected == [("future_read", 4 * BS), ("phantom_read", 5 * BS),
                        ("stale_read", 2 * BS), ("stale_read", 3 * BS)]
    got = streamed(scenario, chunk).verdict("register")
    assert kinds(got) == expected
    assert got.stats["unjudged"] == 0
    stale = next(p for p in got.problems if p.offset == 2 * BS)
    assert [r["type"] for r in stale.records] == ["invoke", "ok"]


def test_a_clean_history_is_clean_everywhere(scenario):
    for seq in range(20):
        scenario.write(0, seq, seq % 4, invoke=100 * seq, complete=100 * seq + 10)
        scenario.read(seq % 4, invoke=100 * seq + 20, complete=100 * seq + 30)
    result = streamed(scenario)
    assert result.valid, result.problems
    assert result.verdict("register").stats["reads"] == 20
    assert result.verdict("register").stats["writes"] == 20


def test_overwrites_pushed_out_of_the_ring_still_prove_a_stale_read(scenario):
    scenario.write(0, 0, 1, invoke=10, complete=20)
    old = bytes(scenario.image[BS:2 * BS])
    for seq in range(1, 10):  # nine newer writes: the ring keeps only the last few
        scenario.write(0, seq, 1, invoke=100 * seq, complete=100 * seq + 10)
    scenario.read(1, invoke=5000, complete=5010, data=old)
    assert kinds(streamed(scenario).verdict("register")) == [("stale_read", BS)]
    assert kinds(check_reads(scenario.load())) == [("stale_read", BS)]


def test_a_read_of_a_write_still_in_flight_is_judged_when_it_completes(scenario):
    scenario.write(0, 0, 1, invoke=10, complete=None, outcome=None)  # never completes
    scenario.read(1, invoke=20, complete=30)
    result = streamed(scenario, chunk=1)
    assert result.verdict("register").valid
    assert result.verdict("faults").valid  # no faults


def test_check_run_file_reads_the_device_and_compares_replicas(scenario, tmp_path):
    """The streamed run check finds what the in-memory one finds on the device and the
    replicas: a lost write on the device, a split brain between two replicas."""
    import asyncio

    from harness.checks.stream_check import check_run_file
    from harness.workload.device import FileDevice

    s = scenario
    s.write(0, 0, 1, invoke=10, complete=20)
    s.write(0, 1, 3, invoke=30, complete=40, apply=False)  # acknowledged, never landed
    s.write(1, 0, 5, invoke=50, complete=60)
    s.write(0, 2, 7, invoke=70, complete=80)
    node1, node2 = bytearray(s.image), bytearray(s.image)
    node1[5 * BS:6 * BS] = bytes(BS)  # node1 lacks w1#0, node2 lacks w0#2: split brain
    node2[7 * BS:8 * BS] = bytes(BS)
    image = tmp_path / "device.img"
    image.write_bytes(bytes(s.image))

    def reader(data):
        async def read(offset, length):
            return bytes(data[offset:offset + length])
        return read

    async def run():
        dev = FileDevice(image, readonly=True, direct=False)
        try:
            return await check_run_file(s.path, devices={"dev": dev},
                                        replicas={"node1": reader(node1), "node2": reader(node2)})
        finally:
            await dev.close()

    result, reports = asyncio.run(run())
    assert reports == []
    assert kinds(result.verdict("integrity")) == kinds(s.integrity()) == [("lost", 3 * BS)]
    lost = result.verdict("integrity").problems[0]
    assert "write w0#1 (op 1, ok)" in lost.message
    assert [r["type"] for r in lost.records] == ["invoke", "ok"]
    divergence = result.verdict("divergence")
    assert divergence.stats["split_brain"] is True
    assert {p.offset for p in divergence.problems} == {5 * BS, 7 * BS}


def test_a_span_read_back_still_checks_every_block_of_the_replica_images(scenario):
    """With ``span``, the paths are read back only over the span the workload wrote, and
    each replica's image is checked whole in the comparing pass: a write of this run
    found past the span (misdirected there) is still reported, on the image it is in;
    inside the span a lost write is still found through the path."""
    import asyncio

    from harness.checks.stream_check import check_run_file

    s = scenario
    s.write(0, 0, 1, invoke=10, complete=20)
    s.write(0, 1, 2, invoke=30, complete=40, apply=False)  # acknowledged, never landed
    s.write(0, 2, 3, invoke=50, complete=60)
    node1 = bytearray(s.image)
    node1[12 * BS:13 * BS] = s.stamp(0, 2, 3)  # w0#2 landed at block 12 too: misplaced
    node2 = bytearray(node1)
    reads: list[tuple[int, int]] = []

    class Path:
        block_size, num_blocks = 512, len(s.image) // 512

        async def read(self, lba, count):
            from harness.workload.device import Completion

            reads.append((lba * 512, count * 512))
            return Completion(bytes(node1[lba * 512:(lba + count) * 512]), "path")

    def reader(data):
        async def read(offset, length):
            return bytes(data[offset:offset + length])
        return read

    def check(span, whole=None):
        reads.clear()
        return asyncio.run(check_run_file(
            s.path, devices={"path": Path()}, span=span, whole=whole,
            replicas={"node1": reader(node1), "node2": reader(node2)}))[0]

    spanned = check(4 * BS)
    assert max(off + n for off, n in reads) == 4 * BS  # the path: the span only
    integrity = spanned.verdict("integrity")
    assert {(p.kind, p.offset, p.device) for p in integrity.problems} == {
        ("lost", 2 * BS, "path"), ("lost", 2 * BS, "node1"), ("lost", 2 * BS, "node2"),
        ("misplaced", 12 * BS, "node1"), ("misplaced", 12 * BS, "node2")}
    assert integrity.stats["read_back_bytes"] == 4 * BS
    whole = check(None)  # without a span: the path is read whole, images only compared
    assert max(off + n for off, n in reads) == len(s.image)
    assert {(p.kind, p.offset, p.device) for p in whole.verdict("integrity").problems} == {
        ("lost", 2 * BS, "path"), ("misplaced", 12 * BS, "path")}
    # a replica that is not Synchronized may lag: only the others are checked in full
    one = check(4 * BS, whole=["node2"])
    assert max(off + n for off, n in reads) == 4 * BS
    assert {p.device for p in one.verdict("integrity").problems} == {"path", "node2"}
    none = check(4 * BS, whole=[])  # none may be trusted whole: the path is read whole
    assert max(off + n for off, n in reads) == len(s.image)
    assert {p.device for p in none.verdict("integrity").problems} == {"path"}


def test_writes_completing_out_of_seq_order_are_all_found(scenario):
    from harness.checks.write_table import WriteTable
    from harness.workload.history_stream import OpStream

    s = scenario
    for seq in (4, 0, 2, 5, 1, 3):  # a writer's queue completes out of order
        s.write(0, seq, seq, invoke=10 * seq, complete=100 + 10 * (seq % 3))
    table = WriteTable(s.header.generation, s.block_size, s.lbs)
    for chunk in OpStream(s.path, chunk=2):
        table.add(chunk)
    assert [table.get(0, q)[3] for q in range(6)] == [0, 1, 2, 3, 4, 5]  # first block
    assert table.get(0, 6) is None and table.get(1, 0) is None
    assert table.columns()["seq"].tolist() == [0, 1, 2, 3, 4, 5]
    s.read(3, invoke=500, complete=510)
    result = streamed(s, chunk=1)
    assert result.valid, result.problems
