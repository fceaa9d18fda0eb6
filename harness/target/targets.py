"""The targets a node exports and the logical units behind them.

Model: an ``ExportedTarget`` is one iSCSI target name with its LUN map; each
``ExportedLun`` wraps a ``harness.target.device.LogicalUnit`` on its image file
(``harness.target.blockstore.ImageFile``). The network side never interprets
SCSI beyond this: it hands ``LogicalUnit.execute`` a complete ``ScsiTask`` and
sends back the ``TaskResult``; ``harness.target.lu_binding`` is the one seam.

Commands start in arrival order. On a local image LU a command's first step runs
inside the loop turn that received it (a page-cache read completes right there);
one that has to wait (an fdatasync, an HA mirror) continues as an asyncio task, so
one slow FUA write never stalls a read. The logical unit keeps its own ordering
rules (COMPARE AND WRITE gate, group commit of fdatasync). Task management waits
for the commands it aborts (``quiesce``) before it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import types
from collections.abc import Callable, Coroutine, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from harness.target import lu_binding
from harness.target.config import LunConfig, NodeConfig, TargetConfig

if TYPE_CHECKING:
    from harness.target.nexus import ItNexus
    from harness.target.session import Session, SessionTable
    from harness.target.task import CommandTask

Finish = Callable[..., None]


class ExportedLun:
    """One LUN of a target: the logical unit and the commands running on it.

    For a logical unit on a local image file the first step of ``execute`` runs
    at once, in the caller's turn of the event loop: a page-cache read or write
    completes right there, with no task to create or schedule. Only a command
    that really waits (an fdatasync, a large transfer on the executor) becomes an
    asyncio task for the rest of its life. Other block stores (an HA mirror, which
    may use ``asyncio.timeout``) always start as a task of their own.
    """

    def __init__(self, config: LunConfig, unit: Any) -> None:
        self.config = config
        self.unit = unit
        self.eager = lu_binding.runs_eagerly(unit)
        self.running: set[asyncio.Task[None]] = set()

    def submit(self, task: Any, done: Callable[[Any], None]) -> None:
        """Run ``task``; ``done(result)`` is called on the loop when it completes."""
        loop = asyncio.get_running_loop()
        if self.eager:
            coro = self.unit.execute(task)
            try:
                waiting_on = coro.send(None)
            except StopIteration as finished:
                done(finished.value)
                return
            job = loop.create_task(_finish_later(coro, waiting_on, done))
        else:
            job = loop.create_task(_run(self.unit, task, done))
        self.running.add(job)
        job.add_done_callback(self.running.discard)

    async def quiesce(self) -> None:
        """Wait until every command started so far has finished."""
        if self.running:
            await asyncio.wait(list(self.running))

    async def close(self) -> None:
        await self.quiesce()
        await lu_binding.stop(self.unit)


async def _run(unit: Any, task: Any, done: Callable[[Any], None]) -> None:
    done(await unit.execute(task))


async def _finish_later(coro: Coroutine[Any, Any, Any], waiting_on: Any,
                        done: Callable[[Any], None]) -> None:
    done(await _resume(coro, waiting_on))


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """Drive a coroutine that already ran its first step, from inside a Task: every
    future it waits on is handed to the Task unchanged, so it sleeps and wakes as if
    the Task had started it."""
    while True:
        try:
            sent = yield waiting_on
        except BaseException as exc:
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as finished:
                return finished.value
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration as finished:
                return finished.value


class ExportedTarget:
    """One iSCSI target of the node and its LUN map."""

    def __init__(self, config: TargetConfig, node_config: NodeConfig,
                 sessions: SessionTable | None = None) -> None:
        self.config = config
        self.node_config = node_config
        self.sessions = sessions
        self.luns: dict[int, ExportedLun] = {}

    # -- building -------------------------------------------------------------------------

    async def open(self) -> None:
        for lun_cfg in self.config.luns:
            await self.add_lun(lun_cfg)

    async def add_lun(self, lun_cfg: LunConfig) -> ExportedLun:
        loop = asyncio.get_running_loop()

        def luns(_nexus: ItNexus) -> Sequence[int]:
            return sorted(self.luns)

        def abort_tasks(nexuses: Sequence[ItNexus]) -> None:
            self.abort_tasks_of(nexuses, lun_cfg.lun)

        unit = await loop.run_in_executor(
            None, lambda: lu_binding.open_logical_unit(lun_cfg, self.config, self.node_config,
                                                       luns=luns, abort_tasks=abort_tasks))
        await lu_binding.start(unit)
        exported = ExportedLun(lun_cfg, unit)
        self.luns[lun_cfg.lun] = exported
        return exported

    async def remove_lun(self, lun: int) -> None:
        exported = self.luns.pop(lun)
        await exported.close()

    async def close(self) -> None:
        for lun in list(self.luns):
            await self.remove_lun(lun)

    # -- used by sessions -----------------------------------------------------------------

    def nexus_for(self, initiator_name: str, isid: int, tpgt: int) -> ItNexus:
        return lu_binding.make_nexus(initiator_name, isid, self.config.iqn, tpgt)

    def submit(self, session: Session, ctask: CommandTask, finish: Finish) -> None:
        read_len = ctask.edtl if ctask.cmd.read else 0
        exported = self.luns.get(ctask.lun)
        if ctask.cmd.write and exported is not None:
            ctask.write_length = lu_binding.write_length(ctask.cmd.cdb,
                                                         exported.config.block_size)
        scsi_task = lu_binding.make_task(session.nexus, ctask.lun, ctask.cmd.cdb,
                                         ctask.data_buffer(), read_len)

        def done(result: Any) -> None:
            finish(ctask, *lu_binding.result_fields(result))

        if exported is None:
            done(lu_binding.execute_without_lu(sorted(self.luns), scsi_task))
            return
        exported.submit(scsi_task, done)

    def refuse_oversized(self, cdb: bytes) -> tuple[int, bytes, bytes]:
        status, sense = lu_binding.refuse_transfer_length(cdb)
        return status, b"", sense

    async def quiesce(self, luns: set[int]) -> None:
        for n in luns:
            exported = self.luns.get(n)
            if exported is not None:
                await exported.quiesce()

    def abort_tasks_of(self, nexuses: Sequence[ItNexus], lun: int) -> None:
        """PREEMPT AND ABORT: the preempted nexuses' tasks on ``lun`` end unanswered."""
        if self.sessions is None:
            return
        keys = {n.key for n in nexuses}
        for s in self.sessions.of_target(self.config.iqn):
            if s.nexus is not None and s.nexus.key in keys:
                s.abort_tasks(lambda t: t.lun == lun)

    async def reset_lun(self, lun: int, nexus: ItNexus | None, *,
                        target_reset: bool = False) -> None:
        exported = self.luns.get(lun)
        if exported is not None:
            await lu_binding.reset(exported.unit, nexus)

    def tasks_cleared(self, lun: int, nexus: ItNexus) -> None:
        exported = self.luns.get(lun)
        if exported is not None:
            lu_binding.tasks_cleared(exported.unit, nexus)

    def luns_changed(self, nexus: ItNexus) -> None:
        for exported in self.luns.values():
            lu_binding.luns_changed(exported.unit, nexus)

    def nexus_lost(self, nexus: ItNexus) -> None:
        for exported in self.luns.values():
            lu_binding.nexus_lost(exported.unit, nexus)

    def describe(self) -> dict[str, Any]:
        return {
            "iqn": self.config.iqn,
            "alias": self.config.alias,
            "initiators": list(self.config.initiators),
            "chap": None if self.config.chap is None else
            ("mutual" if self.config.chap.mutual else "one-way"),
            "luns": [{"lun": e.config.lun, "image": str(e.config.image), "size": e.config.size,
                      "block_size": e.config.block_size, "serial": e.config.serial,
                      "naa": e.config.naa, "vendor": e.config.vendor,
                      "product": e.config.product} for e in self.luns.values()],
        }


class TargetTable:
    """The node's targets by IQN (case-insensitive)."""

    def __init__(self, config: NodeConfig, sessions: SessionTable | None = None) -> None:
        self.config = config
        self.sessions = sessions
        self._targets: dict[str, ExportedTarget] = {}

    def __iter__(self) -> Iterator[ExportedTarget]:
        return iter(list(self._targets.values()))

    def __len__(self) -> int:
        return len(self._targets)

    def get(self, iqn: str) -> ExportedTarget | None:
        return self._targets.get(iqn.lower())

    async def open_all(self) -> None:
        for target_cfg in self.config.targets:
            await self.add(target_cfg)

    async def add(self, target_cfg: TargetConfig) -> ExportedTarget:
        target = ExportedTarget(target_cfg, self.config, self.sessions)
        try:
            await target.open()
        except BaseException:
            with contextlib.suppress(Exception):
                await target.close()
            raise
        self._targets[target_cfg.iqn.lower()] = target
        return target

    async def remove(self, iqn: str) -> None:
        target = self._targets.pop(iqn.lower())
        await target.close()

    async def close_all(self) -> None:
        for iqn in list(self._targets):
            await self.remove(iqn)
