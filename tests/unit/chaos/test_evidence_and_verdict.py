"""Evidence and the scenario verdict on hand-built histories: a fault that changed nothing
is a failed injection; split brain is reported in those words, silent merges fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.chaos.evidence import FaultEvidence, judge
from harness.chaos.runner import RunOutcome
from harness.chaos.scenario import FaultTemplate, Scenario, ScenarioError, resolve
from harness.chaos.scenarios import by_name
from harness.chaos.verdict import scenario_result
from harness.checks.compose import RunVerdict
from harness.checks.results import ResultWord
from harness.checks.verdict import Problem, Verdict
from harness.faults.nemesis import FaultSpec, Schedule, Step
from harness.lab.inventory import load
from harness.workload.history import History, HistoryHeader, load_history
from harness.workload.history_stream import StreamedHistory
from harness.workload.writers import WorkloadResult

LAB = Path(__file__).resolve().parents[3] / "fixtures" / "inventories" / "lab.toml"
S = 1_000_000_000


# Every test reads its history both ways: joined in memory, and streamed (what a chaos run
# uses, so that a nightly's history never has to fit in memory as one object per operation).
LOADERS = {"recorded": load_history, "streamed": StreamedHistory}
_load = load_history


@pytest.fixture(params=sorted(LOADERS), autouse=True)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f"{__name__}._load", LOADERS[request.param])


@pytest.fixture(scope="module")
def lab():  # type: ignore[no-untyped-def]
    inv = load(LAB)
    return inv, inv.devices["HA1"]


def history(tmp_path: Path, build) -> object:  # type: ignore[no-untyped-def]
    header = HistoryHeader(seed=1, generation=7, block_size=4096, logical_block_size=512,
                           num_blocks=1024, device="t")
    with History(tmp_path / "h.jsonl", header) as h:
        build(h)
    return _load(tmp_path / "h.jsonl")


def write(h: History, at: int, took: int, path: str) -> None:
    op = h.invoke(1, "write", 0, 8, writer=0, seq=at, time_ns=at)
    h.complete(op, "ok", invoke_ns=at, path=path, time_ns=at + took)


def test_a_path_cut_is_proved_by_mpio_taking_the_path_down(tmp_path: Path, lab) -> None:
    inv, dev = lab
    spec = FaultSpec.of("cut", "iscsi1/SWS-Store1")

    def build(h: History) -> None:
        h.fault_start("cut iscsi1/SWS-Store1 [0]", time_ns=10 * S, action="cut",
                      target=spec.target)
        h.path_event("Demo1->iscsi1/SWS-Store1", "failed", time_ns=10 * S + 20_000_000)
        h.fault_stop("cut iscsi1/SWS-Store1 [0]", time_ns=13 * S)

    (ev,) = judge([("cut iscsi1/SWS-Store1 [0]", Step(1.0, 3.0, spec))],
                  history(tmp_path, build), {}, inv, dev)
    assert ev.proved and "went failed 0.02 s after the inject" in ev.text


def test_a_fault_that_changed_nothing_is_not_proved(tmp_path: Path, lab) -> None:
    inv, dev = lab
    specs = [FaultSpec.of("cut", "iscsi1/SWS-Store1"), FaultSpec.of("delay", "sync/SWS-Store1/HA1",
                                                                    delay_ms=30.0),
             FaultSpec.of("disk-eio", "SWS-Store2", iqn="x", lun=0, count=8)]

    def build(h: History) -> None:
        for i, s in enumerate(specs):
            name = f"{s.action} {s.target} [{i}]"
            h.fault_start(name, time_ns=(10 + 10 * i) * S, action=s.action, target=s.target)
            write(h, (11 + 10 * i) * S, 2_000_000, "Demo1->iscsi1/SWS-Store2")  # fast, ok
            h.path_event("Demo1->iscsi2/SWS-Store2", "failed", time_ns=(11 + 10 * i) * S)
            h.fault_stop(name, time_ns=(13 + 10 * i) * S)

    named = [(f"{s.action} {s.target} [{i}]", Step(1.0, 3.0, s)) for i, s in enumerate(specs)]
    evidence = judge(named, history(tmp_path, build), {}, inv, dev)
    assert [e.proved for e in evidence] == [False, False, False]
    assert all(e.text.startswith("no evidence that") for e in evidence)


def test_a_disk_fault_is_proved_by_the_operations_it_failed(tmp_path: Path, lab) -> None:
    inv, dev = lab
    spec = FaultSpec.of("disk-eio", "SWS-Store2", iqn="x", lun=0, count=8)

    def build(h: History) -> None:
        h.fault_start("e [0]", time_ns=10 * S, action="disk-eio", target=spec.target)
        write(h, 10 * S + 1, 1_000_000, "Demo1->iscsi1/SWS-Store1")  # ok: not evidence
        for i in range(3):
            op = h.invoke(1, "read", 8 * i, 8, time_ns=11 * S + i)
            h.complete(op, "fail", invoke_ns=11 * S + i, path="Demo1->iscsi1/SWS-Store2",
                       error=f"MEDIUM ERROR {i}", time_ns=11 * S + i + 5)
        h.fault_stop("e [0]", time_ns=13 * S)

    (ev,) = judge([("e [0]", Step(1.0, 3.0, spec))], history(tmp_path, build), {}, inv, dev)
    assert ev.proved and "3 operations failed during it (first: MEDIUM ERROR 0)" in ev.text


HUNG = FaultSpec.of("disk-slow", "SWS-Store2", iqn="x", lun=0, delay_ms=600_000.0)


def test_a_hung_disk_is_proved_by_its_replica_taken_out(tmp_path: Path, lab) -> None:
    inv, dev = lab

    def build(h: History) -> None:
        h.fault_start("hang [0]", time_ns=10 * S, action="disk-slow", target=HUNG.target)
        write(h, 10 * S + 1, 1_000_000, "Demo1->iscsi1/SWS-Store2")  # fast: not evidence
        h.replica_state("HA1@SWS-Store2", "not synchronized", time_ns=11 * S)
        h.fault_stop("hang [0]", time_ns=19 * S)

    (ev,) = judge([("hang [0]", Step(1.0, 9.0, HUNG))], history(tmp_path, build), {}, inv, dev)
    assert ev.proved and "went not synchronized 1.00 s after the inject" in ev.text


def test_a_hung_disk_the_device_waited_on_is_proved_by_the_io_it_held(
        tmp_path: Path, lab) -> None:
    inv, dev = lab

    def build(h: History) -> None:
        h.fault_start("hang [0]", time_ns=10 * S, action="disk-slow", target=HUNG.target)
        write(h, 10 * S + 1, 1_000_000, "Demo1->iscsi1/SWS-Store1")
        write(h, 10 * S + 2, 9 * S, "Demo1->iscsi1/SWS-Store1")  # released at the heal
        h.fault_stop("hang [0]", time_ns=19 * S)

    (ev,) = judge([("hang [0]", Step(1.0, 9.0, HUNG))], history(tmp_path, build), {}, inv, dev)
    assert ev.proved and "1 operations in flight during it were held 9.00-9.00 s" in ev.text


def test_a_hung_disk_that_held_nothing_is_not_proved(tmp_path: Path, lab) -> None:
    inv, dev = lab

    def build(h: History) -> None:
        h.fault_start("hang [0]", time_ns=10 * S, action="disk-slow", target=HUNG.target)
        write(h, 10 * S + 1, 1_000_000, "Demo1->iscsi1/SWS-Store2")
        write(h, 12 * S, 4 * S, "Demo1->iscsi1/SWS-Store1")  # slow, but under half of 9 s
        h.fault_stop("hang [0]", time_ns=19 * S)

    (ev,) = judge([("hang [0]", Step(1.0, 9.0, HUNG))], history(tmp_path, build), {}, inv, dev)
    assert not ev.proved and ev.text.startswith("no evidence that")


def test_a_client_crash_is_proved_by_the_operations_it_abandoned(tmp_path: Path, lab) -> None:
    from harness.workload.history import ABANDONED

    inv, dev = lab
    spec = FaultSpec.of("client-crash", "Demo1")

    def build(h: History) -> None:
        h.fault_start("c [0]", time_ns=10 * S, action="client-crash", target="Demo1")
        for i in range(2):
            op = h.invoke(1, "write", 8 * i, 8, writer=0, seq=i, time_ns=9 * S)
            h.complete(op, "info", invoke_ns=9 * S, error=ABANDONED, time_ns=10 * S + i)
        op = h.invoke(2, "write", 64, 8, writer=0, seq=5, time_ns=9 * S)
        h.complete(op, "info", invoke_ns=9 * S, error="timeout", time_ns=10 * S + 5)
        h.fault_stop("c [0]", time_ns=12 * S)

    (ev,) = judge([("c [0]", Step(1.0, 2.0, spec))], history(tmp_path, build), {}, inv, dev)
    assert ev.proved and "2 operations in flight were abandoned when Demo1 crashed" in ev.text

    def idle(h: History) -> None:
        h.fault_start("c [0]", time_ns=10 * S, action="client-crash", target="Demo1")
        write(h, 10 * S + 1, 1_000_000, "Demo2->iscsi1/SWS-Store1")
        h.fault_stop("c [0]", time_ns=12 * S)

    (ev,) = judge([("c [0]", Step(1.0, 2.0, spec))], history(tmp_path, idle), {}, inv, dev)
    assert not ev.proved and "operations the crashed client had in flight abandoned" in ev.text


def test_client_roles_resolve_to_the_cluster_nodes(lab) -> None:
    inv, dev = lab
    sc = Scenario("x", "double", "x", (FaultTemplate.of(1, 2, "client-crash", "client:1"),))
    _, schedule = resolve(sc, inv, dev)
    assert [s.spec.target for s in schedule.steps] == ["Demo2"]
    with pytest.raises(ScenarioError, match="2 cluster node"):
        resolve(Scenario("x", "double", "x", (FaultTemplate.of(1, 2, "client-crash",
                                                               "client:2"),)), inv, dev)


def test_a_delay_is_proved_by_the_writes_that_crossed_it(tmp_path: Path, lab) -> None:
    inv, dev = lab
    spec = FaultSpec.of("delay", "sync/SWS-Store1/HA1", delay_ms=30.0)

    def build(h: History) -> None:
        h.fault_start("d [0]", time_ns=10 * S, action="delay", target=spec.target)
        for i in range(5):
            write(h, 10 * S + i * 100_000_000, 35_000_000, "Demo1->iscsi1/SWS-Store1")
        h.fault_stop("d [0]", time_ns=13 * S)

    (ev,) = judge([("d [0]", Step(1.0, 3.0, spec))], history(tmp_path, build), {}, inv, dev)
    assert ev.proved and "median 35.0 ms" in ev.text


def outcome(tmp_path: Path, problems: list[Problem], after: dict[str, str],
            split: bool = False) -> RunOutcome:
    verdict = RunVerdict("h", [Verdict("run", []),
                               Verdict("divergence", [p for p in problems
                                                      if p.kind == "split_brain"],
                                       {"split_brain": split}),
                               Verdict("integrity", [p for p in problems
                                                     if p.kind != "split_brain"])])
    steps = (Step(1.5, 3.0, FaultSpec.of("blackhole", "sync/SWS-Store1/HA1")),)
    return RunOutcome(tmp_path, verdict, Schedule(steps, 5), WorkloadResult(),
                      meta={"replicas_after": after, "elapsed_s": 9.0, "started_wall": 1.0})


class Sut:
    def __init__(self, inv: object) -> None:
        self.inventory = inv


SYNC = {"SWS-Store1": "synchronized", "SWS-Store2": "synchronized"}
APART = {"SWS-Store1": "not synchronized", "SWS-Store2": "not synchronized"}


def ev(proved: bool) -> list[FaultEvidence]:
    spec = FaultSpec.of("blackhole", "sync/SWS-Store1/HA1")
    return [FaultEvidence("blackhole sync/SWS-Store1/HA1 [0]", spec, proved,
                          "SWS-Store1 reports its sync link to its partner lost" if proved
                          else f"no evidence that {spec} took effect: expected ...")]


def test_a_fault_without_evidence_fails_the_scenario_however_clean_the_run(
        tmp_path: Path, lab) -> None:
    inv, dev = lab
    r = scenario_result(by_name("sync-blackhole"), outcome(tmp_path, [], SYNC), ev(False), [],
                        dev, Sut(inv))
    assert r.result is ResultWord.FAILED and r.reason.startswith("failed injection: no evidence")
    ok = scenario_result(by_name("sync-blackhole"), outcome(tmp_path, [], SYNC), ev(True), [],
                         dev, Sut(inv))
    assert ok.result is ResultWord.SUCCESS and ok.kind == "chaos" and ok.category == "Chaos"
    assert ok.labels["family"] == "sync-link" and ok.labels["seed"] == "5"


SB = Problem("split_brain", "split brain: bytes 0+4096: each replica acknowledged writes ...")


def test_split_brain_kept_apart_is_a_warning_in_those_words(tmp_path: Path, lab) -> None:
    inv, dev = lab
    r = scenario_result(by_name("split-brain-heal-late"),
                        outcome(tmp_path, [SB], APART, split=True), ev(True),
                        ["marked HA1@SWS-Store1 synchronized"], dev, Sut(inv))
    assert r.result is ResultWord.WARNING and r.reason.startswith("split brain")
    assert "documented risk" in r.reason


def test_split_brain_merged_silently_fails(tmp_path: Path, lab) -> None:
    inv, dev = lab
    lost = Problem("lost", "lost: write w1#3 acknowledged, block holds w2#9")
    r = scenario_result(by_name("split-brain-heal-late"),
                        outcome(tmp_path, [SB, lost], SYNC, split=True), ev(True), [], dev,
                        Sut(inv))
    assert r.result is ResultWord.FAILED and "merged silently" in r.reason


def test_split_brain_where_the_strategy_forbids_it_fails(tmp_path: Path, lab) -> None:
    inv, dev = lab
    r = scenario_result(by_name("sync-blackhole"), outcome(tmp_path, [SB], APART, split=True),
                        ev(True), [], dev, Sut(inv))
    assert r.result is ResultWord.FAILED and r.reason.startswith("split brain")


def test_roles_resolve_to_the_lab_names(lab) -> None:
    inv, dev = lab
    scenario = Scenario("t", "mpio", "", (FaultTemplate.of(1, 2, "cut", "paths:secondary"),
                                           FaultTemplate.of(1, 2, "kill", "primary"),
                                           FaultTemplate.of(1, 2, "blackhole", "heartbeat"),
                                           FaultTemplate.of(1, 2, "disk-eio", "secondary")))
    faults, schedule = resolve(scenario, inv, dev)
    targets = [s.spec.target for s in schedule.steps]
    assert targets == ["iscsi1/SWS-Store2", "iscsi2/SWS-Store2", "SWS-Store1",
                       "heartbeat/SWS-Store1/HA1", "SWS-Store2"]
    assert faults.path_lost[schedule.steps[0].spec] == ("iscsi1", "SWS-Store2")
    disk = schedule.steps[-1].spec.kwargs
    assert disk["iqn"].endswith("sws-store2-ha1partner") and disk["count"] == dev.size // 512


def test_timing_over_budget_in_the_nightly_is_a_finding_not_a_warning(
        tmp_path: Path, lab) -> None:
    """The nemesis's availability is judged by episodes and beyond-redundancy windows
    already (harness.checks.episodes): what is left over budget is a real defect."""
    from harness.chaos.nightly import nightly_scenario

    inv, dev = lab
    slow = Problem("over_budget", "over budget: episode 3 (2 faults: cut iscsi1/SWS-Store2 [5] "
                                  ".. kill SWS-Store1 [6]): no I/O completed for 14 s")
    nemesis = nightly_scenario(dev, 60)
    r = scenario_result(nemesis, outcome(tmp_path, [slow], SYNC), ev(True), [], dev, Sut(inv))
    assert r.result is ResultWord.FAILED and "no I/O completed for 14 s" in r.reason
    single = scenario_result(by_name("primary-kill"), outcome(tmp_path, [slow], SYNC), ev(True),
                             [], dev, Sut(inv))
    assert single.result is ResultWord.FAILED  # one fault: its budget applies as written


def test_errors_beyond_redundancy_are_told_in_numbers_on_success(tmp_path: Path, lab) -> None:
    from harness.chaos.nightly import nightly_scenario

    inv, dev = lab
    out = outcome(tmp_path, [], SYNC)
    window = {"from_s": 47.426, "to_s": 60.328, "caller_errors": 10609,
              "causes": ["kill SWS-Store1 [10]", "disk-eio SWS-Store2 [11]"]}
    out.verdict.verdicts.append(Verdict("faults", [], {"beyond_redundancy": [window]}))
    r = scenario_result(nightly_scenario(dev, 60), out, ev(True), [], dev, Sut(inv))
    assert r.result is ResultWord.SUCCESS
    assert "10609 caller error(s)" in r.reason and "47.4-60.3 s" in r.reason
    assert r.numbers["beyond_redundancy_windows"] == 1
    shown = [e.text for e in r.evidence if e.title.startswith("beyond redundancy")]
    assert shown and "disk-eio SWS-Store2 [11]" in shown[0]


def test_an_outage_the_scenario_calls_correct_is_not_a_timing_failure(
        tmp_path: Path, lab) -> None:
    inv, dev = lab
    slow = Problem("over_budget", "over budget: kill SWS-Store1 [0]: no I/O completed for 7 s")
    r = scenario_result(by_name("total-blackout"), outcome(tmp_path, [slow], SYNC), ev(True),
                        [], dev, Sut(inv))
    assert r.result is ResultWord.SUCCESS and "outage" in r.reason and "7 s" in r.reason
    lost = Problem("lost", "lost: write w1#3 acknowledged, block holds w2#9")
    r = scenario_result(by_name("total-blackout"), outcome(tmp_path, [slow, lost], SYNC),
                        ev(True), [], dev, Sut(inv))
    assert r.result is ResultWord.FAILED


def test_in_the_nightly_a_data_problem_explains_later_faults_without_evidence(
        tmp_path: Path, lab) -> None:
    from harness.chaos.nightly import nightly_scenario

    inv, dev = lab
    diverged = Problem("diverged", "replicas diverged: 6 blocks at byte 0: ...")
    r = scenario_result(nightly_scenario(dev, 60), outcome(tmp_path, [diverged], APART),
                        ev(False), [], dev, Sut(inv))
    assert r.result is ResultWord.FAILED and r.reason.startswith("replicas diverged")
    assert "1 fault(s) without evidence" in r.reason


def test_errors_returned_to_the_caller_fail_the_nightly_too(tmp_path: Path, lab) -> None:
    from harness.chaos.nightly import nightly_scenario

    inv, dev = lab
    errs = Problem("over_budget", "over budget: the whole run's caller_errors is 4; budget "
                                  "caller_errors_max = 0")
    r = scenario_result(nightly_scenario(dev, 60), outcome(tmp_path, [errs], SYNC), ev(True),
                        [], dev, Sut(inv))
    assert r.result is ResultWord.FAILED and "caller_errors" in r.reason


class _Shown:
    """A real host's fault as the probe sees it: ``effect()`` says what shows, once it does."""

    def __init__(self, after: int, text: str) -> None:
        self.calls, self.after, self.text = 0, after, text

    def effect(self) -> str | None:
        self.calls += 1
        return self.text if self.calls > self.after else None


