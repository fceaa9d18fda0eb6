"""The two timed phases of a chaos run: chaos (workload + nemesis), then the checks.

``chaos`` opens the HA device over MPIO (every path of both replicas, as the
inventory's first cluster node: its IQN, the inventory's ``[mpio]`` policy and
timers), runs the stamped workload and the nemesis side by side, records path
and replica state changes into the same history, and after the last heal waits
(bounded) for both replicas to be Synchronized while still recording. ``check``
loads that history and runs every checker: reads (register), timing against the
inventory's budgets, integrity read back through each path on its own session,
and the replicas' image files compared for divergence and split brain.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from harness.chaos.observers import FaultLog
from harness.chaos.schedule import DeviceFaults
from harness.checks.compose import RunVerdict, check_run
from harness.checks.verdict import Problem
from harness.errors import SplitbrainError
from harness.faults.nemesis import Nemesis, Schedule
from harness.workload.errors import DeviceError
from harness.workload.generator import WorkloadSpec
from harness.workload.history import History, load_history
from harness.workload.iscsi_device import IscsiDevice, MultipathBlockDevice, mirror_path_events
from harness.workload.writers import Workload, WorkloadResult, header_for

if TYPE_CHECKING:
    from harness.chaos.runner import ChaosRun

BLOCK_SIZES = (4096, 16384, 65536)
READ_RATIO = 0.25


class RunPhases:
    """Chaos and checks of one ``ChaosRun`` on its (running) lab."""

    def __init__(self, run: ChaosRun, faults: DeviceFaults) -> None:
        self.run, self.faults = run, faults
        self.history_file = run.output / "history.jsonl"
        self.node = run.cluster_nodes()[0]
        self.paths = self._path_specs()
        run.meta.update(initiator=self.node, paths=len(self.paths),
                        path_names=[p.name for p in self.paths])

    # -- paths -------------------------------------------------------------------------------

    def _path_specs(self) -> list[Any]:
        """One PathSpec per path of the device from the cluster node, named ``node->net/host``."""
        specs = self.run.sut.initiator(self.node).path_specs(self.run.device.alias)
        if len(specs) < 2:
            raise DeviceError(
                f"{self.run.device.alias} has {len(specs)} path(s) from {self.node}; "
                "MPIO needs two or more: check the inventory's iSCSI networks"
            )
        return specs

    def where(self) -> dict[str, tuple[str, str]]:
        """path name -> (network, host) it leads to."""
        out = {}
        for spec in self.paths:
            net, host = spec.name.split("->", 1)[1].split("/", 1)
            out[spec.name] = (net, host)
        return out

    def timers(self) -> Any:
        return self.run.inventory.mpio.timers()

    # -- chaos -------------------------------------------------------------------------------

    async def chaos(self, schedule: Schedule) -> WorkloadResult:
        run, settings = self.run, self.run.settings
        timers = self.timers()
        mpio = run.sut.initiator(self.node).multipath(run.device.alias)
        try:
            await mpio.open()
        except SplitbrainError as exc:
            raise DeviceError(
                f"cannot open {run.device.alias} over MPIO from {self.node}: {exc}"
            ) from exc
        device = MultipathBlockDevice(mpio)
        try:
            spec = WorkloadSpec(
                seed=settings.seed,
                writers=settings.writers,
                queue_depth=settings.queue_depth,
                block_sizes=BLOCK_SIZES,
                read_ratio=READ_RATIO,
                duration=settings.duration_s,
                op_timeout=max(30.0, timers.disk_timeout_s),
            ).validate(device.num_blocks * device.block_size, device.block_size)
            header = header_for(
                device,
                spec,
                name=f"{run.device.alias} over {len(self.paths)} paths from {self.node}",
                # a lab this run started holds zeros; a reused one holds anything
                initial="zero" if settings.fresh else "unknown",
                options={"run": "splitbrain chaos", "inventory": str(run.inventory.path),
                         "schedule": schedule.to_json()},
            )
            run.say(
                f"workload: {spec.writers} writers x qd {spec.queue_depth} on "
                f"{header.device} ({device.num_blocks * device.block_size / 2**20:.0f} MiB), "
                f"{settings.duration_s:g} s, seed {spec.seed}, generation {header.generation:08x}"
            )
            with History(self.history_file, header) as history:
                unsubscribe = mirror_path_events(device, history)
                with run.replica_watch(history) as watch:
                    try:
                        result = await self._play(device, spec, history, schedule)
                    finally:
                        unsubscribe()
                    waited = await asyncio.to_thread(run.wait_synchronized, watch)
                if waited is not None:
                    run.say(f"replicas: both Synchronized {waited:.1f} s after the workload ended")
                    run.meta["resync_wait_s"] = waited
                else:
                    run.say(f"replicas: NOT Synchronized within {run.resync_deadline():g} s "
                            f"(resync_s): {watch.last}")
        finally:
            await device.close()
        run.say(f"workload: {result.summary()}")
        return result

    async def _play(
        self, device: Any, spec: WorkloadSpec, history: History, schedule: Schedule
    ) -> WorkloadResult:
        run = self.run
        workload = Workload(device, spec, history)
        nemesis = Nemesis(schedule, run.build_fault(), FaultLog(history, self.faults, self.where()))
        faults = asyncio.create_task(nemesis.run_async())

        def nemesis_done(task: asyncio.Task[list[str]]) -> None:
            if not task.cancelled() and task.exception() is not None:
                workload.stop()  # a fault that cannot be injected or healed ends the run

        faults.add_done_callback(nemesis_done)
        try:
            result = await workload.run()
        except BaseException:
            nemesis.stop()
            with contextlib.suppress(BaseException):
                await faults
            raise
        nemesis.stop()  # the schedule ends before the workload; this is a no-op then
        try:
            injected = await faults
            run.meta["faults_injected"] = injected
        except SplitbrainError as exc:
            run.run_problems.append(Problem("fault_failed", f"the nemesis stopped: {exc}"))
        return result

    # -- checks ------------------------------------------------------------------------------

    async def check(self) -> RunVerdict:
        from harness.chaos.runner import spec_with_isid
        from harness.checks.divergence import image_reader
        from harness.initiator.mpio.session_link import SessionConnector
        from harness.initiator.session import SessionTimeouts

        run = self.run
        history = load_history(self.history_file)
        # a read that the storage never answers is reported (unreadable), not waited out
        timers = self.timers()
        connector = SessionConnector(SessionTimeouts(
            connect=timers.login_timeout_s, login=timers.login_timeout_s,
            command=timers.disk_timeout_s, nop=timers.noop_out_timeout_s or 5.0,
            task_management=10.0, logout=5.0))
        devices: dict[str, Any] = {}
        try:
            for i, spec in enumerate(self.paths):
                try:
                    dev = await IscsiDevice.open(spec_with_isid(spec, i + 1), connector)
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
            run.say(f"checks: reading {run.device.alias} back through {len(devices)} paths and "
                    f"comparing {len(images)} replica images")
            return await check_run(
                history, name=str(self.history_file), devices=devices or None,
                replicas=replicas, budget=run.budget, bin_s=0.5,
            )
        finally:
            for dev in devices.values():
                with contextlib.suppress(SplitbrainError, OSError):
                    await dev.close()
