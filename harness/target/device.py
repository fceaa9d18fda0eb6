"""The SCSI logical unit of the reference target, pure of networking.

Model: the network side hands ``LogicalUnit.execute`` one complete ``ScsiTask``
(I_T nexus, LUN, CDB, the whole data-out buffer, the expected data-in length)
and sends back the ``TaskResult`` (status, data-in, sense). A command goes
through four gates in SAM-5/SPC-4 order before its handler runs:

1. unit attention: a pending UA for the nexus fails every command except
   INQUIRY, REPORT LUNS and REQUEST SENSE (which reports and clears it); a nexus
   seen for the first time starts with POWER ON, RESET OR BUS DEVICE RESET;
2. CDB parsing: unknown opcode -> INVALID COMMAND OPERATION CODE, a bad field ->
   INVALID FIELD IN CDB with the field pointer;
3. ALUA: the access state of the nexus's target port group (``alua``);
4. reservations: the SPC-4 conflict table (``reservations``).

Data-in is never longer than the command's allocation length; the iSCSI layer
compares it with ExpectedDataTransferLength for residuals. Sense is encoded in
descriptor format when the control mode page says D_SENSE. PR changes, ALUA
state changes, capacity changes, mode changes and resets post unit attentions
to the nexuses they concern; PREEMPT AND ABORT calls ``abort_tasks`` so the
network side can abort the preempted nexuses' tasks.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import SplitbrainError
from harness.scsi import cdb as c
from harness.scsi.alua import AccessState, SetTargetPortGroupsList
from harness.scsi.capacity import ReadCapacity10Data, ReadCapacity16Data
from harness.scsi.errors import CdbError, ParameterListError, UnsupportedOpcode
from harness.scsi.mode import BlockDescriptor, ModeParameters
from harness.scsi.opcodes import Opcode
from harness.scsi.provisioning import LbaStatusData, LbaStatusDescriptor, ProvisioningStatus
from harness.scsi.report_luns import ReportLunsData
from harness.scsi.reservations import (
    PrInAction,
    PrOutAction,
    PrOutParameters,
    RegisterAndMoveParameters,
)
from harness.scsi.sense import (
    AdditionalSense,
    Asc,
    SenseData,
    SenseKey,
    illegal_request,
    invalid_field_in_cdb,
    invalid_field_in_parameter_list,
)
from harness.scsi.status import ScsiStatus
from harness.scsi.supported_opcodes import AllCommandsData, CommandSupport, OneCommandData
from harness.target import alua as alua_rules
from harness.target import opcode_support
from harness.target.alua import AluaError, AluaGroups
from harness.target.block_commands import BlockCommands, OverlapGate
from harness.target.blockstore import BlockStore, BlockStoreError
from harness.target.identity import (
    BlockLimitsConfig,
    LuIdentity,
    standard_inquiry,
    vpd_page,
)
from harness.target.modepages import ModePages
from harness.target.nexus import ItNexus
from harness.target.reservations import Access, PersistentReservations, PrOutcome, Registration

log = logging.getLogger(__name__)

MAX_PENDING_UA = 16
_TEST_UNIT_READY = bytes(6)
MAX_NEXUSES = 4096   # nexuses remembered (with their unit attentions) beyond their loss
_ACTIVE = frozenset({AccessState.ACTIVE_OPTIMIZED, AccessState.ACTIVE_NON_OPTIMIZED})
_R10 = struct.Struct(">BBIBHB")   # opcode, flags, lba, group, blocks, control
_R16 = struct.Struct(">BBQIBB")   # opcode, flags, lba, blocks, group, control
# opcode -> (is a write, layout, index of the transfer length in the unpacked fields)
_FAST_RW = {Opcode.READ_10: (False, _R10, 4), Opcode.WRITE_10: (True, _R10, 4),
            Opcode.READ_16: (False, _R16, 3), Opcode.WRITE_16: (True, _R16, 3)}
_UA_EXEMPT = frozenset({Opcode.INQUIRY, Opcode.REPORT_LUNS, Opcode.REQUEST_SENSE})


@dataclass(frozen=True, slots=True)
class ScsiTask:
    nexus: ItNexus
    lun: int
    cdb: bytes
    data_out: bytes | bytearray | memoryview = b""
    expected_in_length: int = 0


@dataclass(frozen=True, slots=True)
class TaskResult:
    status: ScsiStatus
    data_in: bytes = b""
    sense: SenseData | None = None
    descriptor_sense: bool = False

    @property
    def sense_bytes(self) -> bytes:
        """The sense data as carried after iSCSI's SenseLength (fixed or descriptor)."""
        if self.sense is None:
            return b""
        return self.sense.encode(descriptor=self.descriptor_sense)


