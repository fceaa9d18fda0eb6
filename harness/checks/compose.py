"""All checkers over one run, composed (Jepsen's ``checker/compose``).

``check_run`` judges one history: the reads recorded during the run (register),
the timing against a budget, each fault's honest numbers and each episode of
overlapping faults judged outside the windows beyond redundancy (``faults_report``,
``episodes``)
and the reads against each other (``monotonic``) when the history's file is
given, and, when devices are given, the data read back
through every path (integrity) and the replicas compared with each other
(divergence). The result is a ``RunVerdict``: one ``Verdict`` per checker that
ran, valid only when all are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from harness.checks.divergence import ChunkReader, compare_replicas
from harness.checks.faults_report import fault_judgement, faults_verdict
from harness.checks.integrity import check_devices
from harness.checks.model import WriteIndex
from harness.checks.monotonic import check_read_monotonicity
from harness.checks.register import RegisterCheck
from harness.checks.timing import check_timing
from harness.checks.verdict import Problem, Verdict
from harness.workload.device import BlockDevice
from harness.workload.history import RecordedHistory

WHOLE_RUN_BUDGETS = ("io_pause", "io_pause_s", "caller_errors", "caller_errors_max")


@dataclass(slots=True)
class RunVerdict:
    history: str
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return all(v.valid for v in self.verdicts)

    @property
    def problems(self) -> list[Problem]:
        return [p for v in self.verdicts for p in v.problems]

    def verdict(self, checker: str) -> Verdict | None:
        return next((v for v in self.verdicts if v.checker == checker), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "valid": self.valid,
            "verdicts": [v.to_json() for v in self.verdicts],
            "problems": [{"checker": v.checker, **p.to_json()}
                         for v in self.verdicts for p in v.problems],
        }


async def check_run(
    history: RecordedHistory,
    *,
    name: str = "history",
    devices: dict[str, BlockDevice] | None = None,
    replicas: dict[str, ChunkReader] | None = None,
    budget: dict[str, float] | None = None,
    bin_s: float = 1.0,
    pcap: str | None = None,
    iscsi_ports: tuple[int, ...] = (3260,),
    wire_tolerance_s: float = 0.005,
    history_path: str | os.PathLike[str] | None = None,
) -> RunVerdict:
    """Run every checker that has what it needs (``faults``: when ``history_path`` is given)."""
    index = WriteIndex(history)
    result = RunVerdict(name)
    result.verdicts.append(RegisterCheck(history, index).check())
    if history_path is None:
        result.verdicts.append(check_timing(history, budget, bin_s=bin_s))
    else:  # per-fault measures are judged by the faults report, whole-run ones here
        whole_run = {k: v for k, v in (budget or {}).items() if k in WHOLE_RUN_BUDGETS}
        judgement = fault_judgement(history_path, budgets=budget)
        result.verdicts.append(check_timing(history, whole_run, bin_s=bin_s,
                                            expected=judgement.expected_spans))
        reports = judgement.reports
        result.verdicts.append(faults_verdict(reports, judgement))
        result.verdicts.append(check_read_monotonicity(history_path))
        if pcap is not None:
            from harness.checks.packet_timing import check_scenario_capture

            result.verdicts.append(check_scenario_capture(
                pcap, history_path, reports, ports=iscsi_ports, tolerance_s=wire_tolerance_s))
    if pcap is not None:
        from harness.checks.packet_timing import compare_with_history, read_pdus, wire_timing
        from harness.checks.timing import measure

        wire = wire_timing(read_pdus(pcap, ports=iscsi_ports), history)
        result.verdicts.append(compare_with_history(wire, measure(history, bin_s=bin_s),
                                                    tolerance_s=wire_tolerance_s))
    if devices:
        result.verdicts.append(await check_devices(history, devices))
    if replicas:
        h = history.header
        result.verdicts.append(await compare_replicas(replicas, h.size, h.block_size, history))
    return result
