"""SBC-3 block commands of the logical unit: READ, WRITE, VERIFY, WRITE AND VERIFY,
COMPARE AND WRITE, ORWRITE, WRITE SAME, UNMAP, SYNCHRONIZE CACHE, PRE-FETCH.

``BlockCommands`` is mixed into ``harness.target.device.LogicalUnit``; every
handler takes the task and its parsed command and returns a ``TaskResult``.
COMPARE AND WRITE (and ORWRITE, WRITE AND VERIFY) is atomic with respect to every
other write of the logical unit through ``OverlapGate``: writes register their
LBA range, and an atomic command waits until no write overlaps its range and
keeps new overlapping writes out until it is done. A write whose data-out buffer
carries fewer blocks than its CDB asks for (iSCSI residual underflow) writes only
the whole blocks it got.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from harness.scsi import cdb as c
from harness.scsi.errors import ParameterListError
from harness.scsi.sense import (
    Asc,
    SenseData,
    SenseKey,
    illegal_request,
    invalid_field_in_cdb,
    invalid_field_in_parameter_list,
)
from harness.scsi.status import ScsiStatus
from harness.scsi.unmap import UnmapParameters

if TYPE_CHECKING:
    from harness.target.blockstore import BlockStore
    from harness.target.device import ScsiTask, TaskResult
    from harness.target.identity import BlockLimitsConfig

VERIFY_CHUNK_BLOCKS_BYTES = 1 << 20
# byte offset of the transfer length field per CDB size (for field pointers)
_LENGTH_BYTE = {6: 4, 10: 7, 12: 6, 16: 10}


class OverlapGate:
    """Keeps COMPARE AND WRITE alone on its LBA range."""

    def __init__(self) -> None:
        self._writes: dict[object, tuple[int, int]] = {}
        self._exclusive: dict[object, tuple[int, int]] = {}
        self._waiters: list[asyncio.Future[None]] = []

    @staticmethod
    def _overlaps(ranges: dict[object, tuple[int, int]], lba: int, end: int) -> bool:
        return any(a < end and lba < b for a, b in ranges.values())

    async def enter(self, lba: int, count: int, *, exclusive: bool) -> object:
        end = lba + count
        while self._overlaps(self._exclusive, lba, end) or (
                exclusive and self._overlaps(self._writes, lba, end)):
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            await fut
        token = object()
        (self._exclusive if exclusive else self._writes)[token] = (lba, end)
        return token

    def leave(self, token: object) -> None:
        if self._writes.pop(token, None) is None:
            self._exclusive.pop(token, None)
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    @property
    def idle(self) -> bool:
        return not self._writes and not self._exclusive


def _first_difference(a: bytes | memoryview, b: bytes | memoryview) -> int:
    if len(a) != len(b):
        n = min(len(a), len(b))
        return _first_difference(a[:n], b[:n]) if a[:n] != b[:n] else n
    lo, hi = 0, len(a)
    while hi - lo > 64:  # bisect on slices: C-speed comparisons, log n steps
        mid = (lo + hi) // 2
        if a[lo:mid] != b[lo:mid]:
            hi = mid
        else:
            lo = mid
    for i in range(lo, hi):
        if a[i] != b[i]:
            return i
    return hi


def miscompare(offset: int) -> SenseData:
    return SenseData.of(SenseKey.MISCOMPARE, Asc.MISCOMPARE_DURING_VERIFY, information=offset)


class BlockCommands:
    """The block-command handlers (a mixin of ``LogicalUnit``)."""

    store: BlockStore
    limits: BlockLimitsConfig
    read_only: bool
    _gate: OverlapGate

    def _result(self, status: ScsiStatus, data: bytes = b"",
                sense: SenseData | None = None) -> TaskResult:
        raise NotImplementedError

    def _check(self, sense: SenseData) -> TaskResult:
        return self._result(ScsiStatus.CHECK_CONDITION, sense=sense)

    def _range(self, cmd: Any, *, limit: int | None = None) -> TaskResult | None:
        """Common checks of LBA-range commands: protection field, length limit, range."""
        if getattr(cmd, "protect", 0):
            return self._check(invalid_field_in_cdb(1, 7))
        if limit is not None and cmd.blocks > limit:
            return self._check(invalid_field_in_cdb(_LENGTH_BYTE.get(cmd.size, 7)))
        if cmd.lba + cmd.blocks > self.store.num_blocks:
            return self._check(illegal_request(Asc.LBA_OUT_OF_RANGE))
        return None

    def _write_protected(self) -> TaskResult | None:
        if self.read_only:
            return self._check(SenseData.of(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED))
        return None

    async def _read(self, task: ScsiTask, cmd: c.Read) -> TaskResult:
        bad = self._range(cmd, limit=self.limits.max_transfer_blocks)
        if bad is not None:
            return bad
        if not cmd.blocks:
            return self._result(ScsiStatus.GOOD)
        return self._result(ScsiStatus.GOOD, await self.store.read(cmd.lba, cmd.blocks))

    def _writable_blocks(self, task: ScsiTask, cmd: Any) -> TaskResult | int:
        """How many blocks of ``cmd`` its data-out carries, or the CHECK CONDITION for a
        range beyond capacity or the transfer limit, or a write-protected LU."""
        bad = self._range(cmd, limit=self.limits.max_transfer_blocks) or self._write_protected()
        if bad is not None:
            return bad
        return min(cmd.blocks, len(task.data_out) // self.store.block_size)

    async def _write(self, task: ScsiTask, cmd: c.Write) -> TaskResult:
        blocks = self._writable_blocks(task, cmd)
        if not isinstance(blocks, int):  # the CHECK CONDITION to answer
            return blocks
        bs = self.store.block_size
        if blocks:
            data = task.data_out
            if len(data) != blocks * bs:
                data = data[: blocks * bs]
            token = await self._gate.enter(cmd.lba, blocks, exclusive=False)
            try:
                await self.store.write(cmd.lba, data, fua=cmd.fua)  # type: ignore[arg-type]
            finally:
                self._gate.leave(token)
        return self._result(ScsiStatus.GOOD)

    async def _compare(self, lba: int, blocks: int, expected: bytes | memoryview,
                       *, repeat: bool = False) -> int | None:
        """Compare the medium with ``expected``; the byte offset of the first mismatch."""
        bs = self.store.block_size
        step = max(1, VERIFY_CHUNK_BLOCKS_BYTES // bs)
        for done in range(0, blocks, step):
            n = min(step, blocks - done)
            medium = await self.store.read(lba + done, n)
            want = bytes(expected[:bs]) * n if repeat else expected[done * bs:(done + n) * bs]
            if medium != want:
                return done * bs + _first_difference(want, medium)
        return None

    async def _verify(self, task: ScsiTask, cmd: c.Verify) -> TaskResult:
        if cmd.bytchk == 2:
            return self._check(invalid_field_in_cdb(1, 2))
        bad = self._range(cmd)
        if bad is not None:
            return bad
        if not cmd.blocks:
            return self._result(ScsiStatus.GOOD)
        bs = self.store.block_size
        if cmd.bytchk == 0:
            await self._compare_readable(cmd.lba, cmd.blocks)
            return self._result(ScsiStatus.GOOD)
        need = bs if cmd.bytchk == 3 else cmd.blocks * bs
        if len(task.data_out) < need:
            return self._check(invalid_field_in_cdb(_LENGTH_BYTE[cmd.size]))
        off = await self._compare(cmd.lba, cmd.blocks, task.data_out, repeat=cmd.bytchk == 3)
        return self._result(ScsiStatus.GOOD) if off is None else self._check(miscompare(off))

    async def _compare_readable(self, lba: int, blocks: int) -> None:
        step = max(1, VERIFY_CHUNK_BLOCKS_BYTES // self.store.block_size)
        for done in range(0, blocks, step):
            await self.store.read(lba + done, min(step, blocks - done))

    async def _write_and_verify(self, task: ScsiTask, cmd: c.WriteAndVerify) -> TaskResult:
        if cmd.bytchk > 1:
            return self._check(invalid_field_in_cdb(1, 2))
        blocks = self._writable_blocks(task, cmd)
        if not isinstance(blocks, int):  # the CHECK CONDITION to answer
            return blocks
        bs = self.store.block_size
        if not blocks:
            return self._result(ScsiStatus.GOOD)
        data = bytes(task.data_out[: blocks * bs])
        token = await self._gate.enter(cmd.lba, blocks, exclusive=True)
        try:
            await self.store.write(cmd.lba, data, fua=True)
            off = await self._compare(cmd.lba, blocks, data)
        finally:
            self._gate.leave(token)
        if off is not None:  # the medium did not keep what was written
            return self._check(SenseData.of(SenseKey.MEDIUM_ERROR, Asc.WRITE_ERROR,
                                            information=cmd.lba + off // bs))
        return self._result(ScsiStatus.GOOD)

    async def _compare_and_write(self, task: ScsiTask, cmd: c.CompareAndWrite) -> TaskResult:
        if cmd.protect:
            return self._check(invalid_field_in_cdb(1, 7))
        if cmd.blocks > self.limits.max_compare_and_write_blocks:
            return self._check(invalid_field_in_cdb(13))
        if cmd.lba + cmd.blocks > self.store.num_blocks:
            return self._check(illegal_request(Asc.LBA_OUT_OF_RANGE))
        bad = self._write_protected()
        if bad is not None:
            return bad
        if not cmd.blocks:  # nothing to do, unless data came with it (a 256-block request)
            return self._check(invalid_field_in_cdb(13)) if len(task.data_out) else \
                self._result(ScsiStatus.GOOD)
        size = cmd.blocks * self.store.block_size
        if len(task.data_out) != 2 * size:  # verify and write data must both be whole
            return self._check(invalid_field_in_cdb(13))
        data = memoryview(task.data_out)
        token = await self._gate.enter(cmd.lba, cmd.blocks, exclusive=True)
        try:
            medium = await self.store.read(cmd.lba, cmd.blocks)
            if medium != data[:size]:
                return self._check(miscompare(_first_difference(data[:size], medium)))
            await self.store.write(cmd.lba, bytes(data[size : 2 * size]), fua=cmd.fua)
        finally:
            self._gate.leave(token)
        return self._result(ScsiStatus.GOOD)

    async def _or_write(self, task: ScsiTask, cmd: c.OrWrite) -> TaskResult:
        blocks = self._writable_blocks(task, cmd)
        if not isinstance(blocks, int):  # the CHECK CONDITION to answer
            return blocks
        bs = self.store.block_size
        if not blocks:
            return self._result(ScsiStatus.GOOD)
        mask = int.from_bytes(task.data_out[: blocks * bs], "big")
        token = await self._gate.enter(cmd.lba, blocks, exclusive=True)
        try:
            medium = int.from_bytes(await self.store.read(cmd.lba, blocks), "big")
            await self.store.write(cmd.lba, (medium | mask).to_bytes(blocks * bs, "big"),
                                   fua=cmd.fua)
        finally:
            self._gate.leave(token)
        return self._result(ScsiStatus.GOOD)

    async def _write_same(self, task: ScsiTask, cmd: c.WriteSame) -> TaskResult:
        if cmd.anchor:
            return self._check(invalid_field_in_cdb(1, 4))
        if not cmd.blocks:  # WSNZ = 1 in the Block Limits page
            return self._check(invalid_field_in_cdb(_LENGTH_BYTE[cmd.size]))
        bad = self._range(cmd, limit=self.limits.max_write_same_blocks) or \
            self._write_protected()
        if bad is not None:
            return bad
        bs = self.store.block_size
        if cmd.ndob:
            block = bytes(bs)
        elif len(task.data_out) != bs:  # exactly one logical block of data
            return self._check(invalid_field_in_cdb(_LENGTH_BYTE[cmd.size]))
        else:
            block = bytes(task.data_out[:bs])
        token = await self._gate.enter(cmd.lba, cmd.blocks, exclusive=False)
        try:
            if cmd.unmap and not any(block):
                await self.store.unmap(cmd.lba, cmd.blocks)
            else:
                await self._write_repeated(cmd.lba, block, cmd.blocks)
        finally:
            self._gate.leave(token)
        return self._result(ScsiStatus.GOOD)

    async def _write_repeated(self, lba: int, block: bytes, count: int) -> None:
        repeated = getattr(self.store, "write_repeated", None)
        if repeated is not None:
            await repeated(lba, block, count)
            return
        step = max(1, VERIFY_CHUNK_BLOCKS_BYTES // len(block))
        for done in range(0, count, step):
            n = min(step, count - done)
            await self.store.write(lba + done, block * n)

    async def _unmap(self, task: ScsiTask, cmd: c.Unmap) -> TaskResult:
        if cmd.anchor:
            return self._check(invalid_field_in_cdb(1, 0))
        if not cmd.parameter_list_length:
            return self._result(ScsiStatus.GOOD)
        bad = self._write_protected()
        if bad is not None:
            return bad
        raw = bytes(task.data_out[: cmd.parameter_list_length])
        if cmd.parameter_list_length < 8 or len(raw) < cmd.parameter_list_length:
            return self._check(illegal_request(Asc.PARAMETER_LIST_LENGTH_ERROR))
        try:
            params = UnmapParameters.decode(raw)
        except ParameterListError as exc:
            return self._check(illegal_request(Asc.PARAMETER_LIST_LENGTH_ERROR)
                               if exc.length_error else invalid_field_in_parameter_list(exc.byte))
        if len(params.ranges) > self.limits.max_unmap_descriptors:
            return self._check(invalid_field_in_parameter_list(2))
        for i, (lba, n) in enumerate(params.ranges):
            if n > self.limits.max_unmap_blocks:
                return self._check(invalid_field_in_parameter_list(8 + 16 * i + 8))
            if lba + n > self.store.num_blocks:
                return self._check(illegal_request(Asc.LBA_OUT_OF_RANGE))
        for lba, n in params.ranges:
            if n:
                token = await self._gate.enter(lba, n, exclusive=False)
                try:
                    await self.store.unmap(lba, n)
                finally:
                    self._gate.leave(token)
        return self._result(ScsiStatus.GOOD)

    async def _synchronize_cache(self, task: ScsiTask, cmd: c.SynchronizeCache) -> TaskResult:
        if cmd.lba + cmd.blocks > self.store.num_blocks:
            return self._check(illegal_request(Asc.LBA_OUT_OF_RANGE))
        await self.store.flush()
        return self._result(ScsiStatus.GOOD)

    async def _pre_fetch(self, task: ScsiTask, cmd: c.PreFetch) -> TaskResult:
        if cmd.lba + cmd.blocks > self.store.num_blocks:
            return self._check(illegal_request(Asc.LBA_OUT_OF_RANGE))
        return self._result(ScsiStatus.GOOD)
