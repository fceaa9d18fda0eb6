"""Failover timing from packets alone: what the wire says, beside what the history says.

The model: a path is one iSCSI connection to a target portal. From a capture
(scapy ``TCPSession`` reassembly and ``harness.iscsi.layers``) every PDU gets
a time, a path and a direction. A READ or WRITE *completes on the wire* when its
SCSI Response arrives, or its last Data-In with the status bit (phase
collapse), matched to the SCSI Command by initiator task tag on the same
connection. For each fault of a history (its window moved onto the capture's
clock with the history header's ``wall_clock``/``start_ns`` pair):

- ``last_response_failed_s``: the last command completion on a failed path
  (a path named in the fault's ``paths``), relative to the fault start;
- ``failover_s``: the first completion on a surviving path of a command sent
  after the fault started (the wire twin of the history's failover time);
- ``first_unanswered_nop_s``: the first NOP-Out on a failed path after the
  fault started that never got its NOP-In (when the initiator's path checker
  could first have noticed), and ``nop_gap_s`` per path: the longest wait for a
  NOP-In answer;
- ``heal_to_all_paths_s``: after the fault stopped, when every path had
  completed a command sent after the heal.

``check_scenario_capture`` (the ``packet_faults`` checker, one call per chaos
scenario) sets the capture's longest gap, longest command and heal time beside
``harness.checks.faults_report``'s, and ``beside_lines`` prints them.
``compare_with_history`` sets these beside ``harness.checks.timing`` and
reports a ``timing_disagrees`` problem when the two differ by more than a
tolerance (a few milliseconds on the lab): if they disagree, one of the two
clocks or the checker is lying.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.checks.timing import TimingReport
from harness.checks.verdict import Problem, Verdict
from harness.workload.errors import HistoryError
from harness.workload.history import FaultWindow, RecordedHistory

SCSI_COMMAND, NOP_OUT, NOP_IN, SCSI_RESPONSE, DATA_IN = 0x01, 0x00, 0x20, 0x21, 0x25
NO_TAG = 0xFFFFFFFF
# READ and WRITE (6, 10, 12, 16): the application's I/O. Path probes (INQUIRY, TEST UNIT
# READY, READ CAPACITY, REPORT TARGET PORT GROUPS, PR) complete on a path before it
# carries data again, so they do not count as failover or heal.
DATA_CDBS = frozenset({0x08, 0x0A, 0x28, 0x2A, 0xA8, 0xAA, 0x88, 0x8A})


@dataclass(frozen=True, slots=True)
class WirePdu:
    time: float  # capture clock (epoch seconds)
    path: str  # target portal "host:port"
    initiator: str  # "host:port" of the initiator end
    to_target: bool
    opcode: int
    itt: int
    completes: bool  # a SCSI Response, or a Data-In carrying status
    cdb_opcode: int | None = None  # for a SCSI Command: byte 0 of its CDB


def _portal(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def read_pdus(pcap: str | os.PathLike[str], *, ports: Iterable[int] = (3260,)) -> list[WirePdu]:
    """Every iSCSI PDU of a capture, reassembled from TCP, in capture order."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.sendrecv import sniff
    from scapy.sessions import TCPSession

    from harness.iscsi.layers import bind_port, iter_pdus

    ports = set(ports)
    for port in ports:
        bind_port(port)
    if not os.path.exists(pcap):
        raise HistoryError(f"capture {pcap} does not exist; pass the pcap recorded during the run")
    out: list[WirePdu] = []

    def take(pkt: Any) -> None:
        if TCP not in pkt:
            return
        ip = pkt[IP] if IP in pkt else pkt.getlayer(IPv6)
        if ip is None:
            return
        tcp = pkt[TCP]
        to_target = tcp.dport in ports
        if not to_target and tcp.sport not in ports:
            return
        target = _portal(ip.dst, tcp.dport) if to_target else _portal(ip.src, tcp.sport)
        initiator = _portal(ip.src, tcp.sport) if to_target else _portal(ip.dst, tcp.dport)
        for pdu in iter_pdus(pkt):
            op = int(pdu.opcode)
            itt = int(getattr(pdu, "initiator_task_tag", NO_TAG))
            completes = op == SCSI_RESPONSE or (op == DATA_IN and bool(pdu.status_present))
            cdb = bytes(pdu.cdb)[:1] if op == SCSI_COMMAND else b""
            out.append(WirePdu(float(pkt.time), target, initiator, to_target, op, itt,
                               completes, cdb[0] if cdb else None))

    try:
        sniff(offline=str(pcap), session=TCPSession, prn=take, store=False, quiet=True)
    except (OSError, ValueError) as exc:
        raise HistoryError(f"cannot read capture {pcap}: {exc}") from exc
    return out