def test_a_real_hosts_fault_is_proved_by_what_it_shows_there(lab) -> None:
    """A fault with ``effect()`` (a real host's) is probed through it, not the lab's readers;
    a composite only once every part shows it; one that never shows anything stays
    unproved (and the history then decides)."""
    from harness.chaos.evidence import LiveProbe
    from harness.faults.fault import CompositeFault

    inv, dev = lab
    probe = LiveProbe(inv, dev, node_state=None, ha_status=None)
    spec = FaultSpec.of("blackhole", "heartbeat/SWS-Store1/HA1")
    one = _Shown(2, "12 packet(s) dropped by the fault's rules")
    probe.hook("one", Step(0.0, 1.0, spec), one)
    a, b = _Shown(0, "a dropped"), _Shown(3, "b dropped")
    both = CompositeFault.__new__(CompositeFault)
    both.parts = [a, b]  # type: ignore[list-item]
    probe.hook("both", Step(0.0, 1.0, spec), both)
    probe.hook("never", Step(0.0, 0.5, spec), _Shown(10**6, "x"))
    probe.join()
    assert probe.seen["one"].proved and probe.seen["one"].text == one.text
    assert probe.seen["both"].text == "a dropped; b dropped" and b.calls == 4
    assert "never" not in probe.seen


