"""The SCSI commands a session offers by name, built on ``Session.execute``.

Each method builds its CDB with :mod:`harness.scsi.cdb`, runs it, raises the
typed error of a non-GOOD status (``CheckCondition`` with sense,
``ReservationConflict``, ...) and decodes the answer with the parsers of
:mod:`harness.scsi`. A UNIT ATTENTION is recorded in ``unit_attentions`` and the
command retried, as every initiator does; ``execute`` itself never retries. Block
commands need the LUN's block size, which the first ``read_capacity`` of each LUN
caches (``read``/``write`` ask for it when needed).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.initiator.errors import CheckCondition, TaskManagementFailed
from harness.iscsi.codes import TaskManagementFunction
from harness.iscsi.codes import TaskManagementResponseCode as TmfResponse
from harness.scsi import cdb as scsi_cdb
from harness.scsi.alua import RtpgData
from harness.scsi.capacity import ReadCapacity10Data, ReadCapacity16Data
from harness.scsi.errors import ScsiDataError
from harness.scsi.inquiry import StandardInquiry
from harness.scsi.report_luns import ReportLunsData
from harness.scsi.reservations import (
    PrInAction,
    PrOutAction,
    PrOutParameters,
    ReadFullStatusData,
    ReadKeysData,
    ReadReservationData,
    ReportCapabilitiesData,
)
from harness.scsi.sense import SenseData, SenseKey
from harness.scsi.status import ScsiStatus
from harness.scsi.vpd import VpdData, decode_vpd

if TYPE_CHECKING:
    from harness.initiator.task import CommandHandle, ScsiResult, ScsiTask

MAX_UNIT_ATTENTION_RETRIES = 8

PrInData = ReadKeysData | ReadReservationData | ReportCapabilitiesData | ReadFullStatusData

_PR_IN_DECODERS: dict[int, type] = {
    PrInAction.READ_KEYS: ReadKeysData,
    PrInAction.READ_RESERVATION: ReadReservationData,
    PrInAction.REPORT_CAPABILITIES: ReportCapabilitiesData,
    PrInAction.READ_FULL_STATUS: ReadFullStatusData,
}


@dataclass(frozen=True)
class Capacity:
    """Size of a logical unit."""

    block_size: int
    num_blocks: int

    @property
    def bytes(self) -> int:
        return self.block_size * self.num_blocks


class ScsiCommandSet:
    """Named SCSI commands over ``execute`` (mixed into ``Session``)."""

    lun: int
    where: str

    def __init__(self) -> None:
        self._capacities: dict[int, Capacity] = {}
        self.unit_attentions: list[SenseData] = []
        """UNIT ATTENTION conditions the named commands met (and then retried past)."""

    def execute(self, cdb: bytes, lun: int | None = None, data_out: bytes | None = None,
                expected_in: int = 0, *, timeout: float | None = None
                ) -> Awaitable[ScsiResult]:
        raise NotImplementedError

    async def task_management(self, function: int, *, lun: int | None = None,
                              referenced: ScsiTask | CommandHandle | None = None,
                              timeout: float | None = None) -> TmfResponse:
        raise NotImplementedError

    async def _run(self, command: scsi_cdb.Command, lun: int | None, *,
                   data_out: bytes | None = None, expected_in: int = 0,
                   timeout: float | None = None) -> bytes:
        """Run ``command``; a UNIT ATTENTION is recorded and the command retried (a unit
        attention reports each condition once per I_T nexus, so this ends)."""
        cdb = command.encode()
        result = await self.execute(cdb, lun, data_out, expected_in, timeout=timeout)
        if result.status == ScsiStatus.GOOD:
            return result.data
        return await self._settle(result, cdb, lun, data_out, expected_in, timeout)

    async def _settle(self, result: ScsiResult, cdb: bytes, lun: int | None,
                      data_out: bytes | None, expected_in: int, timeout: float | None) -> bytes:
        """The data of a command that did not end GOOD: retried past unit attentions,
        else the typed error of its status."""
        for _ in range(MAX_UNIT_ATTENTION_RETRIES):
            sense = result.sense
            if (result.status != ScsiStatus.CHECK_CONDITION or sense is None
                    or sense.key != SenseKey.UNIT_ATTENTION):
                return result.raise_for_status().data
            self.unit_attentions.append(sense)
            result = await self.execute(cdb, lun, data_out, expected_in, timeout=timeout)
        return result.raise_for_status().data

    # -- identity ----------------------------------------------------------------------------

    async def test_unit_ready(self, lun: int | None = None) -> None:
        await self._run(scsi_cdb.TestUnitReady(), lun)

    async def inquiry(self, lun: int | None = None) -> StandardInquiry:
        raw = await self._run(scsi_cdb.Inquiry(allocation_length=255), lun, expected_in=255)
        return StandardInquiry.decode(raw)

    async def vpd_raw(self, page: int, lun: int | None = None, *,
                      allocation_length: int = 4096) -> bytes:
        return await self._run(
            scsi_cdb.Inquiry(evpd=True, page_code=page, allocation_length=allocation_length),
            lun, expected_in=allocation_length)

    async def vpd(self, page: int, lun: int | None = None) -> VpdData:
        """A decoded VPD page (0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2)."""
        return decode_vpd(await self.vpd_raw(page, lun))

    async def report_luns(self, *, select_report: int = 0) -> list[int]:
        raw = await self._run(scsi_cdb.ReportLuns(allocation_length=16384,
                                                  select_report=select_report),
                              0, expected_in=16384)
        return list(ReportLunsData.decode(raw).luns)

    # -- capacity and data ------------------------------------------------------------------

    async def read_capacity(self, lun: int | None = None) -> Capacity:
        """READ CAPACITY(16), falling back to (10) when the LU does not support 16."""
        lun = self.lun if lun is None else lun
        try:
            raw = await self._run(scsi_cdb.ReadCapacity16(allocation_length=32), lun,
                                  expected_in=32)
            data16 = ReadCapacity16Data.decode(raw)
            capacity = Capacity(data16.block_length, data16.num_blocks)
        except CheckCondition as exc:
            if exc.sense is None or exc.sense.key != SenseKey.ILLEGAL_REQUEST:
                raise
            raw = await self._run(scsi_cdb.ReadCapacity10(), lun, expected_in=8)
            data10 = ReadCapacity10Data.decode(raw)
            capacity = Capacity(data10.block_length, data10.returned_lba + 1)
        if capacity.block_size <= 0:
            raise ScsiDataError(f"{self.where}: LUN {lun} reports block size "
                                f"{capacity.block_size}; the target is broken")
        self._capacities[lun] = capacity
        return capacity

    async def block_size(self, lun: int | None = None) -> int:
        lun = self.lun if lun is None else lun
        known = self._capacities.get(lun)
        if known is None:
            known = await self.read_capacity(lun)
        return known.block_size

    async def read(self, lba: int, blocks: int, lun: int | None = None, *,
                   fua: bool = False, timeout: float | None = None) -> bytes:
        """READ(16) of ``blocks`` blocks at ``lba``."""
        known = self._capacities.get(self.lun if lun is None else lun)
        size = known.block_size if known is not None else await self.block_size(lun)
        cdb = scsi_cdb.Read(lba=lba, blocks=blocks, size=16, fua=fua).encode()
        result = await self.execute(cdb, lun, None, blocks * size, timeout=timeout)
        if result.status == ScsiStatus.GOOD:  # the hot path: no extra coroutine
            return result.data
        return await self._settle(result, cdb, lun, None, blocks * size, timeout)

    async def write(self, lba: int, data: bytes, lun: int | None = None, *,
                    fua: bool = False, timeout: float | None = None) -> None:
        """WRITE(16) of ``data`` (a whole number of blocks) at ``lba``."""
        size = await self.block_size(lun)
        if not data or len(data) % size:
            raise ValueError(f"write of {len(data)} bytes is not a whole number of "
                             f"{size}-byte blocks")
        await self._run(scsi_cdb.Write(lba=lba, blocks=len(data) // size, size=16, fua=fua),
                        lun, data_out=data, timeout=timeout)

    async def synchronize_cache(self, lun: int | None = None, *, lba: int = 0,
                                blocks: int = 0) -> None:
        await self._run(scsi_cdb.SynchronizeCache(lba=lba, blocks=blocks, size=10), lun)

    async def compare_and_write(self, lba: int, verify: bytes, data: bytes,
                                lun: int | None = None, *, fua: bool = False) -> None:
        """COMPARE AND WRITE: raises CheckCondition (MISCOMPARE) when ``verify`` differs."""
        size = await self.block_size(lun)
        if len(verify) != len(data) or len(data) % size:
            raise ValueError("COMPARE AND WRITE needs verify and write data of the same "
                             f"whole number of {size}-byte blocks")
        await self._run(scsi_cdb.CompareAndWrite(lba=lba, blocks=len(data) // size, fua=fua),
                        lun, data_out=verify + data)

    # -- persistent reservations and ALUA -----------------------------------------------------

    async def persistent_reserve_in(self, action: int, lun: int | None = None) -> PrInData:
        raw = await self._run(scsi_cdb.PersistentReserveIn(action=action,
                                                           allocation_length=8192),
                              lun, expected_in=8192)
        return _PR_IN_DECODERS[action].decode(raw)  # type: ignore[no-any-return]

    async def persistent_reserve_out(self, action: int, *, key: int = 0,
                                     service_action_key: int = 0, pr_type: int = 0,
                                     lun: int | None = None, aptpl: bool = False,
                                     all_tg_pt: bool = False) -> None:
        params = PrOutParameters(key=key, service_action_key=service_action_key, aptpl=aptpl,
                                 all_tg_pt=all_tg_pt).encode()
        await self._run(scsi_cdb.PersistentReserveOut(
            action=action, pr_type=pr_type, parameter_list_length=len(params)),
            lun, data_out=params)

    async def pr_register(self, key: int, *, old_key: int = 0, lun: int | None = None) -> None:
        await self.persistent_reserve_out(PrOutAction.REGISTER, key=old_key,
                                          service_action_key=key, lun=lun)

    async def pr_reserve(self, key: int, pr_type: int, lun: int | None = None) -> None:
        await self.persistent_reserve_out(PrOutAction.RESERVE, key=key, pr_type=pr_type, lun=lun)

    async def pr_release(self, key: int, pr_type: int, lun: int | None = None) -> None:
        await self.persistent_reserve_out(PrOutAction.RELEASE, key=key, pr_type=pr_type, lun=lun)

    async def pr_preempt(self, key: int, victim_key: int, pr_type: int,
                         lun: int | None = None) -> None:
        await self.persistent_reserve_out(PrOutAction.PREEMPT, key=key,
                                          service_action_key=victim_key, pr_type=pr_type, lun=lun)

    async def pr_clear(self, key: int, lun: int | None = None) -> None:
        await self.persistent_reserve_out(PrOutAction.CLEAR, key=key, lun=lun)

    async def report_target_port_groups(self, lun: int | None = None) -> RtpgData:
        raw = await self._run(scsi_cdb.ReportTargetPortGroups(allocation_length=4096), lun,
                              expected_in=4096)
        return RtpgData.decode(raw)

    # -- task management --------------------------------------------------------------------

    async def _tmf(self, function: TaskManagementFunction, lun: int | None) -> None:
        code = await self.task_management(function, lun=lun)
        if code != TmfResponse.FUNCTION_COMPLETE:
            raise TaskManagementFailed(
                f"{function.name.replace('_', ' ')} on {self.where} answered "
                f"{code.name.replace('_', ' ')}; the target did not perform it", code)

    async def abort_task(self, handle: CommandHandle) -> TmfResponse:
        """ABORT TASK; returns FUNCTION_COMPLETE or TASK_DOES_NOT_EXIST (already done)."""
        return await self.task_management(TaskManagementFunction.ABORT_TASK, referenced=handle)

    async def abort_task_set(self, lun: int | None = None) -> None:
        await self._tmf(TaskManagementFunction.ABORT_TASK_SET, lun)

    async def clear_task_set(self, lun: int | None = None) -> None:
        await self._tmf(TaskManagementFunction.CLEAR_TASK_SET, lun)

    async def clear_aca(self, lun: int | None = None) -> None:
        await self._tmf(TaskManagementFunction.CLEAR_ACA, lun)

    async def lun_reset(self, lun: int | None = None) -> None:
        await self._tmf(TaskManagementFunction.LOGICAL_UNIT_RESET, lun)

    async def target_warm_reset(self) -> None:
        await self._tmf(TaskManagementFunction.TARGET_WARM_RESET, 0)

    async def target_cold_reset(self) -> None:
        await self._tmf(TaskManagementFunction.TARGET_COLD_RESET, 0)


__all__ = ["Capacity", "PrInData", "ScsiCommandSet"]