@dataclass(slots=True)
class Completion:
    time: float
    path: str
    sent: float  # when its SCSI Command went out


def completions(pdus: list[WirePdu], *, data_only: bool = True) -> list[Completion]:
    """Commands completed on the wire, matched to their SCSI Command by (connection, ITT);
    only READs and WRITEs unless ``data_only`` is false."""
    sent: dict[tuple[str, str, int], float] = {}
    out: list[Completion] = []
    for p in pdus:
        key = (p.initiator, p.path, p.itt)
        if p.to_target and p.opcode == SCSI_COMMAND:
            if data_only and p.cdb_opcode not in DATA_CDBS:
                sent.pop(key, None)
                continue
            sent[key] = p.time
        elif not p.to_target and p.completes and key in sent:
            out.append(Completion(p.time, p.path, sent.pop(key)))
    out.sort(key=lambda c: c.time)
    return out


def nop_waits(pdus: list[WirePdu]) -> list[tuple[str, float, float | None]]:
    """(path, NOP-Out time, NOP-In answer time or None) for every pinging NOP-Out."""
    asked: dict[tuple[str, str, int], int] = {}
    out: list[tuple[str, float, float | None]] = []
    for p in pdus:
        key = (p.initiator, p.path, p.itt)
        if p.to_target and p.opcode == NOP_OUT and p.itt != NO_TAG:
            asked[key] = len(out)
            out.append((p.path, p.time, None))
        elif not p.to_target and p.opcode == NOP_IN and key in asked:
            i = asked.pop(key)
            out[i] = (out[i][0], out[i][1], p.time)
    return out


@dataclass(slots=True)
class WireFaultTiming:
    name: str
    failed_paths: list[str]
    last_response_failed_s: float | None
    failover_s: float | None
    failover_path: str | None
    first_unanswered_nop_s: float | None
    heal_to_all_paths_s: float | None
    heal_per_path_s: dict[str, float | None] = field(default_factory=dict)


@dataclass(slots=True)
class WireTiming:
    paths: list[str]
    longest_pause_s: float
    nop_gap_s: dict[str, float]
    faults: list[WireFaultTiming]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def portal_of(path: str) -> str:
    """The portal part of a history path label (``host:port/target/lun`` -> ``host:port``)."""
    return path.split("/", 1)[0]


def wire_timing(pdus: list[WirePdu], history: RecordedHistory) -> WireTiming:
    """The failover times of every fault of ``history``, from the capture alone."""
    h = history.header
    if not h.wall_clock:
        raise HistoryError("history header has no wall clock; it cannot be lined up with a "
                           "capture (record it with this splitbrain)")

    def epoch(ns: int) -> float:
        return h.wall_clock + (ns - h.start_ns) / 1e9

    done = completions(pdus)
    nops = nop_waits(pdus)
    paths = sorted({c.path for c in done})
    times = [c.time for c in done]
    pause = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
    gaps: dict[str, float] = {}
    last_time = pdus[-1].time if pdus else 0.0
    for path, asked, answered in nops:
        wait = (answered if answered is not None else last_time) - asked
        gaps[path] = max(gaps.get(path, 0.0), wait)
    faults = [_fault(f, done, nops, paths, epoch) for f in history.faults]
    return WireTiming(paths, pause, gaps, faults)


