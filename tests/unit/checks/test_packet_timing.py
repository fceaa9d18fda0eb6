"""Failover times from a capture: a crafted pcap of two paths, one cut, agrees with the
history of the same run, and a capture that disagrees is reported."""

from __future__ import annotations

import pytest

from harness.checks.packet_timing import compare_with_history, read_pdus, wire_timing
from harness.checks.timing import measure
from tests.support.crafted_capture import MS, build


def test_capture_gives_the_failover_times(tmp_path):
    pcap, history = build(tmp_path)
    pdus = read_pdus(pcap)
    assert sum(p.completes for p in pdus) == 100 + 70 + 50 + 1
    wire = wire_timing(pdus, history)
    (f,) = wire.faults
    assert f.failed_paths == ["127.0.0.2:3260"]
    assert f.last_response_failed_s == pytest.approx(-0.008, abs=1e-6)
    assert f.failover_s == pytest.approx(0.302, abs=1e-6)
    assert f.failover_path == "127.0.0.3:3260"
    assert f.first_unanswered_nop_s == pytest.approx(0.050, abs=1e-6)
    assert f.heal_to_all_paths_s == pytest.approx(0.152, abs=1e-6)
    assert wire.nop_gap_s["127.0.0.3:3260"] == pytest.approx(0.001, abs=1e-6)
    assert wire.longest_pause_s == pytest.approx(0.310, abs=1e-6)


def test_wire_and_history_agree_within_tolerance(tmp_path):
    pcap, history = build(tmp_path)
    verdict = compare_with_history(wire_timing(read_pdus(pcap), history), measure(history),
                                   tolerance_s=0.002)
    assert verdict.valid, verdict.problems
    assert {r["measure"] for r in verdict.stats["comparison"]} == {"failover",
                                                                   "heal_to_all_paths"}


def test_disagreeing_clocks_are_reported(tmp_path):
    pcap, history = build(tmp_path, history_skew_ns=20 * MS)
    verdict = compare_with_history(wire_timing(read_pdus(pcap), history), measure(history),
                                   tolerance_s=0.005)
    assert [p.detail["measure"] for p in verdict.problems] == ["failover", "heal_to_all_paths"]
    assert "the capture says 0.3020 s" in verdict.problems[0].message




def test_capture_numbers_beside_the_per_fault_report(tmp_path):
    from harness.checks.faults_report import per_fault_report
    from harness.checks.packet_timing import beside_lines, check_scenario_capture

    pcap, _ = build(tmp_path)
    reports = per_fault_report(tmp_path / "h.jsonl")
    verdict = check_scenario_capture(pcap, tmp_path / "h.jsonl", reports, tolerance_s=0.002)
    assert verdict.valid, verdict.problems
    rows = {r["measure"]: (r["history_s"], r["wire_s"]) for r in verdict.stats["beside"]}
    assert rows["longest_gap"] == (pytest.approx(0.310), pytest.approx(0.310))
    assert rows["heal_to_all_paths"] == (pytest.approx(0.1521), pytest.approx(0.152))
    # the op the history saw time out after 0.4 s is never answered on the wire (until the
    # last packet, at 2.401 s)
    assert rows["longest_op"] == (pytest.approx(0.4001), pytest.approx(1.401, abs=1e-6))
    head, gap, *_ = beside_lines(verdict)
    assert head.split() == ["fault", "measure", "history", "wire"]
    assert gap.split() == ["cut", "A", "longest_gap", "0.3100", "0.3100"]


def test_capture_that_disagrees_with_the_per_fault_report(tmp_path):
    from harness.checks.faults_report import per_fault_report
    from harness.checks.packet_timing import check_scenario_capture

    pcap, _ = build(tmp_path, history_skew_ns=20 * MS)
    reports = per_fault_report(tmp_path / "h.jsonl")
    verdict = check_scenario_capture(pcap, tmp_path / "h.jsonl", reports, tolerance_s=0.005)
    assert [p.detail["measure"] for p in verdict.problems] == ["heal_to_all_paths"]
