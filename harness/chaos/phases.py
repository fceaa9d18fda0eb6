"""The two timed phases of a chaos run: chaos (workload + nemesis), then the checks.

``chaos`` opens the HA device over MPIO (every path of both replicas, as the
inventory's first cluster node: its IQN, the inventory's ``[mpio]`` policy and
timers), runs the stamped workload and the nemesis side by side, records path
and replica state changes into the same history, and after the last heal waits
(bounded) for both replicas to be Synchronized while still recording. ``check``
streams that history (``harness.checks.stream_check.check_run_file``: memory per
block, not per operation) through every checker: reads (register and
monotonicity), each fault's numbers against the inventory's budgets, integrity
read back through each path on its own session, and the replicas' image files
compared for divergence and split brain.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from harness.chaos.observers import HELD_S, FaultLog, HeldFor
from harness.chaos.schedule import DeviceFaults
from harness.checks.compose import RunVerdict
from harness.checks.verdict import Problem
from harness.errors import SplitbrainError
from harness.faults.nemesis import Nemesis, Schedule
from harness.iscsi.names import READ_BACK_PATHS
from harness.workload.errors import DeviceError
from harness.workload.generator import WorkloadSpec
from harness.workload.history import History
from harness.workload.iscsi_device import IscsiDevice, MultipathBlockDevice, mirror_path_events
from harness.workload.writers import Workload, WorkloadResult, header_for

if TYPE_CHECKING:
    from harness.chaos.runner import ChaosRun

BLOCK_SIZES = (4096, 16384, 65536)
ADMIN_AFTER_S = 3.0  # every replica Not synchronized this long: the administrator marks one
READ_RATIO = 0.25


class SteadyStateError(SplitbrainError):
    """The site was not in its steady state (all Synchronized, all paths up) before a fault."""


class PathTracker:
    """A block device that remembers when each path last completed an operation."""

    def __init__(self, device: MultipathBlockDevice) -> None:
        self.device = device
        self.events = device.events
        self.name = device.name
        self.last_ok: dict[str, int] = {}

    @property
    def block_size(self) -> int:
        return self.device.block_size

    @property
    def num_blocks(self) -> int:
        return self.device.num_blocks

    async def read(self, lba: int, count: int) -> Any:
        done = await self.device.read(lba, count)
        self.last_ok[done.path] = time.monotonic_ns()
        return done

    async def write(self, lba: int, data: bytes) -> Any:
        done = await self.device.write(lba, data)
        self.last_ok[done.path] = time.monotonic_ns()
        return done

    async def flush(self) -> None:
        await self.device.flush()

    async def close(self) -> None:
        await self.device.close()


def merge_results(results: list[WorkloadResult]) -> WorkloadResult:
    """One result for several workloads that ran side by side."""
    out = WorkloadResult()
    for r in results:
        for f in dataclasses.fields(WorkloadResult):
            if f.name == "elapsed_s":
                out.elapsed_s = max(out.elapsed_s, r.elapsed_s)
            else:
                setattr(out, f.name, getattr(out, f.name) + getattr(r, f.name))
    return out


class RunPhases:
    """Chaos and checks of one ``ChaosRun`` on its (running) lab."""

    def __init__(self, run: ChaosRun, faults: DeviceFaults) -> None:
        self.run, self.faults = run, faults
        self.history_file = run.output / "history.jsonl"
        self.nodes = run.cluster_nodes()
        self.node = self.nodes[0]
        self.paths = self._path_specs(self.node)
        self.all_paths = [p for n in self.nodes for p in self._path_specs(n)]
        run.meta.update(initiator=", ".join(self.nodes), paths=len(self.all_paths),
                        path_names=[p.name for p in self.all_paths])

    # -- paths -------------------------------------------------------------------------------

    def _path_specs(self, node: str) -> list[Any]:
        """One PathSpec per path of the device from ``node``, named ``node->net/host``."""
        specs = self.run.sut.initiator(node).path_specs(self.run.device.alias)
        if len(specs) < 2:
            raise DeviceError(
                f"{self.run.device.alias} has {len(specs)} path(s) from {node}; "
                "MPIO needs two or more: check the inventory's iSCSI networks"
            )
        return specs

    def where(self) -> dict[str, tuple[str, str]]:
        """path name -> (network, host) it leads to, for every cluster node's paths."""
        out = {}
        for spec in self.all_paths:
            net, host = spec.name.split("->", 1)[1].split("/", 1)
            out[spec.name] = (net, host)
        return out

    def timers(self) -> Any:
        return self.run.inventory.mpio.timers()

    # -- chaos -------------------------------------------------------------------------------

    async def _open(self, node: str) -> MultipathBlockDevice:
        run = self.run
        mpio = run.sut.initiator(node).multipath(run.device.alias)
        try:
            await mpio.open()
        except SplitbrainError as exc:
            with contextlib.suppress(SplitbrainError, OSError):
                await mpio.close()
            raise DeviceError(
                f"cannot open {run.device.alias} over MPIO from {node}: {exc}"
            ) from exc
        return MultipathBlockDevice(mpio)

    def specs(self, device: MultipathBlockDevice) -> list[tuple[int, WorkloadSpec]]:
        """(first writer id, spec) of each workload: one cluster node writes over the whole
        device; several split it in a private half (each node its own part, each of its
        writers its own region there: no other writer of any node touches it) and a
        shared half (every writer of every node on the same blocks)."""
        settings, timers = self.run.settings, self.timers()
        size = device.num_blocks * device.block_size
        span = self.span(size)
        base = WorkloadSpec(
            seed=settings.seed, writers=settings.writers, queue_depth=settings.queue_depth,
            block_sizes=BLOCK_SIZES, read_ratio=READ_RATIO, duration=settings.duration_s,
            op_timeout=max(30.0, timers.disk_timeout_s),
        )
        if len(self.nodes) == 1:
            return [(0, replace(base, region_length=span).validate(size, device.block_size))]
        half = span // 2 // max(BLOCK_SIZES) * max(BLOCK_SIZES)
        each = max(1, settings.writers // 2)
        # A node's private part: what a crashed node left in flight there is rewritten by
        # nobody else (a survivor writing the same regions would hide what it left
        # different on one replica: chaos sequencer-dies-with-its-writer)
        part = half // len(self.nodes) // max(BLOCK_SIZES) * max(BLOCK_SIZES)
        if part < each * max(BLOCK_SIZES):
            part = 0  # too small a span to split: every node's writers share the half
        out = []
        for i in range(len(self.nodes)):
            first = i * 2 * each
            private = replace(base, writers=each, region_mode="private",
                              region_offset=i * part, region_length=part or half)
            shared_length = span - half
            if settings.shared_bytes:  # a hot spot: both nodes write the same few blocks
                shared_length = min(shared_length, max(settings.shared_bytes,
                                                       max(BLOCK_SIZES)))
            shared = replace(base, writers=each, region_mode="shared", region_offset=half,
                             region_length=shared_length)
            out.append((first, private.validate(size, device.block_size)))
            out.append((first + each, shared.validate(size, device.block_size)))
        return out

    def span(self, size: int) -> int:
        """Bytes at the start of the device the workload writes (whole checker blocks)."""
        span = self.run.settings.span_bytes
        if span <= 0 or span >= size:
            return size
        return max(span // max(BLOCK_SIZES), 2) * max(BLOCK_SIZES)

    async def chaos(self, schedule: Schedule) -> WorkloadResult:
        run, settings = self.run, self.run.settings
        devices: list[MultipathBlockDevice] = []
        try:
            with run.phase("login"):
                for node in self.nodes:
                    devices.append(await self._open(node))
            specs = self.specs(devices[0])
            header = header_for(
                devices[0],
                specs[0][1],
                name=f"{run.device.alias} over {len(self.all_paths)} paths from "
                     f"{', '.join(self.nodes)}",
                # a lab this run started holds zeros; a reused one holds anything
                initial="zero" if settings.fresh else "unknown",
                options={"run": "splitbrain chaos", "inventory": str(run.inventory.path),
                         "schedule": schedule.to_json(), "initiators": self.nodes},
            )
            dev0 = devices[0]
            run.say(
                f"workload: {sum(s.writers for _, s in specs)} writers x qd "
                f"{settings.queue_depth} from {', '.join(self.nodes)} on {run.device.alias} "
                f"({dev0.num_blocks * dev0.block_size / 2**20:.0f} MiB), "
                f"{settings.duration_s:g} s, seed {settings.seed}, "
                f"generation {header.generation:08x}"
            )
            with History(self.history_file, header) as history, self._capture():
                unsubscribe = [mirror_path_events(d, history) for d in devices]
                with run.replica_watch(history) as watch:
                    try:
                        with run.phase("steady_state"):
                            await self.steady_state(devices, watch)
                        with run.phase("workload"):
                            result = await self._play(devices, specs, history, schedule,
                                                      watch)
                    finally:
                        for u in unsubscribe:
                            u()
                    run.say(f"replicas: waiting until {run.device.alias} is Synchronized ...")
                    with run.phase("settle"):
                        waited = await asyncio.to_thread(run.wait_synchronized, watch)
                    run.meta["replicas_after"] = dict(watch.last)
                if waited is not None:
                    run.say(f"replicas: both Synchronized {waited:.1f} s after the workload ended")
                    run.meta["resync_wait_s"] = waited
                elif "split_brain_held" in run.meta:
                    run.say(f"replicas: NOT Synchronized: the device holds a split brain "
                            f"until an administrator marks one: {watch.last}")
                else:
                    run.say(f"replicas: NOT Synchronized within {run.settle_deadline():g} s "
                            f"after the workload ended: {watch.last}")
        finally:
            with run.phase("logout"):
                for d in devices:
                    with contextlib.suppress(SplitbrainError, OSError):
                        await d.close()
        run.say(f"workload: {result.summary()}")
        return result

    def _capture(self) -> Any:
        from harness.chaos.capture import LoopbackCapture

        run = self.run
        self.capture = LoopbackCapture.for_run(run.sut, run.device.alias,
                                               run.output / "capture.pcap")
        if not run.settings.capture:
            self.capture.why_not = "capture not asked for"
        return self.capture

    async def steady_state(self, devices: list[MultipathBlockDevice], watch: Any) -> None:
        """Before any fault: every replica Synchronized and every path up, or the run stops."""
        run = self.run
        waited = await asyncio.to_thread(run.wait_synchronized, watch, "steady state")
        if waited is None:
            raise SteadyStateError(
                f"steady state not reached: replicas of {run.device.alias} not Synchronized "
                f"before the first fault: {watch.last}")
        down = [p.name for d in devices for p in d.mpio.paths if not p.state.healthy]
        if down:
            raise SteadyStateError(
                f"steady state not reached: path(s) {', '.join(down)} not up before the "
                "first fault")
        run.meta["steady_state"] = (
            f"replicas {', '.join(f'{h}={s}' for h, s in watch.last.items())}; "
            f"{sum(len(d.mpio.paths) for d in devices)} paths up")

    async def _play(
        self, devices: list[MultipathBlockDevice], specs: list[tuple[int, WorkloadSpec]],
        history: History, schedule: Schedule, replicas: Any = None
    ) -> WorkloadResult:
        run = self.run
        per_node = len(specs) // len(devices)
        tracked = [PathTracker(d) for d in devices]
        extra = run.paths_back_deadline() if run.settings.until_paths_back else 0.0
        workloads = [Workload(tracked[i // per_node],
                              replace(spec, duration=run.settings.duration_s + extra),
                              history, first_writer=first)
                     for i, (first, spec) in enumerate(specs)]
        owner = {id(w): self.nodes[i // per_node] for i, w in enumerate(workloads)}
        nemesis = Nemesis(schedule, self._with_clients(run.build_fault(), workloads, owner),
                          FaultLog(history, self.faults, self.where()),
                          on_injected=run.on_injected)
        faults = asyncio.create_task(nemesis.run_async())

        def nemesis_done(task: asyncio.Task[list[str]]) -> None:
            if not task.cancelled() and task.exception() is not None:
                for w in workloads:  # a fault that cannot be injected or healed ends the run
                    w.stop()

        faults.add_done_callback(nemesis_done)
        watch = asyncio.create_task(self._until_paths_back(workloads, tracked, faults)) \
            if extra else None
        self.started = time.monotonic()
        admin = asyncio.create_task(self._administer(replicas)) \
            if run.settings.administrator is not None and replicas is not None else None
        runs = [w.run() for w in workloads]
        first = max((f + s.writers for f, s in specs), default=0)
        for i, at in enumerate(run.settings.bursts):
            for j, dev in enumerate(tracked):
                burst = replace(specs[-1][1], writers=2, queue_depth=4,
                                duration=max(0.5, run.settings.duration_s + extra - at))
                w = Workload(dev, burst, history, first_writer=first + (i * len(tracked) + j) * 2)
                workloads.append(w)
                owner[id(w)] = self.nodes[j]
                runs.append(self._later(at, w))
        try:
            results = await asyncio.gather(*runs)
        except BaseException:
            nemesis.stop()
            with contextlib.suppress(BaseException):
                await faults
            raise
        nemesis.stop()  # the schedule ends before the workload; this is a no-op then
        for task in (watch, admin):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            injected = await faults
            run.meta["faults_injected"] = injected
        except SplitbrainError as exc:
            run.run_problems.append(Problem("fault_failed", f"the nemesis stopped: {exc}"))
        return merge_results(results)

    def _with_clients(self, build: Any, workloads: list[Workload],
                      owner: dict[int, str]) -> Any:
        """The site's fault builder, plus ``client-crash`` of a cluster node: its
        workloads (this process's clients) abandon what they have in flight."""
        from harness.faults.client import ClientCrash
        from harness.faults.fault import FaultError

        loop = asyncio.get_running_loop()

        def on_loop(host: str, method: str) -> None:
            mine = [w for w in workloads if owner.get(id(w)) == host]
            if not mine:
                raise FaultError(f"client-crash {host}: no workload of this run writes from "
                                 f"it (cluster nodes: {', '.join(self.nodes)})")
            for w in mine:
                loop.call_soon_threadsafe(getattr(w, method))

        def built(spec: Any) -> Any:
            if spec.action != "client-crash":
                return build(spec)
            host = spec.target
            return ClientCrash(host, crash=lambda: on_loop(host, "crash"),
                               restart=lambda: on_loop(host, "restart"),
                               journal=self.run.journal())

        return built

    async def _administer(self, watch: Any) -> None:
        """Act as the site's administrator while the run goes on: when every replica has
        stayed Not synchronized for ``ADMIN_AFTER_S`` (the device detected a split brain
        and waits for someone), mark one side; the run's meta says when and what."""
        run = self.run
        since: float | None = None
        while True:
            await asyncio.sleep(0.5)
            states = dict(watch.last)
            stuck = bool(states) and all(s == "not synchronized" for s in states.values())
            now = time.monotonic()
            since = (since or now) if stuck else None
            if since is None or now - since < ADMIN_AFTER_S:
                continue
            assert run.settings.administrator is not None
            line = await asyncio.to_thread(run.settings.administrator)
            if line is None:  # the device did not ask for an administrator
                since = None
                continue
            at = round(time.monotonic() - self.started, 2)
            run.meta.setdefault("administrator", []).append(f"at {at} s: {line}")
            run.say(f"administrator: {line}")
            since = None
            await asyncio.sleep(5.0)

    @staticmethod
    async def _later(at_s: float, workload: Workload) -> WorkloadResult:
        """A burst: fresh writers that join ``at_s`` seconds in (open-loop arrivals)."""
        await asyncio.sleep(at_s)
        return await workload.run()

    async def _until_paths_back(self, workloads: list[Workload], tracked: list[PathTracker],
                                faults: asyncio.Task[Any]) -> None:
        """Stop the workload once it ran its duration, the last fault healed and every path
        carried I/O again after that heal (the workload's own deadline bounds the wait)."""
        run = self.run
        t0 = time.monotonic_ns()
        end = t0 + int(run.settings.duration_s * 1e9)
        while time.monotonic_ns() < end or not faults.done():
            await asyncio.sleep(0.1)
        healed = time.monotonic_ns()
        names = [p.name for p in self.all_paths]
        held, asked = HeldFor(HELD_S), 0.0
        while True:
            last = {n: t for tr in tracked for n, t in tr.last_ok.items()}
            missing = [n for n in names if last.get(n, 0) < healed]
            if not missing:
                run.meta["paths_back_s"] = round((time.monotonic_ns() - healed) / 1e9, 3)
                break
            if time.monotonic() - asked >= 0.5:  # no path serves a held split brain
                asked = time.monotonic()
                if held(await asyncio.to_thread(run.held)):
                    run.say(f"paths: {len(missing)} not back; the device holds a split brain "
                            "(waiting for an administrator): writing stops, and the I/O MPIO "
                            "still holds is abandoned (its fate unknown: info)")
                    run.meta["abandoned_at_s"] = round(time.monotonic() - self.started, 3)
                    for w in workloads:
                        w.stop()
                    for tr in tracked:  # no path serves until someone marks a side
                        with contextlib.suppress(SplitbrainError, OSError):
                            await tr.close()
                    break
            await asyncio.sleep(0.1)
        for w in workloads:
            w.stop()

    # -- checks ------------------------------------------------------------------------------

    def _replicas_through_their_paths(self, devices: dict[str, Any]) -> dict[str, Any] | None:
        """A real site has no image files: each replica is read through a path to its own
        storage host, and only once the site's replica states (``sut.replica_states``)
        say every replica is Synchronized (a resyncing replica may differ for now)."""
        from harness.checks.divergence import device_reader

        run = self.run
        hosts = [r.host for r in run.device.replicas]
        try:
            states = run.sut.replica_states().get(run.device.alias, {})
        except SplitbrainError as exc:
            states = {}
            run.say(f"checks: replica states unreadable ({exc})")
        if any(str(states.get(h, "")).lower() != "synchronized" for h in hosts):
            run.run_problems.append(Problem(
                "replicas_not_compared", f"replicas of {run.device.alias} not compared: not "
                f"every replica is Synchronized ({states})"))
            return None
        by_host = {name.rsplit("/", 1)[-1]: dev for name, dev in devices.items()}
        if any(h not in by_host for h in hosts):
            return None  # a path could not be read: already a problem of its own
        return {f"{run.device.alias}@{h}": device_reader(by_host[h]) for h in hosts}

    async def check(self) -> RunVerdict:
        from harness.checks.divergence import image_reader
        from harness.checks.stream_check import check_run_file
        from harness.initiator.mpio.session_link import SessionConnector
        from harness.initiator.session import SessionTimeouts

        run = self.run
        # a read that the storage never answers is reported (unreadable), not waited out
        timers = self.timers()
        # read back from the cluster node, as the workload wrote (its namespace in a netns
        # lab, its ssh tunnel on a real site): never from the controller's own network
        connector = SessionConnector(SessionTimeouts(
            connect=timers.login_timeout_s, login=timers.login_timeout_s,
            command=timers.disk_timeout_s, nop=timers.noop_out_timeout_s or 5.0,
            task_management=10.0, logout=5.0),
            sock_factory=run.sut.initiator(self.node).sock_factory)
        devices: dict[str, Any] = {}
        try:
            paths = self.paths
            if not run.settings.read_back_every_path:  # one path per replica host
                per_host = {spec.name.rsplit("/", 1)[-1]: spec for spec in reversed(paths)}
                paths = sorted(per_host.values(), key=lambda p: p.name)
            for i, spec in enumerate(paths):
                try:
                    with run.phase("check_login"):
                        dev = await IscsiDevice.open(
                            replace(spec, isid=READ_BACK_PATHS.isid(i + 1)), connector)
                except SplitbrainError as exc:
                    run.run_problems.append(Problem(
                        "path_unusable", f"path {spec.name} cannot be read after heal: {exc}",
                        device=spec.name))
                    continue
                devices[spec.name] = dev
            images = run.image_files() or {}
            missing = [str(p) for p in images.values() if not p.exists()]
            if missing:
                run.run_problems.append(Problem(
                    "replica_missing", f"replica image(s) not found: {', '.join(missing)}; "
                    "the replicas could not be compared"))
            replicas = None if missing or not images else {
                n: image_reader(p) for n, p in images.items()}
            if run.lab is None and not images:
                replicas = self._replicas_through_their_paths(devices)
            run.say(f"checks: reading {run.device.alias} back through {len(devices)} paths and "
                    f"comparing {len(replicas or {})} replicas")
            # streamed: memory grows with the device, not with the length of the run
            capture = getattr(self, "capture", None)
            pcap = capture.file if capture is not None else None
            run.meta["capture"] = (f"{capture.packets} packets on ports {capture.ports}"
                                   if pcap and capture else
                                   (capture.why_not if capture else "none"))
            # on the lab the images are read whole (compared, and each Synchronized one
            # checked on its own): the paths need to read back only the span written
            size = run.device.size
            after = run.meta.get("replicas_after") or {}
            whole = [n for n in images if after.get(n.rsplit("@", 1)[-1]) == "synchronized"]
            span = self.span(size) if replicas and images and whole else None
            if span is not None and span < size:
                run.say(f"checks: paths read back the {span / 2**20:g} MiB the workload wrote; "
                        f"replica image(s) {', '.join(whole)} checked whole")
            result, _reports = await check_run_file(
                self.history_file, devices=devices or None, replicas=replicas, span=span,
                whole=whole,
                budget=run.budget, pcap=str(pcap) if pcap else None,
                iscsi_ports=tuple(capture.ports) if pcap and capture else (3260,),
                wire_tolerance_s=0.05)
            return result
        finally:
            for dev in devices.values():
                with contextlib.suppress(SplitbrainError, OSError):
                    await dev.close()