def test_replicas_a_real_site_could_not_read_are_part_of_a_split_brain_kept_apart(
        tmp_path: Path, lab) -> None:
    """On a real site the replicas are read through their own paths, which a replica kept
    Not synchronized does not serve: under a split brain the device kept apart that is a
    consequence (Warning); without one it is a problem of the run (Failed)."""
    inv, dev = lab
    unread = Problem("replicas_not_compared", "replicas of HA1 not compared: not every "
                                              "replica is Synchronized")
    r = scenario_result(by_name("split-brain-heal-late"),
                        outcome(tmp_path, [SB, unread], APART, split=True), ev(True), [],
                        dev, Sut(inv))
    assert r.result is ResultWord.WARNING and r.reason.startswith("split brain")
    r = scenario_result(by_name("sync-blackhole"), outcome(tmp_path, [unread], APART),
                        ev(True), [], dev, Sut(inv))
    assert r.result is ResultWord.FAILED and "replicas_not_compared" in r.reason


def test_a_real_site_shows_a_split_brain_kept_apart_by_states_and_missed_reads(
        tmp_path: Path, lab) -> None:
    """A real site cannot read replicas its device keeps apart: every replica kept Not
    synchronized plus reads that missed acknowledged writes is the split brain (Warning
    where allowed, Failed where the strategy must prevent it); either alone is not."""
    inv, dev = lab
    real = Sut(inv)
    real.lab = None  # type: ignore[attr-defined]
    missed = Problem("stale_read", "stale_read: read op 449 via Node1->iscsi/Store1 returned "
                                   "initial content after an ok write to it completed")
    kept = Problem("not_synchronized", "replicas of HA1 not Synchronized")
    r = scenario_result(by_name("split-brain-heal-early"),
                        outcome(tmp_path, [kept, missed], APART), ev(True), [], dev, real)
    assert r.result is ResultWord.WARNING and "kept every replica Not synchronized" in r.reason
    r = scenario_result(by_name("sync-blackhole"), outcome(tmp_path, [kept, missed], APART),
                        ev(True), [], dev, real)
    assert r.result is ResultWord.FAILED and r.reason.startswith("split brain")
    for problems, after in (([kept], APART), ([missed], SYNC)):
        r = scenario_result(by_name("split-brain-heal-early"),
                            outcome(tmp_path, problems, after), ev(True), [], dev, real)
        assert r.result is ResultWord.FAILED and "kept every replica" not in r.reason
    lab_sut = Sut(inv)
    lab_sut.lab = object()  # type: ignore[attr-defined]  # the lab compares images instead
    r = scenario_result(by_name("split-brain-heal-early"),
                        outcome(tmp_path, [kept, missed], APART), ev(True), [], dev, lab_sut)
    assert r.result is ResultWord.FAILED