def _fault(f: FaultWindow, done: list[Completion], nops: list[tuple[str, float, float | None]],
           paths: list[str], epoch: Any) -> WireFaultTiming:
    start = epoch(f.start_ns)
    failed = sorted({portal_of(p) for p in f.attrs.get("paths") or []})
    stop = epoch(f.stop_ns) if f.stop_ns is not None else float("inf")
    on_failed = [c for c in done if c.path in failed and c.time < stop]
    first = next((c for c in done if c.sent >= start and c.path not in failed), None)
    unanswered = next((asked for path, asked, answered in nops
                       if path in failed and asked >= start and answered is None), None)
    ft = WireFaultTiming(
        name=f.name, failed_paths=failed,
        last_response_failed_s=(on_failed[-1].time - start) if on_failed else None,
        failover_s=None if first is None else first.time - start,
        failover_path=None if first is None else first.path,
        first_unanswered_nop_s=None if unanswered is None else unanswered - start,
        heal_to_all_paths_s=None,
    )
    if f.stop_ns is not None:
        before = sorted({c.path for c in done if c.time <= start}) or paths
        for p in before:
            hit = next((c.time for c in done if c.path == p and c.sent >= stop), None)
            ft.heal_per_path_s[p] = None if hit is None else hit - stop
        values = list(ft.heal_per_path_s.values())
        if values and all(v is not None for v in values):
            ft.heal_to_all_paths_s = max(v for v in values if v is not None)
    return ft


def compare_with_history(wire: WireTiming, history: TimingReport, *,
                         tolerance_s: float = 0.005) -> Verdict:
    """Set the wire's failover times beside the history's; differences are problems."""
    problems: list[Problem] = []
    rows: list[dict[str, Any]] = []
    for w, t in zip(wire.faults, history.faults, strict=False):
        for measure, a, b in (("failover", w.failover_s, t.failover_s),
                              ("heal_to_all_paths", w.heal_to_all_paths_s,
                               t.heal_to_all_paths_s)):
            rows.append({"fault": w.name, "measure": measure, "wire_s": a, "history_s": b})
            if a is None and b is None:
                continue
            if a is None or b is None or abs(a - b) > tolerance_s:
                problems.append(Problem(
                    "timing_disagrees",
                    f"{measure} after {w.name!r}: the capture says "
                    f"{'never' if a is None else f'{a:.4f} s'}, the history says "
                    f"{'never' if b is None else f'{b:.4f} s'} (tolerance {tolerance_s:g} s)",
                    detail={"fault": w.name, "measure": measure, "wire_s": a, "history_s": b}))
    return Verdict("packet_timing", problems, {"comparison": rows, **wire.to_json()})


# The per-fault report's honest numbers, from the wire (``faults_report`` beside them).
BESIDE = ("longest_gap", "heal_to_all_paths")  # judged for agreement; longest_command is shown


@dataclass(slots=True)
class WireFaultNumbers:
    fault: int
    name: str
    longest_gap_s: float  # longest interval with no READ/WRITE completion overlapping it
    longest_command_s: float | None  # longest READ/WRITE in flight (unanswered: to the end)
    heal_to_all_paths_s: float | None  # every portal that carried I/O before, again


def wire_fault_numbers(pdus: list[WirePdu], windows: Iterable[FaultWindow], *,
                       wall_clock: float, start_ns: int) -> list[WireFaultNumbers]:
    """The honest per-fault numbers of ``harness.checks.faults_report``, from a capture."""
    if not wall_clock:
        raise HistoryError("history header has no wall clock; it cannot be lined up with a "
                           "capture (record it with this splitbrain)")
    done = completions(pdus)
    times = [c.time for c in done]
    first = pdus[0].time if pdus else 0.0
    last = pdus[-1].time if pdus else 0.0
    edges = [first, *times, max(last, times[-1] if times else last)]
    unanswered = _unanswered(pdus)
    out = []
    for f in windows:
        a = wall_clock + (f.start_ns - start_ns) / 1e9
        b = last if f.stop_ns is None else wall_clock + (f.stop_ns - start_ns) / 1e9
        gap = max((y - x for x, y in itertools.pairwise(edges) if x < b and y > a), default=0.0)
        spans = [c.time - c.sent for c in done if c.sent <= b and c.time >= a]
        spans += [last - sent for sent in unanswered if sent <= b]
        heal: float | None = None
        if f.stop_ns is not None:
            before = {c.path for c in done if c.time <= a}
            back = [next((c.time - b for c in done if c.path == p and c.sent >= b), None)
                    for p in sorted(before)]
            heal = None if not back or any(v is None for v in back) else \
                max(v for v in back if v is not None)
        out.append(WireFaultNumbers(f.fault, f.name, gap, max(spans, default=None), heal))
    return out


