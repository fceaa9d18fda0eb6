"""The main job (``splitbrain run``): one chaos run against a lab, from bring-up to verdict.

The data flow is DESIGN.md's "chaos test", end to end on one HA device:

1. the lab of the inventory is brought up (or one already up is reused, after
   healing whatever its fault journal still holds open and waiting until its
   replicas are Synchronized);
2. the verifiable workload writes stamped blocks over MPIO (every path to both
   replicas, as a cluster node's initiator) into ``history.jsonl``, while the
   seeded nemesis plays a one-at-a-time schedule (``harness.report.chaos_plan``)
   through the lab's fault injector; every fault, path state change and replica
   state lands in the same history;
3. after the last heal the run waits, bounded by the inventory's ``resync_s``,
   until both replicas are Synchronized; then every checker runs: the reads of
   the run (register), integrity read back through every path on its own,
   divergence and split brain between the replicas' image files, and timing
   against the inventory's budgets. ``verdict.json``, ``summary.txt`` and the
   timeline plot are written next to the history.

Whatever ends the run (a problem, an error, Ctrl-C, SIGTERM), every fault in
the lab's journal is healed and a lab the run started is taken down (unless
``keep_lab``); a heal that fails is itself a problem. Problems of the run itself
(a replica that never resynchronized, a fault that could not be injected or
healed, a path that cannot be read after heal) sit in a ``run`` verdict beside
the checkers' verdicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.checks.compose import RunVerdict
from harness.checks.verdict import Problem, Verdict
from harness.errors import SplitbrainError
from harness.faults.fault import Fault, heal_live
from harness.faults.guard import heal_journal
from harness.faults.journal import FaultJournal
from harness.faults.lab_faults import LabFaults
from harness.faults.nemesis import FaultSpec, Schedule
from harness.lab.backends import Lab, lab_for, open_lab
from harness.lab.inventory import HaDevice, HostRole, Inventory, load
from harness.lab.loopback import replica_alias
from harness.lab.node_process import process_start_ticks
from harness.lab.state import default_state_dir
from harness.report.chaos_plan import (
    FAULT_KINDS,
    DeviceFaults,
    chaos_schedule,
    choose_device,
    device_faults,
    kind_of,
)
from harness.workload.history import History
from harness.workload.writers import WorkloadResult

POLL_S = 0.2  # replica state sampling period


class RunError(SplitbrainError):
    """The run cannot start or go on (no lab inventory, a lab in a bad state...)."""


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM ended the run; faults were healed on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class RunSettings:
    inventory: Path
    seed: int
    duration_s: float = 20.0
    output: Path | None = None
    keep_lab: bool = False
    state_dir: Path | None = None
    device: str | None = None
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    max_faults: int | None = None
    writers: int = 4
    queue_depth: int = 4
    budget_profile: str = "default"


@dataclass
class RunOutcome:
    """What a run found, and where it wrote it."""

    output: Path
    verdict: RunVerdict
    schedule: Schedule
    workload: WorkloadResult | None = None
    lab_started: bool = False
    lab_dir: Path | None = None
    heals: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.verdict.valid


def default_output(seed: int) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path("reports") / f"run-{stamp}-{seed}"


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGINT) raise ``RunInterrupted`` in the main thread while active."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise RunInterrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM are ignored while active (teardown: heal and lab down finish)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


class ReplicaWatch:
    """Samples the device's replica states from the lab and records each change."""

    def __init__(self, lab: Lab, alias: str, hosts: list[str], history: History) -> None:
        self.lab, self.alias, self.hosts, self.history = lab, alias, hosts, history
        self.last: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="replica-watch", daemon=True)

    def sample(self) -> dict[str, str]:
        try:
            states = self.lab.ha_states().get(self.alias, {})
        except (SplitbrainError, OSError):
            states = {}
        now = {h: str(states.get(h, "down")).lower() for h in self.hosts}
        for host, state in now.items():
            if self.last.get(host) != state:
                self.history.replica_state(f"{self.alias}@{host}", state, host=host)
        self.last = now
        return now

    def synchronized(self) -> bool:
        return all(s == "synchronized" for s in self.sample().values())

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            self.sample()

    def __enter__(self) -> ReplicaWatch:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class FaultLog:
    """The nemesis's recorder: each fault's record says its kind, lost paths and budget."""

    def __init__(self, history: History, faults: DeviceFaults, paths: dict[str, tuple[str, str]]):
        self.history, self.faults, self.paths = history, faults, paths  # path -> (net, host)

    def fault_start(self, name: str, *, time_ns: int | None = None, **attrs: Any) -> int:
        spec = FaultSpec.of(attrs["action"], attrs["target"], **attrs.get("params", {}))
        kind = kind_of(self.faults, spec)
        hosts = self.faults.hosts_lost.get(spec, ())
        cut = self.faults.path_lost.get(spec)
        lost = sorted(p for p, where in self.paths.items() if where == cut or where[1] in hosts)
        budget = "node_failover_s" if kind == "secondary-kill" else "path_failover_s"
        return self.history.fault_start(
            name, time_ns=time_ns, kind=kind, paths=lost, budget=budget, **attrs
        )

    def fault_stop(self, name: str, *, time_ns: int | None = None, **attrs: Any) -> None:
        self.history.fault_stop(name, time_ns=time_ns, **attrs)


