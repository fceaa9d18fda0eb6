"""The chaos runner: one seeded run of workload + nemesis on a system under test, then checks.

The caller brings the site: ``ChaosRun(sut, settings)`` takes a system under
test that is already up (the ``sut`` the suites use: the bundled lab, or a real
site from its inventory) and never brings it up or takes it down. The run:

1. plans: the device's faults and the seeded schedule (``harness.chaos.schedule``),
   from the inventory (and the lab's link names when the site is a lab);
2. chaos: the verifiable workload writes stamped blocks over MPIO (every path to
   both replicas, as a cluster node's initiator) into ``history.jsonl`` while the
   nemesis plays the schedule through ``sut.faults``; every fault, path state
   change and replica state lands in the same history;
3. after the last heal it waits, bounded by the inventory's ``resync_s``, until
   both replicas are Synchronized; then every checker runs.

Whatever ends the run (a problem, an error, Ctrl-C, SIGTERM), every fault still
live or open in the site's journal is healed; a heal that fails is itself a
problem. Problems of the run itself (a replica that never resynchronized, a
fault that could not be injected or healed, a path that cannot be read after
heal) sit in a ``run`` verdict before the checkers' verdicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.chaos.observers import HELD_S, POLL_S, HeldFor, ReplicaStates, ReplicaWatch
from harness.chaos.schedule import (
    FAULT_KINDS,
    SPARSE,
    Density,
    DeviceFaults,
    chaos_schedule,
    choose_device,
    device_faults,
)
from harness.checks.compose import RunVerdict
from harness.checks.verdict import Problem, Verdict
from harness.errors import SplitbrainError
from harness.faults.fault import Fault, heal_live
from harness.faults.guard import heal_journal
from harness.faults.journal import FaultJournal, default_journal_path
from harness.faults.nemesis import FaultSpec, Schedule
from harness.lab.backend import replica_alias
from harness.lab.inventory import HaDevice, HostRole, Inventory
from harness.workload.writers import WorkloadResult


class RunError(SplitbrainError):
    """The run cannot start or go on (bad options, a site it cannot drive...)."""


class SystemUnderTest(Protocol):
    """What the runner needs of a site (``fixtures.sut.SystemUnderTest`` is one)."""

    inventory: Inventory
    lab: Any  # harness.lab.backends.Lab, or None for a real site

    @property
    def faults(self) -> Any: ...  # LabFaults or RemoteFaults: ``build(spec) -> Fault``

    def initiator(self, name: str) -> Any: ...  # ``.path_specs(device)``


@dataclass
class RunSettings:
    seed: int
    duration_s: float = 20.0
    output: Path | None = None
    device: str | None = None
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    max_faults: int | None = None
    writers: int = 4
    queue_depth: int = 4
    budget_profile: str = "default"
    density: Density = SPARSE
    weights: Mapping[str, float] | None = None
    schedule: Schedule | None = None  # a replayed schedule instead of a drawn one
    catalogue: DeviceFaults | None = None  # what the schedule's faults are (a scenario's)
    initiators: tuple[str, ...] = ()  # cluster nodes writing (default: the first one)
    # seconds after the start at which fresh writers join on every cluster node (new I/O
    # arriving while every running slot may be held, as a cluster's many VMs keep issuing)
    bursts: tuple[float, ...] = ()
    capture: bool = False  # capture the iSCSI traffic (lab, root) for the packet-timing check
    # the administrator's override during the run: called (in a thread) when every replica
    # stays Not synchronized (a split brain the device detected); marks one side and
    # returns what it did (None: the device did not ask, nothing marked). None: nobody
    # acts until the run ends.
    administrator: Callable[[], str | None] | None = None
    fresh: bool = False  # the device holds zeros (a lab just started)
    settle_s: float | None = None  # wait for Synchronized after the last heal (default resync_s)
    read_back_every_path: bool = True  # else one path per replica (shorter checks)
    # after the last heal, write on until every path carried I/O again (heal_to_all_paths_s)
    until_paths_back: bool = True
    # bytes of the shared region every writer of every node overlaps on (0: the second
    # half of the device); a small one makes writes through both nodes collide
    shared_bytes: int = 0
    # bytes at the start of the device the workload writes (0: all of it). The checks then
    # read back only that span through the paths; blocks past it are still checked in
    # every replica's image (lab) or read back too (a real site has no images)
    span_bytes: int = 0
    # True while the device holds a split brain it detected: every replica Not synchronized,
    # waiting for an administrator to mark one (the site's reader; None: never known). No
    # path carries I/O and nothing resyncs until then, so the run stops waiting for either.
    held: Callable[[], bool] | None = None


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


def check_settings(inventory: Inventory, settings: RunSettings) -> HaDevice:
    """Refuse what cannot run, before anything starts; return the device to break."""
    if settings.duration_s <= 0:
        raise RunError(f"--duration {settings.duration_s:g} must be positive (seconds)")
    device = choose_device(inventory, settings.device)
    for name in settings.initiators:
        if not inventory.hosts.get(name) or not inventory.host(name).has_role(
            HostRole.CLUSTER_NODE
        ):
            raise RunError(f"{name!r} is not a cluster node of {inventory.path}")
    if not inventory.hosts_with_role(HostRole.CLUSTER_NODE):
        raise RunError(f"{inventory.path} has no cluster node to act as the initiator")
    return device


def plan(
    inventory: Inventory, settings: RunSettings, links: list[str] | None = None
) -> tuple[DeviceFaults, Schedule]:
    """The device's faults and the seeded schedule (the same for the same seed)."""
    device = check_settings(inventory, settings)
    faults = settings.catalogue or device_faults(inventory, device, links=links)
    if settings.schedule is not None:
        return faults, settings.schedule
    schedule = chaos_schedule(
        faults,
        settings.fault_kinds,
        seed=settings.seed,
        duration_s=settings.duration_s,
        max_faults=settings.max_faults,
        density=settings.density,
        weights=settings.weights,
    )
    return faults, schedule


