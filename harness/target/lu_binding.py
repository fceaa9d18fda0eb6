"""Binds the network side to the SCSI logical-unit model (``harness.target.device``).

Everything the sessions need from the SCSI side goes through this module: opening
a logical unit on its image file, naming an I_T nexus, building a ``ScsiTask``,
answering commands for a LUN that does not exist (SPC-4: INQUIRY with peripheral
qualifier 011b, REPORT LUNS of the target, REQUEST SENSE and every other command
LOGICAL UNIT NOT SUPPORTED), and the reset and unit-attention hooks of task
management. Keeping the seam in one place means a change of the device contract
touches one file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from harness.scsi.cdb import Direction, parse_cdb
from harness.scsi.errors import CdbError, UnsupportedOpcode
from harness.scsi.inquiry import PeripheralDeviceType, PeripheralQualifier, StandardInquiry
from harness.scsi.report_luns import ReportLunsData
from harness.scsi.sense import Asc, illegal_request, invalid_field_in_cdb
from harness.scsi.status import ScsiStatus
from harness.target.blockstore import ImageFile
from harness.target.config import LunConfig, NodeConfig, TargetConfig
from harness.target.defects import AckBeforeDurable, Defect, parse_defects
from harness.target.device import LogicalUnit, ScsiTask, TaskResult
from harness.target.disk_faults import FaultyStore
from harness.target.ha.mirror import HaDevice
from harness.target.ha.unit import HaLogicalUnit
from harness.target.identity import BlockLimitsConfig, LuIdentity
from harness.target.nexus import ItNexus, initiator_port_name, target_port_name
from harness.target.reservations import AptplFile, PersistentReservations

# Byte of the TRANSFER LENGTH field per write opcode (for the sense field pointer).
_TRANSFER_LENGTH_BYTE = {0x0A: 4, 0x2A: 7, 0xAA: 6, 0x8A: 10, 0x2E: 7, 0xAE: 6, 0x8E: 10,
                         0x89: 13, 0x41: 7, 0x93: 10}
_INQUIRY, _REPORT_LUNS, _REQUEST_SENSE = 0x12, 0xA0, 0x03
MAX_TRANSFER_BLOCKS = BlockLimitsConfig().max_transfer_blocks
#: the most data one command may carry: what the Block Limits VPD page promises
MAX_TRANSFER_BYTES = MAX_TRANSFER_BLOCKS * 512


def open_logical_unit(lun: LunConfig, target: TargetConfig, node: NodeConfig, *,
                      luns: Callable[[ItNexus], Sequence[int]],
                      abort_tasks: Callable[[Sequence[ItNexus]], None]) -> LogicalUnit:
    """The logical unit of ``lun``: its image (created sparse on first use), identity,
    persistent reservations persisted beside the image (APTPL) and ALUA group."""
    binding = node.ha_binding(target.iqn, lun.lun)
    # node-wide modes ([node] defects) and an HA replica's own ([[ha_device]] defects)
    defects = parse_defects(node.defects) | (binding.device.defects if binding else frozenset())
    lying = Defect.ACK_BEFORE_DURABLE in defects
    image: Any = ImageFile.open(lun.image, lun.size, block_size=lun.block_size,
                                write_through=node.write_through and not lying,
                                volatile=node.volatile_writes)
    if lying:
        image = AckBeforeDurable(image)
    store = FaultyStore(image, where=f"{target.iqn}/{lun.lun}")  # disk faults (pass-through)
    identity = LuIdentity(serial=lun.serial, naa=lun.naa, vendor=lun.vendor,
                          product=lun.product)
    aptpl = AptplFile(lun.image.with_name(lun.image.name + ".pr.json"))
    reservations = PersistentReservations(aptpl_file=aptpl)
    if binding is not None:  # a replica of an HA device: mirrored blocks, shared PR state
        if Defect.IDENTITY_PER_NODE in defects:
            identity = replace(identity, serial=f"{identity.serial[:20]}-{node.name}"[-32:],
                               naa=identity.naa[:-4] + hashlib.sha256(
                                   node.name.encode()).hexdigest()[:4])
        device = replace(binding.device, defects=defects)
        return HaLogicalUnit(HaDevice(device, store), identity, group=binding.group,
                             partner_group=binding.partner_group, reservations=reservations,
                             luns=luns, abort_tasks=abort_tasks)
    return LogicalUnit(store, identity, reservations=reservations, luns=luns,
                       abort_tasks=abort_tasks)


async def start(unit: LogicalUnit) -> None:
    """Bring up what the unit needs on the event loop (an HA replica's partner links)."""
    if isinstance(unit, HaLogicalUnit):
        await unit.ha.start()


def runs_eagerly(unit: LogicalUnit) -> bool:
    """Whether ``execute`` may start inside the caller's loop turn (no task of its own):
    true for a logical unit on a local image file, whose code never needs a current task
    (its disk-fault wrapper only ever sleeps, which needs none either)."""
    store = getattr(unit, "store", None)
    if isinstance(store, FaultyStore):
        store = store.inner
    return type(store) is ImageFile


def make_nexus(initiator_name: str, isid: int, target_iqn: str, tpgt: int) -> ItNexus:
    return ItNexus(initiator_port=initiator_port_name(initiator_name, isid),
                   target_port=target_port_name(target_iqn, tpgt),
                   relative_target_port_id=tpgt, target_port_group=tpgt)


def make_task(nexus: ItNexus, lun: int, cdb: bytes, data_out: bytes | bytearray,
              expected_in_length: int) -> ScsiTask:
    return ScsiTask(nexus, lun, cdb, data_out, expected_in_length)


def result_fields(result: TaskResult) -> tuple[int, bytes, bytes]:
    """(status, data-in, sense bytes) of a task result."""
    return int(result.status), result.data_in, result.sense_bytes


def execute_without_lu(existing_luns: Sequence[int], task: ScsiTask) -> TaskResult:
    """The answer for a LUN the target does not have (SPC-4 section 4.6.20)."""
    op = task.cdb[0] if task.cdb else 0
    if op == _INQUIRY:
        if task.cdb[1] & 0x01:  # EVPD for an absent LU: no pages to give
            return TaskResult(ScsiStatus.CHECK_CONDITION,
                              sense=invalid_field_in_cdb(1, 0))
        data = StandardInquiry(qualifier=PeripheralQualifier.NOT_SUPPORTED,
                               device_type=PeripheralDeviceType.UNKNOWN).encode()
        return TaskResult(ScsiStatus.GOOD, data[: _allocation(task.cdb, 3, 2)])
    if op == _REPORT_LUNS:
        data = ReportLunsData(tuple(sorted(existing_luns))).encode()
        return TaskResult(ScsiStatus.GOOD, data[: _allocation(task.cdb, 6, 4)])
    if op == _REQUEST_SENSE:
        sense = illegal_request(Asc.LOGICAL_UNIT_NOT_SUPPORTED).encode()
        return TaskResult(ScsiStatus.GOOD, sense[: _allocation(task.cdb, 4, 1)])
    return TaskResult(ScsiStatus.CHECK_CONDITION,
                      sense=illegal_request(Asc.LOGICAL_UNIT_NOT_SUPPORTED))


def _allocation(cdb: bytes, offset: int, width: int) -> int:
    return int.from_bytes(cdb[offset : offset + width], "big") if len(cdb) >= offset + width \
        else 0


def write_length(cdb: bytes, block_size: int) -> int | None:
    """Bytes of data-out the CDB asks for (None when it cannot be parsed; the LU will
    report that)."""
    try:
        command = parse_cdb(cdb)
    except (CdbError, UnsupportedOpcode):
        return None
    if command.direction is not Direction.OUT:
        return None
    return int(command.transfer_length(block_size))


def refuse_transfer_length(cdb: bytes) -> tuple[int, bytes]:
    """CHECK CONDITION, INVALID FIELD IN CDB at the transfer length: a command whose
    data-out exceeds what the node accepts (the Block Limits VPD says the same)."""
    byte = _TRANSFER_LENGTH_BYTE.get(cdb[0] if cdb else 0, 0)
    return ScsiStatus.CHECK_CONDITION, invalid_field_in_cdb(byte).encode()


async def reset(unit: LogicalUnit, nexus: ItNexus | None) -> None:
    """LOGICAL UNIT RESET (and each LU of a TARGET WARM/COLD RESET).

    An HA replica resets the whole device: its partner establishes the unit
    attentions too, before the task management response is sent."""
    if isinstance(unit, HaLogicalUnit):
        await unit.reset_device(requester=nexus)
    else:
        unit.reset(requester=nexus)


def tasks_cleared(unit: LogicalUnit, nexus: ItNexus) -> None:
    """CLEAR TASK SET: the other nexuses learn their commands were cleared."""
    unit.post_attention(Asc.COMMANDS_CLEARED_BY_ANOTHER_INITIATOR, exclude=nexus)


def luns_changed(unit: LogicalUnit, nexus: ItNexus) -> None:
    unit.post_attention(Asc.REPORTED_LUNS_DATA_HAS_CHANGED, to=[nexus])


def nexus_lost(unit: LogicalUnit, nexus: ItNexus) -> None:
    unit.nexus_lost(nexus)


async def stop(unit: LogicalUnit) -> None:
    """Stop the unit: an HA replica shuts down cleanly first (flush, dirty map, partner)."""
    if isinstance(unit, HaLogicalUnit):
        await unit.ha.stop()
    unit.close()