GOOD = TaskResult(ScsiStatus.GOOD)
CONFLICT = TaskResult(ScsiStatus.RESERVATION_CONFLICT)

# how each command is treated under reservations (SPC-4 table 55, SBC-3 table 13)
_ACCESS: dict[type, Access] = {
    c.Inquiry: Access.NONE, c.ReportLuns: Access.NONE, c.RequestSense: Access.NONE,
    c.PersistentReserveIn: Access.NONE, c.ReportTargetPortGroups: Access.NONE,
    c.ReportSupportedOpcodes: Access.SENSE, c.ModeSense: Access.SENSE,
    c.TestUnitReady: Access.INFO, c.ReadCapacity10: Access.INFO, c.ReadCapacity16: Access.INFO,
    c.Read: Access.READ, c.Verify: Access.READ, c.PreFetch: Access.READ,
    c.GetLbaStatus: Access.READ,
    c.PersistentReserveOut: Access.PR_OUT, c.Reserve6: Access.LEGACY, c.Release6: Access.LEGACY,
}


class LogicalUnit(BlockCommands):
    """One SCSI logical unit (direct-access block device) on a ``BlockStore``."""

    def __init__(
        self, store: BlockStore, identity: LuIdentity, *,
        alua: AluaGroups | None = None,
        reservations: PersistentReservations | None = None,
        limits: BlockLimitsConfig | None = None,
        read_only: bool = False,
        luns: Callable[[ItNexus], Sequence[int]] | None = None,
        abort_tasks: Callable[[Sequence[ItNexus]], None] | None = None,
    ) -> None:
        self.store = store
        self.identity = identity
        self.alua = alua or AluaGroups.single()
        self.reservations = reservations or PersistentReservations()
        self.limits = limits or BlockLimitsConfig.for_block_size(
            store.block_size, getattr(store, "physical_block_size", None))
        self.read_only = read_only
        self.modes = ModePages(write_back=not getattr(store, "write_through", True))
        self.luns = luns
        self.abort_tasks = abort_tasks
        self._gate = OverlapGate()
        self._nexuses: dict[tuple[str, str], ItNexus] = {}
        self._ua: dict[tuple[str, str], list[AdditionalSense]] = {}
        self._lost: dict[tuple[str, str], None] = {}  # lost nexuses, longest lost first
        self._ports: dict[int, str] = {}
        self._handlers: dict[type, Callable[[ScsiTask, Any], Any]] = {
            c.Read: self._read, c.Write: self._write, c.Verify: self._verify,
            c.WriteAndVerify: self._write_and_verify,
            c.CompareAndWrite: self._compare_and_write, c.WriteSame: self._write_same,
            c.Unmap: self._unmap, c.SynchronizeCache: self._synchronize_cache,
            c.PreFetch: self._pre_fetch, c.TestUnitReady: self._test_unit_ready,
            c.StartStopUnit: self._test_unit_ready, c.Inquiry: self._inquiry,
            c.RequestSense: self._request_sense, c.ReadCapacity10: self._read_capacity10,
            c.ReadCapacity16: self._read_capacity16, c.ReportLuns: self._report_luns,
            c.ModeSense: self._mode_sense, c.ModeSelect: self._mode_select,
            c.PersistentReserveIn: self._pr_in, c.PersistentReserveOut: self._pr_out,
            c.Reserve6: self._reserve6, c.Release6: self._release6,
            c.ReportTargetPortGroups: self._rtpg, c.SetTargetPortGroups: self._stpg,
            c.ReportSupportedOpcodes: self._report_supported_opcodes,
            c.GetLbaStatus: self._get_lba_status, c.OrWrite: self._or_write,
        }

    # -- results ----------------------------------------------------------------------

    def _result(self, status: ScsiStatus, data: bytes = b"",
                sense: SenseData | None = None) -> TaskResult:
        if sense is None:
            return TaskResult(status, data) if data or status else GOOD
        return TaskResult(status, data, sense, self.modes.d_sense)

    # -- execution --------------------------------------------------------------------

    async def execute(self, task: ScsiTask) -> TaskResult:
        """Run one SCSI command to completion and return its status, data and sense."""
        nexus = task.nexus
        key = nexus.key
        if key not in self._nexuses:
            self._admit_nexus(nexus)
        cdb = task.cdb
        pending = self._ua.get(key)
        if pending and cdb and cdb[0] not in _UA_EXEMPT:
            code = pending.pop(0)
            return self._check(SenseData.of(SenseKey.UNIT_ATTENTION, code))
        fast = _FAST_RW.get(cdb[0]) if cdb else None
        if fast is not None and len(cdb) == fast[1].size:
            f = fast[1].unpack(cdb)
            try:
                done = await self._fast_read_write(task, fast[0], f[1], f[2], f[fast[2]], f[5])
            except Exception as exc:  # mapped to sense exactly like the general path
                return self._failure(exc, "READ/WRITE")
            if done is not None:
                return done
        try:
            cmd = c.parse_cdb(cdb)
        except UnsupportedOpcode:
            return self._check(illegal_request(Asc.INVALID_COMMAND_OPERATION_CODE))
        except CdbError as exc:
            return self._check(invalid_field_in_cdb(exc.byte, exc.bit))
        if cdb[len(cdb) - 1] & 0x04:  # NACA: ACA is not supported
            return self._check(invalid_field_in_cdb(len(cdb) - 1, 2))
        refusal = alua_rules.refusal(self.alua.state_of(nexus.target_port_group), cdb)
        if refusal is not None:
            return self._check(refusal)
        if self.reservations.conflicts(nexus, _ACCESS.get(type(cmd), Access.WRITE)):
            return CONFLICT
        handler = self._handlers.get(type(cmd))
        if handler is None:
            return self._check(illegal_request(Asc.INVALID_COMMAND_OPERATION_CODE))
        try:
            return await handler(task, cmd)  # type: ignore[no-any-return]
        except Exception as exc:  # a failure here must not take the connection down
            return self._failure(exc, type(cmd).__name__)

    def _failure(self, exc: Exception, command: str) -> TaskResult:
        """The sense for a command that raised: medium errors, a replica not serving,
        and (logged) internal failures."""
        if isinstance(exc, BlockStoreError):
            return self._check(_store_sense(exc))
        if isinstance(exc, SplitbrainError) and hasattr(exc, "transitioning"):
            code = (Asc.NOT_READY_ASYMMETRIC_ACCESS_TRANSITION if exc.transitioning
                    else Asc.NOT_READY_TARGET_PORT_UNAVAILABLE)  # an HA replica not serving
            return self._check(SenseData.of(SenseKey.NOT_READY, code))
        if isinstance(exc, SplitbrainError):
            log.error("LU %s: %s failed: %s", self.identity.serial, command, exc)
        else:
            log.error("LU %s: %s raised", self.identity.serial, command, exc_info=exc)
        return self._check(SenseData.of(SenseKey.HARDWARE_ERROR, Asc.INTERNAL_TARGET_FAILURE))

    async def _fast_read_write(self, task: ScsiTask, write: bool, flags: int, lba: int,
                               blocks: int, control: int) -> TaskResult | None:
        """READ/WRITE(10/16) that pass every check, without building a command object.

        Returns None for anything unusual (protection bits, NACA, empty or oversized
        transfer, out of range, refused by ALUA or reservations, read-only): the general
        path then produces exactly the sense the standard asks for.
        """
        store = self.store
        if (flags & 0xE0 or control & 0x04 or not 0 < blocks <= self.limits.max_transfer_blocks
                or lba + blocks > store.num_blocks
                or self.alua.state_of(task.nexus.target_port_group) not in _ACTIVE):
            return None
        if write:
            if self.read_only or self.reservations.conflicts(task.nexus, Access.WRITE):
                return None
            data = task.data_out
            size = blocks * store.block_size
            if len(data) != size:
                return None
            token = await self._gate.enter(lba, blocks, exclusive=False)
            try:
                await store.write(lba, data, fua=bool(flags & 0x08))  # type: ignore[arg-type]
            finally:
                self._gate.leave(token)
            return GOOD
        if self.reservations.conflicts(task.nexus, Access.READ):
            return None
        return TaskResult(ScsiStatus.GOOD, await store.read(lba, blocks))

    # -- nexuses and unit attentions --------------------------------------------------

    def _admit_nexus(self, nexus: ItNexus) -> None:
        while len(self._nexuses) >= MAX_NEXUSES and self._lost:
            # forget the longest-lost nexus; if it ever returns it starts with POWER ON
            gone = next(iter(self._lost))
            del self._lost[gone]
            self._nexuses.pop(gone, None)
            self._ua.pop(gone, None)
        self._lost.pop(nexus.key, None)
        self._nexuses[nexus.key] = nexus
        self._ports.setdefault(nexus.relative_target_port_id, nexus.target_port)
        self.alua.admit_port(nexus.target_port_group, nexus.relative_target_port_id)
        self._ua[nexus.key] = [Asc.POWER_ON_RESET]

    @property
    def nexuses(self) -> tuple[ItNexus, ...]:
        return tuple(self._nexuses.values())

    def pending_attentions(self, nexus: ItNexus) -> tuple[AdditionalSense, ...]:
        return tuple(self._ua.get(nexus.key, ()))

    def post_attention(self, code: AdditionalSense, *,
                       to: Sequence[ItNexus] | None = None,
                       exclude: ItNexus | None = None) -> None:
        """Establish a unit attention for ``to`` (default: every nexus seen) but ``exclude``."""
        targets = self._nexuses.values() if to is None else to
        for nexus in targets:
            if exclude is not None and nexus.key == exclude.key:
                continue
            queue = self._ua.setdefault(nexus.key, [])
            if code not in queue and len(queue) < MAX_PENDING_UA:
                queue.append(code)

    def _post_to_registration(self, reg: Registration, code: AdditionalSense,
                              exclude: ItNexus) -> None:
        self.post_attention(code, exclude=exclude,
                            to=[n for n in self._nexuses.values() if reg.covers(n)])

    def register_target_port(self, relative_port: int, target_port: str) -> None:
        """Name a target port for REGISTER AND MOVE before any command arrived through it."""
        self._ports[relative_port] = target_port

    # -- management-side events -------------------------------------------------------

    def reset(self, requester: ItNexus | None = None) -> None:
        """LOGICAL UNIT RESET: release RESERVE(6), reset mode pages, UA to every nexus."""
        self.reservations.reset()
        self.modes.reset()
        self._apply_write_cache()
        self.post_attention(Asc.BUS_DEVICE_RESET_OCCURRED)
        if requester is not None and requester.key not in self._nexuses:
            self._admit_nexus(requester)

    def nexus_lost(self, nexus: ItNexus) -> None:
        """The I_T nexus is gone (session closed or reinstated)."""
        self.reservations.nexus_lost(nexus)
        if nexus.key in self._nexuses:
            self._ua[nexus.key] = [Asc.I_T_NEXUS_LOSS_OCCURRED]
            self._lost.pop(nexus.key, None)
            self._lost[nexus.key] = None

    def set_access_state(self, group_id: int, state: AccessState) -> None:
        """Implicit ALUA transition (failover): UA ASYMMETRIC ACCESS STATE CHANGED to all."""
        if self.alua.set_state(group_id, state, explicit=False):
            self.post_attention(Asc.ASYMMETRIC_ACCESS_STATE_CHANGED)

    async def resize(self, num_blocks: int) -> None:
        resize = getattr(self.store, "resize", None)
        if resize is None:
            raise SplitbrainError(f"LU {self.identity.serial}: its block store cannot resize")
        await resize(num_blocks)
        self.post_attention(Asc.CAPACITY_DATA_HAS_CHANGED)

    def _apply_write_cache(self) -> None:
        if hasattr(self.store, "write_through"):
            self.store.write_through = not self.modes.write_back

    # -- SPC commands -----------------------------------------------------------------

    async def _test_unit_ready(self, task: ScsiTask, cmd: c.Command) -> TaskResult:
        return GOOD

    async def _inquiry(self, task: ScsiTask, cmd: c.Inquiry) -> TaskResult:
        if not cmd.evpd:
            if cmd.page_code:
                return self._check(invalid_field_in_cdb(2))
            multiport = len(self._ports) > 1 or len(self.alua.groups) > 1
            data = standard_inquiry(self.identity, tpgs=self.alua.tpgs, multiport=multiport)
        else:
            page = vpd_page(cmd.page_code, self.identity, task.nexus, self.limits)
            if page is None:
                return self._check(invalid_field_in_cdb(2))
            data = page
        return self._result(ScsiStatus.GOOD, data[: cmd.allocation_length])

    async def _request_sense(self, task: ScsiTask, cmd: c.RequestSense) -> TaskResult:
        pending = self._ua.get(task.nexus.key)
        if pending:
            sense = SenseData.of(SenseKey.UNIT_ATTENTION, pending.pop(0))
        else:  # a port that may not serve media access reports why (SPC-4 5.16.2.4)
            state = self.alua.state_of(task.nexus.target_port_group)
            sense = alua_rules.refusal(state, _TEST_UNIT_READY) or SenseData.of(
                SenseKey.NO_SENSE, Asc.NO_ADDITIONAL_SENSE)
        return self._result(ScsiStatus.GOOD,
                            sense.encode(descriptor=cmd.desc)[: cmd.allocation_length])

    async def _read_capacity10(self, task: ScsiTask, cmd: c.ReadCapacity10) -> TaskResult:
        if not cmd.pmi and cmd.lba:
            return self._check(invalid_field_in_cdb(2))
        data = ReadCapacity10Data.for_device(self.store.num_blocks, self.store.block_size)
        return self._result(ScsiStatus.GOOD, data.encode())

    async def _read_capacity16(self, task: ScsiTask, cmd: c.ReadCapacity16) -> TaskResult:
        if not cmd.pmi and cmd.lba:
            return self._check(invalid_field_in_cdb(2))
        data = ReadCapacity16Data(self.store.num_blocks - 1, self.store.block_size,
                                  logical_per_physical_exponent=self.limits.physical_exponent,
                                  lbpme=True, lbprz=True)
        return self._result(ScsiStatus.GOOD, data.encode()[: cmd.allocation_length])

    async def _report_luns(self, task: ScsiTask, cmd: c.ReportLuns) -> TaskResult:
        if cmd.select_report not in (0, 1, 2):
            return self._check(invalid_field_in_cdb(2))
        if cmd.allocation_length < 16:
            return self._check(invalid_field_in_cdb(6))
        luns = tuple(self.luns(task.nexus)) if self.luns else (task.lun,)
        if cmd.select_report == 1:
            luns = ()
        return self._result(ScsiStatus.GOOD,
                            ReportLunsData(luns).encode()[: cmd.allocation_length])

    async def _mode_sense(self, task: ScsiTask, cmd: c.ModeSense) -> TaskResult:
        pages = self.modes.sense(cmd.page_code, cmd.subpage, cmd.page_control)
        if isinstance(pages, SenseData):
            return self._check(pages)
        n = self.store.num_blocks
        long_lba = cmd.llbaa and n > 0xFFFFFFFF
        descs = () if cmd.dbd else (BlockDescriptor(n, self.store.block_size),)
        data = ModeParameters(pages, descs, write_protect=self.read_only, dpofua=True,
                              long_lba=long_lba).encode(cmd.size)
        return self._result(ScsiStatus.GOOD, data[: cmd.allocation_length])

    async def _mode_select(self, task: ScsiTask, cmd: c.ModeSelect) -> TaskResult:
        if not cmd.pf:
            return self._check(invalid_field_in_cdb(1, 4))
        if cmd.sp:
            return self._check(invalid_field_in_cdb(1, 0))
        if not cmd.parameter_list_length:
            return GOOD
        raw = bytes(task.data_out[: cmd.parameter_list_length])
        if len(raw) < cmd.parameter_list_length:
            return self._check(illegal_request(Asc.PARAMETER_LIST_LENGTH_ERROR))
        try:
            params = ModeParameters.decode(raw, cmd.size, select=True)
        except ParameterListError as exc:
            return self._check(illegal_request(Asc.PARAMETER_LIST_LENGTH_ERROR)
                               if exc.length_error else invalid_field_in_parameter_list(exc.byte))
        head = 4 if cmd.size == 6 else 8
        for i, d in enumerate(params.block_descriptors):
            if d.block_length != self.store.block_size:
                return self._check(invalid_field_in_parameter_list(head + 8 * i + 5))
        dlen = (16 if params.long_lba else 8) * len(params.block_descriptors)
        before = dict(self.modes.current)
        sense = self.modes.select(params, header_length=head, block_descriptor_length=dlen)
        if sense is not None:
            return self._check(sense)
        if self.modes.current != before:
            if before[0x08] != self.modes.current[0x08] and not self.modes.write_back:
                await self.store.flush()  # leaving write-back: make the cache durable
            self._apply_write_cache()
            self.post_attention(Asc.MODE_PARAMETERS_CHANGED, exclude=task.nexus)
        return GOOD

    async def _pr_in(self, task: ScsiTask, cmd: c.PersistentReserveIn) -> TaskResult:
        pr = self.reservations
        build = {PrInAction.READ_KEYS: pr.read_keys,
                 PrInAction.READ_RESERVATION: pr.read_reservation,
                 PrInAction.REPORT_CAPABILITIES: pr.report_capabilities,
                 PrInAction.READ_FULL_STATUS: pr.read_full_status}.get(cmd.action)  # type: ignore
        if build is None:
            return self._check(invalid_field_in_cdb(1, 4))
        return self._result(ScsiStatus.GOOD, build().encode()[: cmd.allocation_length])

    async def _pr_out(self, task: ScsiTask, cmd: c.PersistentReserveOut) -> TaskResult:
        if cmd.action > PrOutAction.REGISTER_AND_MOVE:
            return self._check(invalid_field_in_cdb(1, 4))
        raw = bytes(task.data_out[: cmd.parameter_list_length])
        if len(raw) < cmd.parameter_list_length:
            return self._check(illegal_request(Asc.PARAMETER_LIST_LENGTH_ERROR))
        params: PrOutParameters | RegisterAndMoveParameters
        try:
            if cmd.action == PrOutAction.REGISTER_AND_MOVE:
                params = RegisterAndMoveParameters.decode(raw)
            else:
                params = PrOutParameters.decode(raw)
        except ParameterListError as exc:
            return self._check(illegal_request(Asc.PARAMETER_LIST_LENGTH_ERROR)
                               if exc.length_error else invalid_field_in_parameter_list(exc.byte))
        outcome = self.reservations.persistent_reserve_out(
            task.nexus, cmd.action, cmd.pr_type, cmd.scope, params, self._ports.get)
        return self._finish_pr(task, outcome)

    def _finish_pr(self, task: ScsiTask, outcome: PrOutcome) -> TaskResult:
        for reg, code in outcome.attentions:
            self._post_to_registration(reg, code, exclude=task.nexus)
        if outcome.aborted and self.abort_tasks is not None:
            victims = [n for n in self._nexuses.values()
                       if n.key != task.nexus.key and any(r.covers(n) for r in outcome.aborted)]
            self.abort_tasks(victims)
        if outcome.status == ScsiStatus.CHECK_CONDITION and outcome.sense is not None:
            return self._check(outcome.sense)
        return self._result(outcome.status)

    async def _reserve6(self, task: ScsiTask, cmd: c.Reserve6) -> TaskResult:
        return self._finish_pr(task, self.reservations.reserve6(task.nexus))

    async def _release6(self, task: ScsiTask, cmd: c.Release6) -> TaskResult:
        return self._finish_pr(task, self.reservations.release6(task.nexus))

    async def _rtpg(self, task: ScsiTask, cmd: c.ReportTargetPortGroups) -> TaskResult:
        data = self.alua.rtpg(extended=cmd.extended).encode()
        return self._result(ScsiStatus.GOOD, data[: cmd.allocation_length])

    async def _stpg(self, task: ScsiTask, cmd: c.SetTargetPortGroups) -> TaskResult:
        if not self.alua.explicit:
            return self._check(illegal_request(Asc.INVALID_COMMAND_OPERATION_CODE))
        raw = bytes(task.data_out[: cmd.parameter_list_length])
        if len(raw) < cmd.parameter_list_length:
            return self._check(illegal_request(Asc.PARAMETER_LIST_LENGTH_ERROR))
        if not raw:
            return GOOD
        try:
            requests = SetTargetPortGroupsList.decode(raw).requests
        except ParameterListError as exc:
            return self._check(illegal_request(Asc.PARAMETER_LIST_LENGTH_ERROR)
                               if exc.length_error else invalid_field_in_parameter_list(exc.byte))
        explicit_states = (AccessState.ACTIVE_OPTIMIZED, AccessState.ACTIVE_NON_OPTIMIZED,
                           AccessState.STANDBY, AccessState.UNAVAILABLE)
        for i, (gid, state) in enumerate(requests):
            if gid not in self.alua.groups or state not in explicit_states or \
                    not self.alua.supported.allows(state):
                return self._check(invalid_field_in_parameter_list(4 + 4 * i))
        changed = False
        for gid, state in requests:
            try:
                changed |= self.alua.set_state(gid, state, explicit=True)
            except AluaError:
                return self._check(invalid_field_in_parameter_list(4))
        if changed:
            self.post_attention(Asc.ASYMMETRIC_ACCESS_STATE_CHANGED, exclude=task.nexus)
        return GOOD

    async def _get_lba_status(self, task: ScsiTask, cmd: c.GetLbaStatus) -> TaskResult:
        n = self.store.num_blocks
        if cmd.lba >= n:
            return self._check(illegal_request(Asc.LBA_OUT_OF_RANGE))
        wanted = max(1, (cmd.allocation_length - 8) // 16)
        span = min(n - cmd.lba, 0xFFFFFFFF)
        status_of = getattr(self.store, "lba_status", None)
        ranges = status_of(cmd.lba, span, wanted) if status_of else [(cmd.lba, span, True)]
        data = LbaStatusData(tuple(
            LbaStatusDescriptor(first, count, ProvisioningStatus.MAPPED if mapped
                                else ProvisioningStatus.DEALLOCATED)
            for first, count, mapped in ranges if count)).encode()
        return self._result(ScsiStatus.GOOD, data[: cmd.allocation_length])

    async def _report_supported_opcodes(self, task: ScsiTask,
                                        cmd: c.ReportSupportedOpcodes) -> TaskResult:
        table = opcode_support.supported()
        timeouts = opcode_support.TIMEOUTS if cmd.rctd else None
        if cmd.options == 0:
            data = AllCommandsData(tuple(
                dataclasses.replace(d, timeouts=timeouts) for d, _ in table.values())).encode()
        elif cmd.options in (1, 2, 3):
            op = cmd.requested_opcode
            with_sa = opcode_support.has_service_actions(op)
            if (cmd.options == 1 and with_sa) or (cmd.options == 2 and not with_sa):
                return self._check(invalid_field_in_cdb(2, 2))
            entry = table.get((op, cmd.requested_service_action if with_sa else None))
            one = OneCommandData(CommandSupport.NOT_SUPPORTED) if entry is None else \
                OneCommandData(CommandSupport.SUPPORTED, entry[1], timeouts)
            data = one.encode()
        else:
            return self._check(invalid_field_in_cdb(2, 2))
        return self._result(ScsiStatus.GOOD, data[: cmd.allocation_length])

    def close(self) -> None:
        self.store.close()


def _store_sense(exc: BlockStoreError) -> SenseData:
    if exc.errno == errno.ENOSPC:
        return SenseData.of(SenseKey.DATA_PROTECT, Asc.SPACE_ALLOCATION_FAILED_WRITE_PROTECT)
    if exc.errno == errno.EROFS:
        return SenseData.of(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED)
    if exc.writing:
        return SenseData.of(SenseKey.MEDIUM_ERROR, Asc.WRITE_ERROR)
    return SenseData.of(SenseKey.MEDIUM_ERROR, Asc.UNRECOVERED_READ_ERROR)