def replica_reader(sut: SystemUnderTest) -> ReplicaStates:
    """How this site's replica states are read: ``sut.replicas`` (the site's reader),
    else the lab's API."""
    reader = getattr(sut, "replicas", None)
    if reader is not None and hasattr(reader, "states"):
        def states() -> dict[str, dict[str, str]]:
            out: dict[str, dict[str, str]] = {}
            for status in reader.states():
                out.setdefault(status.device, {})[status.host] = status.state
            return out

        return states
    if sut.lab is not None:
        return sut.lab.ha_states
    raise RunError(
        f"{sut.inventory.path}: no way to read the HA devices' replica states on this site"
    )


class ChaosRun:
    """One run on a running site; ``execute`` does everything and always heals."""

    def __init__(
        self, sut: SystemUnderTest, settings: RunSettings, out: TextIO | None = None
    ) -> None:
        self.sut = sut
        self.settings = settings
        self.out = out
        self.inventory: Inventory = sut.inventory
        self.device: HaDevice = check_settings(self.inventory, settings)
        self.budget = dict(self.inventory.budget(settings.budget_profile).limits)
        self.output = Path(settings.output or default_output(settings.seed))
        self.run_problems: list[Problem] = []
        self.meta: dict[str, Any] = {}
        # called in the nemesis's thread after each inject (evidence that it took effect)
        self.injected_hooks: list[Callable[[str, Any, Fault], None]] = []
        # wall seconds of each phase (steady state, workload, settle, check...): where a
        # run's time goes, in its verdict and on the console
        self.phases: dict[str, float] = {}
        self.meta["phases_s"] = self.phases

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time one phase of the run into ``phases`` (added up if it comes again)."""
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = round(self.phases.get(name, 0.0) + time.monotonic() - t0, 3)

    def say(self, text: str) -> None:
        if self.out is not None:
            print(text, file=self.out, flush=True)

    @property
    def lab(self) -> Any:
        return self.sut.lab

    def plan(self) -> tuple[DeviceFaults, Schedule]:
        links = list(self.lab.state.load().links) if self.lab is not None else None
        return plan(self.inventory, self.settings, links)

    # -- the whole run -----------------------------------------------------------------------

    def execute(self) -> RunOutcome:
        from harness.chaos.phases import RunPhases, SteadyStateError
        from harness.chaos.signals import signals_ignored

        self._prepare_output()
        t_wall, t0 = time.time(), time.monotonic_ns()
        heals: list[str] = []
        try:
            with self.phase("plan"):
                faults, schedule = self.plan()
            (self.output / "schedule.json").write_text(
                json.dumps(schedule.to_json(), indent=1) + "\n", encoding="utf-8"
            )
            self._say_schedule(schedule)
            self.meta.update(
                started_wall=t_wall,
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
            phase = RunPhases(self, faults)
            try:
                workload: WorkloadResult | None = asyncio.run(phase.chaos(schedule))
                with self.phase("check"):
                    verdict = asyncio.run(phase.check())
            except SteadyStateError as exc:
                self.say(f"steady state: {exc}")
                self.run_problems.append(Problem("steady_state", str(exc)))
                workload, verdict = None, RunVerdict(str(phase.history_file))
        finally:
            with signals_ignored(), self.phase("heal"):  # a second Ctrl-C must not
                heals = self.heal_all()  # leave a fault behind
        for line in heals:
            if line.startswith("FAILED: "):
                self.run_problems.append(Problem("heal_failed", line.removeprefix("FAILED: ")))
        self.meta["elapsed_s"] = round((time.monotonic_ns() - t0) / 1e9, 3)
        # the run's own problems (no resync, a failed heal) first: they explain the others
        verdict.verdicts.insert(0, Verdict("run", self.run_problems, {"heals": heals}))
        lab_dir = self.lab.state.root if self.lab is not None else None
        return RunOutcome(self.output, verdict, schedule, workload, False, lab_dir, heals,
                          self.meta)

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

    # -- the site ----------------------------------------------------------------------------

    def resync_deadline(self) -> float:
        return float(self.budget.get("resync_s", 120.0))

    def replica_watch(self, history: Any) -> ReplicaWatch:
        hosts = [r.host for r in sorted(self.device.replicas, key=lambda r: r.priority)]
        return ReplicaWatch(replica_reader(self.sut), self.device.alias, hosts, history)

    def paths_back_deadline(self) -> float:
        return float(self.budget.get("heal_to_all_paths_s", 10.0))

    def settle_deadline(self) -> float:
        if self.settings.settle_s is not None:
            return self.settings.settle_s
        return self.resync_deadline()

    def on_injected(self, name: str, step: Any, fault: Fault) -> None:
        for hook in self.injected_hooks:
            hook(name, step, fault)

    def held(self) -> bool:
        """The device holds a split brain it detected (``RunSettings.held``)."""
        if self.settings.held is None or self.settings.administrator is not None:
            return False  # with an administrator, someone marks a side: wait for that
        try:
            return bool(self.settings.held())
        except (SplitbrainError, OSError):
            return False

    def wait_synchronized(self, watch: ReplicaWatch, why: str = "") -> float | None:
        """Seconds until both replicas are Synchronized; None at the deadline (after the
        last heal that is a problem of the run; before the first fault, ``why`` says so).
        After the workload, a split brain the device holds for ``HELD_S`` ends the wait at
        once: it is Not synchronized until an administrator acts, however long one waits."""
        deadline = self.resync_deadline() if why else self.settle_deadline()
        t0 = time.monotonic_ns()
        held = HeldFor(HELD_S)

        def settled() -> bool:
            return watch.synchronized() or (not why and held(self.held()))

        try:
            Retrying(
                stop=stop_after_delay(deadline),
                wait=wait_fixed(POLL_S),
                retry=retry_if_result(lambda ok: not ok),
            )(settled)
        except RetryError:
            if why:
                return None
            self.run_problems.append(
                Problem(
                    "not_synchronized",
                    f"replicas of {self.device.alias} not Synchronized {deadline:g} s after the "
                    f"workload ended (budget resync_s): {watch.last}",
                    detail={"states": dict(watch.last), "deadline_s": deadline},
                )
            )
            return None
        waited = (time.monotonic_ns() - t0) / 1e9
        if held.since is None or watch.synchronized():
            return waited
        self.meta["split_brain_held"] = dict(watch.last)
        self.run_problems.append(
            Problem(
                "not_synchronized",
                f"replicas of {self.device.alias} not Synchronized after the workload ended: "
                f"the device detected a split brain and keeps them {watch.last} until an "
                f"administrator marks one (seen for {HELD_S:g} s, {waited:.1f} s after the "
                "workload ended)",
                detail={"states": dict(watch.last), "deadline_s": deadline,
                        "split_brain_held": True},
            )
        )
        return None

    def build_fault(self) -> Callable[[FaultSpec], Fault]:
        return self.sut.faults.build

    def image_files(self) -> dict[str, Path] | None:
        """Each replica's image file (``<alias>@<host>`` -> path); None off the lab."""
        if self.lab is None:
            return None
        return {
            f"{self.device.alias}@{r.host}": self.lab.state.node_dir(r.host)
            / "data"
            / f"{replica_alias(self.device, r.host)}.img"
            for r in sorted(self.device.replicas, key=lambda r: r.priority)
        }

    def cluster_nodes(self) -> list[str]:
        if self.settings.initiators:
            return list(self.settings.initiators)
        return [self.inventory.hosts_with_role(HostRole.CLUSTER_NODE)[0].name]

    def journal(self) -> FaultJournal:
        if self.lab is not None:
            return FaultJournal(self.lab.state.journal_file)
        return FaultJournal(default_journal_path())

    # -- heal --------------------------------------------------------------------------------

    def heal_all(self) -> list[str]:
        """Heal every fault still live or open in the site's journal; keep the logs."""
        lines = [f"FAILED: could not heal: {failure}" for failure in heal_live()]
        journal = self.journal()
        with contextlib.suppress(OSError, SplitbrainError):
            if journal.path.exists():
                for o in heal_journal(journal):
                    lines.append(
                        f"healed {o.kind} {o.target}"
                        if o.healed
                        else f"FAILED: could not heal {o.kind} {o.target} ({o.id}): {o.error}"
                    )
        with contextlib.suppress(OSError):
            if self.lab is not None:
                logs = self.lab.state.root / "logs"
                if logs.is_dir():
                    shutil.copytree(logs, self.output / "logs", dirs_exist_ok=True)
            if journal.path.exists():
                shutil.copy(journal.path, self.output / "faults.jsonl")
        return lines


__all__ = [
    "ChaosRun",
    "RunError",
    "RunOutcome",
    "RunSettings",
    "SystemUnderTest",
    "check_settings",
    "default_output",
    "plan",
]
