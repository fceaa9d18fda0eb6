"""Command descriptor blocks: one frozen dataclass per command, builder and parser in one.

The initiator builds a CDB by constructing the command and calling ``encode()``
(``Read(lba=8, blocks=1, fua=True).encode()``); the target turns raw bytes back
into the same typed object with ``parse_cdb(cdb)``. Every command says which way
its data flows (``direction``) and how many bytes the data phase carries
(``transfer_length(block_size)``), which is what an iSCSI layer needs for
ExpectedDataTransferLength and residuals.

This module holds the SPC-4 commands and ``parse_cdb``; the SBC-3 block commands
live in ``harness.scsi.block_cdbs`` and are re-exported here, so ``cdb.Read`` and
``cdb.Inquiry`` are used the same way.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar, Self

from harness.scsi.block_cdbs import (
    _BLOCK_CLASSES,
    _BLOCK_SIZES,
    BlockCommand,
    CompareAndWrite,
    GetLbaStatus,
    OrWrite,
    PreFetch,
    Read,
    ReadCapacity10,
    ReadCapacity16,
    SynchronizeCache,
    Unmap,
    Verify,
    Write,
    WriteAndVerify,
    WriteSame,
)
from harness.scsi.command import Command, Direction
from harness.scsi.command import need as _need
from harness.scsi.errors import CdbError, UnsupportedOpcode
from harness.scsi.opcodes import (
    MaintenanceIn,
    MaintenanceOut,
    Opcode,
    ServiceActionIn16,
    cdb_length,
)

# --- non-block commands --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TestUnitReady(Command):
    __test__: ClassVar[bool] = False  # not a pytest class

    def encode(self) -> bytes:
        return bytes(6)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 6)
        return cls()


@dataclass(frozen=True, slots=True)
class RequestSense(Command):
    allocation_length: int = 252
    desc: bool = False
    direction: ClassVar[Direction] = Direction.IN

    def encode(self) -> bytes:
        return bytes((Opcode.REQUEST_SENSE, 1 if self.desc else 0, 0, 0,
                      self.allocation_length & 0xFF, 0))

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 6)
        return cls(allocation_length=cdb[4], desc=bool(cdb[1] & 1))

    def transfer_length(self, block_size: int) -> int:
        return self.allocation_length


@dataclass(frozen=True, slots=True)
class Inquiry(Command):
    evpd: bool = False
    page_code: int = 0
    allocation_length: int = 255
    direction: ClassVar[Direction] = Direction.IN

    def encode(self) -> bytes:
        return struct.pack(">BBBHB", Opcode.INQUIRY, 1 if self.evpd else 0, self.page_code,
                           self.allocation_length, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 6)
        if cdb[1] & 0xFE:
            raise CdbError("INQUIRY byte 1 has reserved or obsolete CMDDT bits set", byte=1)
        return cls(evpd=bool(cdb[1] & 1), page_code=cdb[2],
                   allocation_length=struct.unpack_from(">H", cdb, 3)[0])

    def transfer_length(self, block_size: int) -> int:
        return self.allocation_length


@dataclass(frozen=True, slots=True)
class ModeSense(Command):
    """MODE SENSE(6) or (10): ``page_control`` 0 current, 1 changeable, 2 default, 3 saved."""

    page_code: int = 0x3F
    subpage: int = 0
    page_control: int = 0
    dbd: bool = False
    llbaa: bool = False
    allocation_length: int = 255
    size: int = 6
    direction: ClassVar[Direction] = Direction.IN

    def encode(self) -> bytes:
        b1 = (0x08 if self.dbd else 0) | (0x10 if self.llbaa and self.size == 10 else 0)
        b2 = (self.page_control & 3) << 6 | (self.page_code & 0x3F)
        if self.size == 6:
            return bytes((Opcode.MODE_SENSE_6, b1, b2, self.subpage,
                          self.allocation_length & 0xFF, 0))
        return struct.pack(">BBBB3xHB", Opcode.MODE_SENSE_10, b1, b2, self.subpage,
                           self.allocation_length, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        if cdb[0] == Opcode.MODE_SENSE_6:
            _need(cdb, 6)
            alloc, size = cdb[4], 6
        else:
            _need(cdb, 10)
            alloc, size = struct.unpack_from(">H", cdb, 7)[0], 10
        return cls(page_code=cdb[2] & 0x3F, subpage=cdb[3], page_control=cdb[2] >> 6,
                   dbd=bool(cdb[1] & 0x08), llbaa=bool(cdb[1] & 0x10) and size == 10,
                   allocation_length=alloc, size=size)

    def transfer_length(self, block_size: int) -> int:
        return self.allocation_length


@dataclass(frozen=True, slots=True)
class ModeSelect(Command):
    parameter_list_length: int = 0
    pf: bool = True
    sp: bool = False
    size: int = 6
    direction: ClassVar[Direction] = Direction.OUT

    def encode(self) -> bytes:
        b1 = (0x10 if self.pf else 0) | (0x01 if self.sp else 0)
        if self.size == 6:
            return bytes((Opcode.MODE_SELECT_6, b1, 0, 0, self.parameter_list_length & 0xFF, 0))
        return struct.pack(">BB5xHB", Opcode.MODE_SELECT_10, b1, self.parameter_list_length, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        if cdb[0] == Opcode.MODE_SELECT_6:
            _need(cdb, 6)
            length, size = cdb[4], 6
        else:
            _need(cdb, 10)
            length, size = struct.unpack_from(">H", cdb, 7)[0], 10
        return cls(parameter_list_length=length, pf=bool(cdb[1] & 0x10),
                   sp=bool(cdb[1] & 0x01), size=size)

    def transfer_length(self, block_size: int) -> int:
        return self.parameter_list_length


@dataclass(frozen=True, slots=True)
class Reserve6(Command):
    def encode(self) -> bytes:
        return bytes((Opcode.RESERVE_6, 0, 0, 0, 0, 0))

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 6)
        if cdb[1] & 0x1F:
            raise CdbError("RESERVE(6) third-party or extent reservation is not supported",
                           byte=1)
        return cls()


@dataclass(frozen=True, slots=True)
class Release6(Command):
    def encode(self) -> bytes:
        return bytes((Opcode.RELEASE_6, 0, 0, 0, 0, 0))

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 6)
        if cdb[1] & 0x1F:
            raise CdbError("RELEASE(6) third-party or extent release is not supported", byte=1)
        return cls()


@dataclass(frozen=True, slots=True)
class StartStopUnit(Command):
    immed: bool = False
    power_condition: int = 0
    loej: bool = False
    start: bool = True

    def encode(self) -> bytes:
        return bytes((Opcode.START_STOP_UNIT, 1 if self.immed else 0, 0, 0,
                      (self.power_condition & 0xF) << 4 | (2 if self.loej else 0)
                      | (1 if self.start else 0), 0))

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 6)
        return cls(immed=bool(cdb[1] & 1), power_condition=cdb[4] >> 4,
                   loej=bool(cdb[4] & 2), start=bool(cdb[4] & 1))


@dataclass(frozen=True, slots=True)
class ReportLuns(Command):
    allocation_length: int = 4096
    select_report: int = 0
    direction: ClassVar[Direction] = Direction.IN

    def encode(self) -> bytes:
        return struct.pack(">BxB3xIxB", Opcode.REPORT_LUNS, self.select_report,
                           self.allocation_length, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 12)
        return cls(select_report=cdb[2], allocation_length=struct.unpack_from(">I", cdb, 6)[0])

    def transfer_length(self, block_size: int) -> int:
        return self.allocation_length


@dataclass(frozen=True, slots=True)
class PersistentReserveIn(Command):
    """PERSISTENT RESERVE IN; ``action`` is a ``reservations.PrInAction`` value."""

    action: int = 0
    allocation_length: int = 8192
    direction: ClassVar[Direction] = Direction.IN

    def encode(self) -> bytes:
        return struct.pack(">BB5xHB", Opcode.PERSISTENT_RESERVE_IN, self.action & 0x1F,
                           self.allocation_length, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 10)
        return cls(action=cdb[1] & 0x1F, allocation_length=struct.unpack_from(">H", cdb, 7)[0])

    def transfer_length(self, block_size: int) -> int:
        return self.allocation_length


@dataclass(frozen=True, slots=True)
class PersistentReserveOut(Command):
    """PERSISTENT RESERVE OUT; ``action``/``pr_type`` are ``PrOutAction``/``PrType`` values."""

    action: int = 0
    pr_type: int = 0
    scope: int = 0
    parameter_list_length: int = 24
    direction: ClassVar[Direction] = Direction.OUT

    def encode(self) -> bytes:
        return struct.pack(">BBB2xIB", Opcode.PERSISTENT_RESERVE_OUT, self.action & 0x1F,
                           (self.scope & 0xF) << 4 | (self.pr_type & 0xF),
                           self.parameter_list_length, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 10)
        return cls(action=cdb[1] & 0x1F, pr_type=cdb[2] & 0xF, scope=cdb[2] >> 4,
                   parameter_list_length=struct.unpack_from(">I", cdb, 5)[0])

    def transfer_length(self, block_size: int) -> int:
        return self.parameter_list_length


@dataclass(frozen=True, slots=True)
class ReportTargetPortGroups(Command):
    allocation_length: int = 1024
    extended: bool = False  # PARAMETER DATA FORMAT 001b: extended header
    direction: ClassVar[Direction] = Direction.IN

    def encode(self) -> bytes:
        return struct.pack(">BB4xIxB", Opcode.MAINTENANCE_IN,
                           (0x20 if self.extended else 0) | MaintenanceIn.REPORT_TARGET_PORT_GROUPS,
                           self.allocation_length, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 12)
        fmt = cdb[1] >> 5
        if fmt not in (0, 1):
            raise CdbError(f"REPORT TARGET PORT GROUPS parameter data format {fmt} is unknown",
                           byte=1, bit=7)
        return cls(allocation_length=struct.unpack_from(">I", cdb, 6)[0], extended=fmt == 1)

    def transfer_length(self, block_size: int) -> int:
        return self.allocation_length


@dataclass(frozen=True, slots=True)
class SetTargetPortGroups(Command):
    parameter_list_length: int = 0
    direction: ClassVar[Direction] = Direction.OUT

    def encode(self) -> bytes:
        return struct.pack(">BB4xIxB", Opcode.MAINTENANCE_OUT,
                           MaintenanceOut.SET_TARGET_PORT_GROUPS, self.parameter_list_length, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 12)
        return cls(parameter_list_length=struct.unpack_from(">I", cdb, 6)[0])

    def transfer_length(self, block_size: int) -> int:
        return self.parameter_list_length


@dataclass(frozen=True, slots=True)
class ReportSupportedOpcodes(Command):
    """REPORT SUPPORTED OPERATION CODES: ``options`` 0 all, 1 opcode, 2 opcode+SA."""

    options: int = 0
    requested_opcode: int = 0
    requested_service_action: int = 0
    rctd: bool = False
    allocation_length: int = 4096
    direction: ClassVar[Direction] = Direction.IN

    def encode(self) -> bytes:
        return struct.pack(">BBBBHIxB", Opcode.MAINTENANCE_IN,
                           MaintenanceIn.REPORT_SUPPORTED_OPERATION_CODES,
                           (0x80 if self.rctd else 0) | (self.options & 7),
                           self.requested_opcode, self.requested_service_action,
                           self.allocation_length, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 12)
        _, _, b2, op, sa, alloc, _ = struct.unpack_from(">BBBBHIxB", cdb)
        return cls(options=b2 & 7, requested_opcode=op, requested_service_action=sa,
                   rctd=bool(b2 & 0x80), allocation_length=alloc)

    def transfer_length(self, block_size: int) -> int:
        return self.allocation_length


@dataclass(frozen=True, slots=True)
class UnknownCommand(Command):
    """A CDB this module does not parse; kept so the target can answer INVALID OPCODE."""

    cdb: bytes = field(default=b"")

    def encode(self) -> bytes:
        return self.cdb


_SIMPLE: dict[int, type] = {
    Opcode.TEST_UNIT_READY: TestUnitReady,
    Opcode.REQUEST_SENSE: RequestSense,
    Opcode.INQUIRY: Inquiry,
    Opcode.MODE_SENSE_6: ModeSense,
    Opcode.MODE_SENSE_10: ModeSense,
    Opcode.MODE_SELECT_6: ModeSelect,
    Opcode.MODE_SELECT_10: ModeSelect,
    Opcode.RESERVE_6: Reserve6,
    Opcode.RELEASE_6: Release6,
    Opcode.START_STOP_UNIT: StartStopUnit,
    Opcode.READ_CAPACITY_10: ReadCapacity10,
    Opcode.REPORT_LUNS: ReportLuns,
    Opcode.PERSISTENT_RESERVE_IN: PersistentReserveIn,
    Opcode.PERSISTENT_RESERVE_OUT: PersistentReserveOut,
    Opcode.COMPARE_AND_WRITE: CompareAndWrite,
    Opcode.UNMAP: Unmap,
}

_SERVICE_ACTIONS: dict[tuple[int, int], type] = {
    (Opcode.SERVICE_ACTION_IN_16, ServiceActionIn16.READ_CAPACITY_16): ReadCapacity16,
    (Opcode.SERVICE_ACTION_IN_16, ServiceActionIn16.GET_LBA_STATUS): GetLbaStatus,
    (Opcode.MAINTENANCE_IN, MaintenanceIn.REPORT_TARGET_PORT_GROUPS): ReportTargetPortGroups,
    (Opcode.MAINTENANCE_IN, MaintenanceIn.REPORT_SUPPORTED_OPERATION_CODES):
        ReportSupportedOpcodes,
    (Opcode.MAINTENANCE_OUT, MaintenanceOut.SET_TARGET_PORT_GROUPS): SetTargetPortGroups,
}


def known_commands() -> list[tuple[int, int | None, type[Command], int]]:
    """Every (opcode, service action or None, command class, CDB size) this module parses."""
    out: list[tuple[int, int | None, type[Command], int]] = [
        (op, None, cls, _BLOCK_SIZES[op]) for op, cls in _BLOCK_CLASSES.items()]
    out += [(op, None, cls, cdb_length(op)) for op, cls in _SIMPLE.items()]
    out += [(op, sa, cls, cdb_length(op)) for (op, sa), cls in _SERVICE_ACTIONS.items()]
    return sorted(out, key=lambda t: (t[0], t[1] or 0))


def parse_cdb(cdb: bytes) -> Command:
    """Parse a CDB into its typed command.

    Raises ``UnsupportedOpcode`` (opcode or service action unknown: the target answers
    INVALID COMMAND OPERATION CODE) or ``CdbError`` (truncated or invalid field: the
    target answers INVALID FIELD IN CDB at ``err.byte``/``err.bit``).
    """
    if not cdb:
        raise CdbError("empty CDB", byte=0)
    op = cdb[0]
    block = _BLOCK_CLASSES.get(op)
    if block is not None:
        return block.decode(cdb)
    simple = _SIMPLE.get(op)
    if simple is not None:
        return simple.decode(cdb)  # type: ignore[attr-defined,no-any-return]
    if op in (Opcode.SERVICE_ACTION_IN_16, Opcode.MAINTENANCE_IN, Opcode.MAINTENANCE_OUT):
        _need(cdb, 2)
        cls = _SERVICE_ACTIONS.get((op, cdb[1] & 0x1F))
        if cls is None:
            raise UnsupportedOpcode(
                f"service action 0x{cdb[1] & 0x1F:02x} of opcode 0x{op:02x} is not supported",
                byte=1, bit=4,
            )
        return cls.decode(cdb)  # type: ignore[attr-defined,no-any-return]
    raise UnsupportedOpcode(f"operation code 0x{op:02x} is not supported", byte=0, bit=7)


__all__ = [
    "BlockCommand", "Command", "CompareAndWrite", "Direction", "GetLbaStatus", "Inquiry",
    "ModeSelect", "ModeSense", "OrWrite", "PersistentReserveIn", "PersistentReserveOut", "PreFetch",
    "Read", "ReadCapacity10", "ReadCapacity16", "Release6", "ReportLuns",
    "ReportSupportedOpcodes", "ReportTargetPortGroups", "RequestSense", "Reserve6",
    "SetTargetPortGroups", "StartStopUnit", "SynchronizeCache", "TestUnitReady",
    "UnknownCommand", "Unmap", "Verify", "Write", "WriteAndVerify", "WriteSame",
    "known_commands", "parse_cdb",
]