class ChaosRun:
    """One run of the main job; ``execute`` does everything and always cleans up."""

    def __init__(self, settings: RunSettings, out: TextIO | None = None) -> None:
        self.settings = settings
        self.out = out
        self.inventory: Inventory = load(settings.inventory)
        if self.inventory.lab is None:
            raise RunError(
                f"{self.inventory.path} has no [lab] table: `splitbrain run` drives a lab; "
                "pass a lab inventory with --inventory (the default is the bundled lab)"
            )
        if self.inventory.lab.backend != "loopback":
            raise RunError(
                f"{self.inventory.path}: lab.backend is {self.inventory.lab.backend!r}; "
                "`splitbrain run` drives the loopback lab (its initiator connects from this "
                "namespace); use an inventory with backend = \"loopback\""
            )
        if settings.duration_s <= 0:
            raise RunError(f"--duration {settings.duration_s:g} must be positive (seconds)")
        self.device: HaDevice = choose_device(self.inventory, settings.device)
        self.budget = dict(self.inventory.budget(settings.budget_profile).limits)
        self.output = Path(settings.output or default_output(settings.seed))
        self.state_dir = Path(
            settings.state_dir
            or self.inventory.lab.state_dir
            or default_state_dir(self.inventory.site.name)
        )
        self.lab: Lab | None = None
        self.started = False  # this run takes the lab down after (unless keep_lab)
        self.fresh = False  # this run brought the lab up: its disks hold zeros
        self.run_problems: list[Problem] = []
        self.meta: dict[str, Any] = {}

    def say(self, text: str) -> None:
        if self.out is not None:
            print(text, file=self.out, flush=True)

    # -- the whole run -----------------------------------------------------------------------

    def plan(self, links: list[str] | None = None) -> tuple[DeviceFaults, Schedule]:
        """The device's faults and the seeded schedule (the same for the same seed)."""
        faults = device_faults(self.inventory, self.device, links=links)
        schedule = chaos_schedule(
            faults,
            self.settings.fault_kinds,
            seed=self.settings.seed,
            duration_s=self.settings.duration_s,
            max_faults=self.settings.max_faults,
        )
        return faults, schedule

    def execute(self) -> RunOutcome:
        self._prepare_output()
        t_wall, t0 = time.time(), time.monotonic_ns()
        heals: list[str] = []
        with signals_interrupt():
            try:
                lab = self._lab_up()
                faults, schedule = self.plan(list(lab.state.load().links))
                (self.output / "schedule.json").write_text(
                    json.dumps(schedule.to_json(), indent=1) + "\n", encoding="utf-8"
                )
                self._say_schedule(schedule)
                self.meta.update(
                    started_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_wall)),
                    seed=self.settings.seed,
                    duration_s=self.settings.duration_s,
                    site=self.inventory.site.name,
                    inventory=str(self.inventory.path),
                    device=self.device.alias,
                    purpose=self.device.purpose.value,
                    size=self.device.size,
                    fault_kinds=list(self.settings.fault_kinds),
                )
                from harness.report.run_phases import RunPhases

                phase = RunPhases(self, lab, faults)
                workload = asyncio.run(phase.chaos(schedule))
                verdict = asyncio.run(phase.check())
            finally:
                with signals_ignored():  # a second Ctrl-C must not leave a fault behind
                    heals = self._teardown()
        for line in heals:
            if line.startswith("FAILED: "):
                self.run_problems.append(Problem("heal_failed", line.removeprefix("FAILED: ")))
        self.meta["elapsed_s"] = round((time.monotonic_ns() - t0) / 1e9, 3)
        # the run's own problems (no resync, a failed heal) first: they explain the others
        verdict.verdicts.insert(0, Verdict("run", self.run_problems, {"heals": heals}))
        return RunOutcome(
            self.output, verdict, schedule, workload, self.started, self.state_dir, heals,
            self.meta,
        )

    def _prepare_output(self) -> None:
        if (self.output / "verdict.json").exists():
            raise RunError(
                f"{self.output} already holds a run's verdict.json; choose another --output"
            )
        try:
            self.output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(
                f"cannot create the output directory {self.output}: {exc.strerror}; "
                "choose a writable --output"
            ) from None

    def _say_schedule(self, schedule: Schedule) -> None:
        if not schedule.steps:
            self.say(
                f"faults: none scheduled (seed {self.settings.seed}, "
                f"{self.settings.duration_s:g} s; kinds {', '.join(self.settings.fault_kinds)})"
            )
        for step in schedule.steps:
            self.say(
                f"fault plan: at {step.at_s:6.2f} s for {step.duration_s:5.2f} s: {step.spec}"
            )

    # -- the lab -----------------------------------------------------------------------------

    def _lab_up(self) -> Lab:
        existing = open_lab(self.state_dir)
        if existing.state.exists() and existing.running():
            record = existing.state.load()
            if Path(record.inventory).resolve() != Path(self.inventory.path).resolve():
                raise RunError(
                    f"the lab up at {self.state_dir} runs {record.inventory}, not "
                    f"{self.inventory.path}; take it down (`splitbrain lab down`) or pass "
                    "its inventory"
                )
            dead = [h for h, n in record.nodes.items() if not n.alive]
            if dead:
                raise RunError(
                    f"the lab at {self.state_dir} is up but node(s) {', '.join(dead)} are not "
                    "running; run `splitbrain heal` or `splitbrain lab down` first"
                )
            self.lab = existing
            owner = record.extra.get("owner")
            # a lab whose owning run was killed: this run takes it over (and down after)
            self.started = bool(owner) and process_start_ticks(int(owner["pid"])) != owner.get(
                "start_ticks"
            )
            self.meta["lab"] = "taken over from a killed run" if self.started else "reused"
            leftovers = heal_journal(FaultJournal(existing.state.journal_file))
            self.say(
                (f"lab: taking over the lab at {self.state_dir} left by a killed run "
                 f"(pid {owner['pid']})" if self.started and owner
                 else f"lab: reusing the lab already up at {self.state_dir}")
                + (f"; healed {len(leftovers)} fault(s) left open" if leftovers else "")
            )
            for o in leftovers:
                if not o.healed:
                    raise RunError(
                        f"a leftover fault of the lab at {self.state_dir} cannot be healed "
                        f"({o.kind} {o.target}: {o.error}); fix it, then run again"
                    )
            existing.wait_synchronized([self.device.alias], self.resync_deadline())
            return existing
        lab = lab_for(self.inventory, self.state_dir)
        # down() in teardown even if up() is interrupted
        self.lab, self.started, self.fresh = lab, True, True
        self.meta["lab"] = "started by this run"
        t0 = time.monotonic_ns()
        lab.up(self.inventory, owner_pid=os.getpid())
        self.say(
            f"lab: started {self.inventory.site.name!r} at {self.state_dir} "
            f"in {(time.monotonic_ns() - t0) / 1e9:.1f} s (every replica Synchronized)"
        )
        return lab

    def resync_deadline(self) -> float:
        return float(self.budget.get("resync_s", 120.0))

    def wait_synchronized(self, watch: ReplicaWatch) -> float | None:
        """Seconds until both replicas are Synchronized; None (a problem) at the deadline."""
        deadline = self.resync_deadline()
        t0 = time.monotonic_ns()
        try:
            Retrying(
                stop=stop_after_delay(deadline),
                wait=wait_fixed(POLL_S),
                retry=retry_if_result(lambda ok: not ok),
            )(watch.synchronized)
        except RetryError:
            self.run_problems.append(
                Problem(
                    "not_synchronized",
                    f"replicas of {self.device.alias} not Synchronized {deadline:g} s after the "
                    f"last heal (budget resync_s): {watch.last}",
                    detail={"states": dict(watch.last), "deadline_s": deadline},
                )
            )
            return None
        return (time.monotonic_ns() - t0) / 1e9

    def build_fault(self) -> Callable[[FaultSpec], Fault]:
        assert self.lab is not None
        injector = LabFaults(self.lab.state.root)
        return injector.build

    def image_files(self) -> dict[str, Path]:
        """Each replica's image file in the lab (``<alias>@<host>`` -> path)."""
        assert self.lab is not None
        return {
            f"{self.device.alias}@{r.host}": self.lab.state.node_dir(r.host)
            / "data"
            / f"{replica_alias(self.device, r.host)}.img"
            for r in sorted(self.device.replicas, key=lambda r: r.priority)
        }

    def cluster_node(self) -> str:
        nodes = self.inventory.hosts_with_role(HostRole.CLUSTER_NODE)
        if not nodes:
            raise RunError(f"{self.inventory.path} has no cluster node to act as the initiator")
        return nodes[0].name

    # -- teardown ----------------------------------------------------------------------------

    def _teardown(self) -> list[str]:
        """Heal every fault, keep the logs, take the lab down if we started it."""
        lines: list[str] = []
        for failure in heal_live():
            lines.append(f"FAILED: could not heal: {failure}")
        lab = self.lab
        if lab is None:
            return lines
        with contextlib.suppress(OSError, SplitbrainError):
            if lab.state.journal_file.exists():
                for o in heal_journal(FaultJournal(lab.state.journal_file)):
                    lines.append(
                        f"healed {o.kind} {o.target}"
                        if o.healed
                        else f"FAILED: could not heal {o.kind} {o.target} ({o.id}): {o.error}"
                    )
        logs = lab.state.root / "logs"
        with contextlib.suppress(OSError):
            if logs.is_dir():
                shutil.copytree(logs, self.output / "logs", dirs_exist_ok=True)
            if lab.state.journal_file.exists():
                shutil.copy(lab.state.journal_file, self.output / "faults.jsonl")
        if self.started and not self.settings.keep_lab:
            try:
                stopped = lab.down()
                self.say(f"lab: taken down ({len(stopped)} processes stopped)")
            except SplitbrainError as exc:
                lines.append(f"FAILED: could not take the lab down: {exc}")
        elif self.started:
            self.say(f"lab: kept up at {self.state_dir} (--keep-lab); "
                     "`splitbrain lab down` stops it")
        else:
            self.say(f"lab: left up at {self.state_dir} (it was up before the run)")
        return lines


def spec_with_isid(spec: Any, number: int) -> Any:
    """The spec with its own ISID (random-qualifier format), one per read-back session."""
    isid = 0x80 << 40 | 0x5C << 32 | (os.getpid() & 0xFFFF) << 16 | number & 0xFFFF
    return dataclasses.replace(spec, isid=isid)


__all__ = [
    "ChaosRun",
    "RunError",
    "RunInterrupted",
    "RunOutcome",
    "RunSettings",
    "default_output",
]
