"""Seeded plans, the JSON-lines history and its tolerant loader, device URLs."""

from __future__ import annotations

import itertools
import json

import pytest

from harness.iscsi.names import IscsiUrlError, parse_iscsi_url
from harness.workload.errors import HistoryError, WorkloadConfigError
from harness.workload.generator import WorkloadSpec, parse_region, parse_size, plan
from harness.workload.history import History, HistoryHeader, load_history

MIB = 1 << 20


def ops(spec, writer, n=200):
    return list(itertools.islice(plan(spec.validate(64 * MIB, 512), writer), n))


def test_same_seed_same_plan_other_seed_other_plan():
    spec = WorkloadSpec(seed=42, writers=3, block_sizes=(4096, 16384), read_ratio=0.3)
    assert ops(spec, 1) == ops(spec, 1)
    assert ops(spec, 1) != ops(spec, 2)
    assert ops(spec, 1) != ops(WorkloadSpec(seed=43, writers=3, block_sizes=(4096, 16384),
                                            read_ratio=0.3), 1)


def test_private_regions_do_not_overlap_and_ops_are_aligned():
    spec = WorkloadSpec(seed=1, writers=4, block_sizes=(4096, 65536)).validate(64 * MIB, 512)
    for w in range(4):
        base, length = spec.writer_region(w)
        assert length == 16 * MIB and base == w * 16 * MIB
        for op in ops(spec, w, 500):
            assert base <= op.offset and op.offset + op.length <= base + length
            assert op.offset % 4096 == 0 and op.length in (4096, 65536)
    assert [o.seq for o in ops(spec, 0, 5)] == [0, 1, 2, 3, 4]


def test_shared_region_writers_overlap():
    spec = WorkloadSpec(seed=1, writers=2, region_mode="shared", region_offset=MIB,
                        region_length=64 * 1024)
    a = {o.offset for o in ops(spec, 0, 300)}
    b = {o.offset for o in ops(spec, 1, 300)}
    assert a & b and min(a | b) >= MIB


def test_sequential_wraps_inside_the_region():
    spec = WorkloadSpec(writers=1, pattern="sequential", region_length=16384)
    assert [o.offset for o in ops(spec, 0, 6)] == [0, 4096, 8192, 12288, 0, 4096]


def test_read_ratio_and_ops_limit():
    spec = WorkloadSpec(writers=1, read_ratio=1.0, ops_per_writer=7)
    got = list(plan(spec.validate(MIB, 512), 0))
    assert len(got) == 7 and {o.kind for o in got} == {"read"}


@pytest.mark.parametrize("spec, match", [
    (WorkloadSpec(block_sizes=(4096, 6144)), "multiple"),
    (WorkloadSpec(read_ratio=1.5), "read-ratio"),
    (WorkloadSpec(writers=128, block_sizes=(1 * MIB,)), "smaller than the largest"),
    (WorkloadSpec(region_offset=MIB, region_length=128 * MIB), "inside"),
    (WorkloadSpec(duration=None), "never stops"),
])
def test_bad_specs_are_refused_with_a_reason(spec, match):
    with pytest.raises(WorkloadConfigError, match=match):
        spec.validate(64 * MIB, 512)


def test_sizes_and_regions():
    assert parse_size("4k") == 4096 and parse_size("1GiB") == 1 << 30
    assert parse_region("1M:") == (MIB, None) and parse_region("0:64M") == (0, 64 * MIB)
    with pytest.raises(WorkloadConfigError, match="not a number"):
        parse_size("lots")


def header():
    return HistoryHeader(seed=1, generation=2, block_size=4096, logical_block_size=512,
                         num_blocks=128, device="img", initial="zero")