def _unanswered(pdus: list[WirePdu]) -> list[float]:
    """Send times of READs and WRITEs the capture never saw answered."""
    sent: dict[tuple[str, str, int], float] = {}
    for p in pdus:
        key = (p.initiator, p.path, p.itt)
        if p.to_target and p.opcode == SCSI_COMMAND and p.cdb_opcode in DATA_CDBS:
            sent[key] = p.time
        elif not p.to_target and p.completes:
            sent.pop(key, None)
    return sorted(sent.values())


def check_scenario_capture(pcap: str | os.PathLike[str],
                           history_path: str | os.PathLike[str],
                           reports: Iterable[Any], *, ports: Iterable[int] = (3260,),
                           tolerance_s: float = 0.01,
                           fault_windows: Iterable[FaultWindow] | None = None) -> Verdict:
    """The capture's numbers beside a scenario's ``FaultReport``s (one call per scenario).

    ``reports`` come from ``faults_report.per_fault_report`` on the same history
    (and the same ``fault_windows``, when given). A longest gap or heal time that
    differs by more than ``tolerance_s`` is a ``timing_disagrees`` problem; the
    rows (``stats["beside"]``) are what ``beside_lines`` prints.
    """
    from harness.workload.history_stream import outline

    out = outline(history_path)
    windows = list(out.faults if fault_windows is None else fault_windows)
    wire = wire_fault_numbers(read_pdus(pcap, ports=ports), windows,
                              wall_clock=out.header.wall_clock, start_ns=out.header.start_ns)
    by_fault = {w.fault: w for w in wire}
    problems: list[Problem] = []
    rows: list[dict[str, Any]] = []
    for r in reports:
        w = by_fault.get(r.fault)
        if w is None:
            continue
        for measure, hist, on_wire in (("longest_gap", r.longest_gap_s, w.longest_gap_s),
                                       ("longest_op", r.longest_op_s, w.longest_command_s),
                                       ("heal_to_all_paths", r.heal_to_all_paths_s,
                                        w.heal_to_all_paths_s)):
            rows.append({"fault": r.name, "measure": measure, "history_s": hist,
                         "wire_s": on_wire})
            if measure not in BESIDE or (hist is None and on_wire is None):
                continue
            if hist is None or on_wire is None or abs(hist - on_wire) > tolerance_s:
                problems.append(Problem(
                    "timing_disagrees",
                    f"{measure} of {r.name!r}: the history says "
                    f"{'never' if hist is None else f'{hist:.4f} s'}, the capture says "
                    f"{'never' if on_wire is None else f'{on_wire:.4f} s'} "
                    f"(tolerance {tolerance_s:g} s)",
                    detail={"fault": r.name, "measure": measure, "history_s": hist,
                            "wire_s": on_wire}))
    return Verdict("packet_faults", problems, {"beside": rows, "pcap": os.fspath(pcap),
                                               "tolerance_s": tolerance_s})


def beside_lines(verdict: Verdict) -> list[str]:
    """``check_scenario_capture``'s rows as a text table: history and wire side by side."""
    def num(v: float | None) -> str:
        return f"{'never':>9}" if v is None else f"{v:>9.4f}"

    lines = [f"{'fault':<34} {'measure':<18} {'history':>9} {'wire':>9}"]
    for row in verdict.stats.get("beside", []):
        lines.append(f"{row['fault'][:34]:<34} {row['measure']:<18} {num(row['history_s'])} "
                     f"{num(row['wire_s'])}")
    return lines
