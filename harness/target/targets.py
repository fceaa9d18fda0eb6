"""The targets a node exports and the logical units behind them.

Model: an ``ExportedTarget`` is one iSCSI target name with its LUN map; each
``ExportedLun`` wraps a ``harness.target.device.LogicalUnit`` on its image file
(``harness.target.blockstore.ImageFile``). The network side never interprets
SCSI beyond this: it hands ``LogicalUnit.execute`` a complete ``ScsiTask`` and
sends back the ``TaskResult``.

Execution policy: a command that cannot block (a read or write served by the page
cache) runs inline on the event loop, the fastest path; one that may wait on the
disk (FUA writes, SYNCHRONIZE CACHE, UNMAP, WRITE SAME, PR OUT that persists) runs
on the LU's single worker thread so other sessions keep moving. A per-LU FIFO
lock keeps the two paths in arrival order and the LU single-threaded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from harness.target.config import LunConfig, NodeConfig, TargetConfig

if TYPE_CHECKING:
    from harness.target.session import Session
    from harness.target.task import CommandTask

Finish = Callable[..., None]

# Opcodes whose execution may wait on the disk (the FUA bit is checked for writes).
_WRITES_WITH_FUA = frozenset({0x2A, 0xAA, 0x8A, 0x2E, 0xAE, 0x8E, 0x89})
_MAY_BLOCK = frozenset({0x35, 0x91, 0x41, 0x93, 0x42, 0x04, 0x5F})
INLINE_LIMIT = 1 << 20   # bigger transfers go to the worker thread too


def may_block(cdb: bytes, length: int) -> bool:
    op = cdb[0]
    if op in _MAY_BLOCK or length > INLINE_LIMIT:
        return True
    return op in _WRITES_WITH_FUA and bool(cdb[1] & 0x08)


def _sense_bytes(sense: Any) -> bytes:
    if not sense:
        return b""
    if isinstance(sense, bytes | bytearray):
        return bytes(sense)
    return sense.encode()


class ExportedLun:
    """One LUN of a target: the logical unit and its execution queue."""

    def __init__(self, config: LunConfig, unit: Any) -> None:
        self.config = config
        self.unit = unit
        self._order = asyncio.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1,
                                          thread_name_prefix=f"lun{config.lun}")
        self.in_flight = 0

    def submit(self, task: Any, done: Callable[[Any], None]) -> None:
        """Run ``task``; ``done(result)`` is called on the event loop."""
        if not self._order.locked() and not may_block(task.cdb, len(task.data_out)
                                                      or task.expected_in_length):
            done(self.unit.execute(task))
            return
        self.in_flight += 1
        asyncio.get_running_loop().create_task(self._run_ordered(task, done))

    async def _run_ordered(self, task: Any, done: Callable[[Any], None]) -> None:
        try:
            async with self._order:
                loop = asyncio.get_running_loop()
                if may_block(task.cdb, len(task.data_out) or task.expected_in_length):
                    result = await loop.run_in_executor(self._worker, self.unit.execute, task)
                else:
                    result = self.unit.execute(task)
        finally:
            self.in_flight -= 1
        done(result)

    async def quiesce(self) -> None:
        """Wait until every command submitted so far has finished."""
        async with self._order:
            pass

    async def close(self) -> None:
        await self.quiesce()
        loop = asyncio.get_running_loop()
        close = getattr(self.unit, "close", None)
        if close is not None:
            await loop.run_in_executor(self._worker, close)
        self._worker.shutdown(wait=True)


class ExportedTarget:
    """One iSCSI target of the node and its LUN map."""

    def __init__(self, config: TargetConfig, node_config: NodeConfig) -> None:
        self.config = config
        self.node_config = node_config
        self.luns: dict[int, ExportedLun] = {}

    # -- building -------------------------------------------------------------------------

    async def open(self) -> None:
        for lun_cfg in self.config.luns:
            await self.add_lun(lun_cfg)

    async def add_lun(self, lun_cfg: LunConfig) -> ExportedLun:
        from harness.target import lu_binding

        loop = asyncio.get_running_loop()
        unit = await loop.run_in_executor(None, lu_binding.open_logical_unit, lun_cfg,
                                          self.config, self.node_config)
        exported = ExportedLun(lun_cfg, unit)
        self.luns[lun_cfg.lun] = exported
        self._refresh_lun_maps()
        return exported

    async def remove_lun(self, lun: int) -> None:
        exported = self.luns.pop(lun)
        self._refresh_lun_maps()
        await exported.close()

    async def close(self) -> None:
        for lun in list(self.luns):
            await self.remove_lun(lun)

    def _refresh_lun_maps(self) -> None:
        from harness.target import lu_binding

        lu_binding.lun_map_changed(self)

    # -- used by sessions -----------------------------------------------------------------

    def nexus_for(self, initiator_name: str, isid: int, tpgt: int) -> Any:
        from harness.target import lu_binding

        return lu_binding.make_nexus(initiator_name, isid, self.config.iqn, tpgt)

    def submit(self, session: Session, ctask: CommandTask, finish: Finish) -> None:
        from harness.target import lu_binding

        read_len = ctask.edtl if ctask.cmd.read else 0
        scsi_task = lu_binding.make_task(session.nexus, ctask.lun, ctask.cmd.cdb,
                                         ctask.data_buffer(), read_len)
        exported = self.luns.get(ctask.lun)

        def done(result: Any) -> None:
            finish(ctask, int(result.status), result.data_in or b"",
                   _sense_bytes(result.sense), lu_binding.residual_of(result))

        if exported is None:
            done(lu_binding.execute_without_lu(self, scsi_task))
            return
        exported.submit(scsi_task, done)

    def refuse_oversized(self, cdb: bytes) -> tuple[int, bytes, bytes]:
        from harness.target import lu_binding

        status, sense = lu_binding.refuse_transfer_length(cdb)
        return status, b"", sense

    async def quiesce(self, luns: set[int]) -> None:
        for n in luns:
            exported = self.luns.get(n)
            if exported is not None:
                await exported.quiesce()

    def reset_lun(self, lun: int, nexus: Any, *, target_reset: bool = False) -> None:
        from harness.target import lu_binding

        exported = self.luns.get(lun)
        if exported is not None:
            lu_binding.reset(exported.unit, nexus, target_reset=target_reset)

    def tasks_cleared(self, lun: int, nexus: Any) -> None:
        from harness.target import lu_binding

        exported = self.luns.get(lun)
        if exported is not None:
            lu_binding.tasks_cleared(exported.unit, nexus)

    def luns_changed(self, nexus: Any) -> None:
        from harness.target import lu_binding

        for exported in self.luns.values():
            lu_binding.luns_changed(exported.unit, nexus)

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

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
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
        target = ExportedTarget(target_cfg, self.config)
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