def test_history_round_trip_joins_invocations_and_completions(tmp_path):
    path = tmp_path / "h.jsonl"
    with History(path, header()) as h:
        a = h.invoke(0, "write", 8, 8, writer=0, seq=0, time_ns=100)
        b = h.invoke(1, "read", 8, 8, time_ns=110)
        h.fault_start("cut p0", time_ns=115, paths=["p0"])
        h.complete(a, "ok", invoke_ns=100, time_ns=120, path="p1")
        h.complete(b, "fail", invoke_ns=110, time_ns=130, error="timeout")
        c = h.invoke(0, "write", 16, 8, writer=0, seq=1, time_ns=140)
        h.fault_stop("cut p0", time_ns=150)
        h.path_event("p0", "failed", time_ns=116)
    hist = load_history(path)
    assert hist.header == header()
    w, r, pending = hist.ops
    assert (w.outcome, w.latency_ns, w.path, w.seq, w.generation) == ("ok", 20, "p1", 0, 2)
    assert (r.outcome, r.error) == ("fail", "timeout")
    assert pending.op == c and pending.outcome == "info" and pending.end_ns() == float("inf")
    (fault,) = hist.faults
    assert (fault.name, fault.start_ns, fault.stop_ns, fault.attrs) == (
        "cut p0", 115, 150, {"paths": ["p0"]})
    assert hist.faults_during(140, 145) == [fault] and hist.faults_during(151, 160) == []
    assert [(e.path, e.state) for e in hist.paths] == [("p0", "failed")]
    indexes = [json.loads(line)["index"] for line in path.read_text().splitlines()]
    assert indexes == list(range(len(indexes)))


def test_torn_last_line_is_ignored_but_damage_in_the_middle_is_not(tmp_path):
    path = tmp_path / "h.jsonl"
    with History(path, header()) as h:
        h.invoke(0, "write", 8, 8, writer=0, seq=0, time_ns=100)
    text = path.read_text()
    path.write_text(text + '{"type":"ok","op":0,"ti')
    hist = load_history(path)
    assert hist.torn_tail and hist.ops[0].outcome == "info"
    path.write_text(text + '{"type":"ok","op":0,"ti\n' + text.splitlines()[1] + "\n")
    with pytest.raises(HistoryError, match="damaged"):
        load_history(path)


def test_not_a_history(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"type":"invoke"}\n')
    with pytest.raises(HistoryError, match="not a history"):
        load_history(path)
    with pytest.raises(HistoryError, match="does not exist"):
        load_history(tmp_path / "missing.jsonl")


def test_iscsi_urls():
    u = parse_iscsi_url("iscsi://alice:s3cr%40t@127.0.0.1:3261/iqn.2026-11.org.x:disk/3")
    assert (u.host, u.port, u.target, u.lun, u.user, u.secret) == (
        "127.0.0.1", 3261, "iqn.2026-11.org.x:disk", 3, "alice", "s3cr@t")
    assert "s3cr" not in str(u)
    v = parse_iscsi_url("iscsi://[::1]/iqn.x:y/0")
    assert (v.host, v.port, v.portal) == ("::1", 3260, "[::1]:3260")
    for bad, match in [("iscsi://h:1/iqn", "path must be"), ("iscsi://h:1/iqn/x", "not a number"),
                       ("iscsi:///iqn/0", "no host"), ("iscsi://h:99999/iqn/0", "bad port"),
                       ("http://h/iqn/0", "not an iscsi")]:
        with pytest.raises(IscsiUrlError, match=match):
            parse_iscsi_url(bad)


def test_overlapping_faults_of_one_name_pair_oldest_first(tmp_path):
    path = tmp_path / "h.jsonl"
    with History(path, header()) as h:
        h.fault_start("flap p0", time_ns=10)
        h.fault_start("flap p0", time_ns=20)
        h.fault_stop("flap p0", time_ns=30)
        h.fault_stop("flap p0", time_ns=40)
        with pytest.raises(HistoryError, match="never started"):
            h.fault_stop("flap p0")
    assert [(f.start_ns, f.stop_ns) for f in load_history(path).faults] == [(10, 30), (20, 40)]
