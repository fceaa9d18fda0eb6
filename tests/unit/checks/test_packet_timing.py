"""Failover times from a capture: a crafted pcap of two paths, one cut, agrees with the
history of the same run, and a capture that disagrees is reported."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.packet import Raw
from scapy.utils import wrpcap

from harness.checks.packet_timing import compare_with_history, read_pdus, wire_timing
from harness.checks.timing import measure
from harness.iscsi.layers import (
    ISCSIDataIn,
    ISCSINopIn,
    ISCSINopOut,
    ISCSIScsiCommand,
    ISCSIScsiResponse,
)
from harness.workload.history import History, HistoryHeader, load_history

WALL, START = 1_700_000_000.0, 5_000_000_000
MS = 1_000_000
PATHS = {"A": ("127.0.0.2", 40001), "B": ("127.0.0.3", 40002)}
LABEL = {k: f"{ip}:3260/iqn.2026-11.test:disk/0" for k, (ip, _) in PATHS.items()}


class Wire:
    def __init__(self):
        self.packets = []
        self.seq = {}
        self.itt = 0

    def send(self, path, t_ns, pdu, *, to_target):
        ip, iport = PATHS[path]
        src, dst = ("127.0.0.1", ip) if to_target else (ip, "127.0.0.1")
        sport, dport = (iport, 3260) if to_target else (3260, iport)
        payload = bytes(pdu)
        seq = self.seq.get((src, sport), 1000)
        self.seq[(src, sport)] = seq + len(payload)
        pkt = IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="PA", seq=seq) / Raw(
            payload)
        pkt.time = WALL + (t_ns - START) / 1e9
        self.packets.append(pkt)

    def command(self, path, sent_ns, done_ns=None, *, read=False):
        self.itt += 1
        cdb = bytes([0x88 if read else 0x8A]) + bytes(15)
        self.send(path, sent_ns, ISCSIScsiCommand(initiator_task_tag=self.itt, read=int(read),
                                                  write=int(not read), cdb=cdb), to_target=True)
        if done_ns is None:
            return
        if read:
            self.send(path, done_ns, ISCSIDataIn(initiator_task_tag=self.itt, status_present=1,
                                                 data=bytes(512)), to_target=False)
        else:
            self.send(path, done_ns, ISCSIScsiResponse(initiator_task_tag=self.itt),
                      to_target=False)


def build(tmp_path, *, history_skew_ns=0):
    """I/O every 10 ms over A and B; A cut at 1 s, healed at 2 s; B carries on from 1.3 s."""
    wire = Wire()
    header = HistoryHeader(seed=1, generation=1, block_size=4096, logical_block_size=512,
                           num_blocks=64, device="mpio", initial="zero", start_ns=START,
                           wall_clock=WALL)
    hist_path = tmp_path / "h.jsonl"
    with History(hist_path, header) as h:
        def io(path, t, latency=2 * MS, outcome="ok", read=False):
            oid = h.invoke(0, "read" if read else "write", 0, 8, writer=0, seq=t,
                           time_ns=START + t)
            done = START + t + latency
            wire.command(path, START + t, done if outcome == "ok" else None, read=read)
            h.complete(oid, outcome, invoke_ns=START + t, path=LABEL[path],
                       time_ns=done + 100_000 + history_skew_ns)

        for i in range(100):
            io("A" if i % 2 else "B", i * 10 * MS, read=i % 3 == 0)
        h.fault_start("cut A", time_ns=START + 1000 * MS, paths=[LABEL["A"]])
        io("A", 1000 * MS, latency=400 * MS, outcome="info")
        wire.send("A", START + 1050 * MS, ISCSINopOut(initiator_task_tag=900), to_target=True)
        for t in range(1300, 2000, 10):
            io("B", t * MS)
        h.fault_stop("cut A", time_ns=START + 2000 * MS)
        wire.itt += 1  # path recovery: TEST UNIT READY on A completes before any data does
        wire.send("A", START + 2050 * MS, ISCSIScsiCommand(initiator_task_tag=wire.itt,
                                                           cdb=bytes(16)), to_target=True)
        wire.send("A", START + 2051 * MS, ISCSIScsiResponse(initiator_task_tag=wire.itt),
                  to_target=False)
        for t in range(2000, 2500, 10):
            io("A" if t >= 2150 and t % 20 else "B", t * MS)
        wire.send("B", START + 2400 * MS, ISCSINopOut(initiator_task_tag=901), to_target=True)
        wire.send("B", START + 2401 * MS, ISCSINopIn(initiator_task_tag=901), to_target=False)
    pcap = tmp_path / "run.pcap"
    wrpcap(str(pcap), wire.packets)
    return pcap, load_history(hist_path)


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


def test_check_command_sets_capture_beside_history(tmp_path):
    import subprocess
    import sys

    pcap, _ = build(tmp_path)
    run = subprocess.run([sys.executable, "-m", "harness", "check", str(tmp_path / "h.jsonl"),
                          "--pcap", str(pcap), "--wire-tolerance", "0.002"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "wire       2 paths in the capture; cut A failover: wire 0.3020 s, history 0.3021 s" \
        in run.stdout


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
