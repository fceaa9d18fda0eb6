"""Command descriptor blocks: one frozen dataclass per command, builder and parser in one.

The initiator builds a CDB by constructing the command and calling ``encode()``
(``Read(lba=8, blocks=1, fua=True).encode()``); the target turns raw bytes back
into the same typed object with ``parse_cdb(cdb)``. Every command says which way
its data flows (``direction``) and how many bytes the data phase carries
(``transfer_length(block_size)``), which is what an iSCSI layer needs for
ExpectedDataTransferLength and residuals.

Block commands (READ/WRITE/VERIFY/WRITE AND VERIFY/SYNCHRONIZE CACHE/WRITE SAME/
PRE-FETCH) share one layout per CDB size (6, 10, 12, 16 bytes) and carry a
``size`` field choosing it. Byte 1 of the block commands is kept as named flags;
the (RD|WR|VR)PROTECT field is kept raw so the target can reject it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar, Self

from harness.scsi.errors import CdbError, UnsupportedOpcode
from harness.scsi.opcodes import (
    MaintenanceIn,
    MaintenanceOut,
    Opcode,
    ServiceActionIn16,
    cdb_length,
)


class Direction(Enum):
    """Which way a command's data phase flows, seen from the initiator."""

    NONE = "none"
    IN = "in"    # target to initiator (Data-In)
    OUT = "out"  # initiator to target (Data-Out)


@dataclass(frozen=True, slots=True)
class Command:
    """Base of every parsed CDB."""

    direction: ClassVar[Direction] = Direction.NONE

    def encode(self) -> bytes:
        raise NotImplementedError

    def transfer_length(self, block_size: int) -> int:
        """Bytes the data phase carries in ``direction`` (0 when there is none)."""
        return 0


def _need(cdb: bytes, n: int) -> None:
    if len(cdb) < n:
        raise CdbError(
            f"CDB for opcode 0x{cdb[0]:02x} is {len(cdb)} bytes; it needs {n}", byte=0
        )


# --- block commands ------------------------------------------------------------------

_B10 = struct.Struct(">BBIBHB")   # opcode, flags, lba, group, blocks, control
_B12 = struct.Struct(">BBIIBB")   # opcode, flags, lba, blocks, group, control
_B16 = struct.Struct(">BBQIBB")   # opcode, flags, lba, blocks, group, control


@dataclass(frozen=True, slots=True)
class BlockCommand(Command):
    """Common shape of the LBA + block-count commands."""

    lba: int = 0
    blocks: int = 0
    size: int = 10
    group: int = 0
    protect: int = 0  # RDPROTECT / WRPROTECT / VRPROTECT (byte 1 bits 7..5)
    dpo: bool = False
    fua: bool = False

    OPCODES: ClassVar[dict[int, int]] = {}  # size -> opcode

    def _flags(self) -> int:
        return (self.protect & 7) << 5 | (0x10 if self.dpo else 0) | (0x08 if self.fua else 0)

    @classmethod
    def _from_flags(cls, flags: int) -> dict[str, object]:
        return {"protect": flags >> 5, "dpo": bool(flags & 0x10), "fua": bool(flags & 0x08)}

    def encode(self) -> bytes:
        try:
            op = self.OPCODES[self.size]
        except KeyError:
            raise CdbError(f"{type(self).__name__} has no {self.size}-byte CDB") from None
        flags = self._flags()
        if self.size == 6:
            blocks = 0 if self.blocks == 256 else self.blocks
            return bytes((op, (self.lba >> 16) & 0x1F, (self.lba >> 8) & 0xFF,
                          self.lba & 0xFF, blocks & 0xFF, 0))
        if self.size == 10:
            return _B10.pack(op, flags, self.lba, self.group & 0x1F, self.blocks, 0)
        if self.size == 12:
            return _B12.pack(op, flags, self.lba, self.blocks, self.group & 0x1F, 0)
        return _B16.pack(op, flags, self.lba, self.blocks, self.group & 0x1F, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        op = cdb[0]
        size = _BLOCK_SIZES[op]
        _need(cdb, size)
        if size == 6:
            lba = (cdb[1] & 0x1F) << 16 | cdb[2] << 8 | cdb[3]
            return cls(lba=lba, blocks=cdb[4] or 256, size=6)
        if size == 10:
            _, flags, lba, group, blocks, _ = _B10.unpack_from(cdb)
        elif size == 12:
            _, flags, lba, blocks, group, _ = _B12.unpack_from(cdb)
        else:
            _, flags, lba, blocks, group, _ = _B16.unpack_from(cdb)
        return cls(lba=lba, blocks=blocks, size=size, group=group & 0x1F,
                   **cls._from_flags(flags))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Read(BlockCommand):
    direction: ClassVar[Direction] = Direction.IN
    OPCODES: ClassVar[dict[int, int]] = {6: Opcode.READ_6, 10: Opcode.READ_10,
                                         12: Opcode.READ_12, 16: Opcode.READ_16}

    def transfer_length(self, block_size: int) -> int:
        return self.blocks * block_size


@dataclass(frozen=True, slots=True)
class Write(BlockCommand):
    direction: ClassVar[Direction] = Direction.OUT
    OPCODES: ClassVar[dict[int, int]] = {6: Opcode.WRITE_6, 10: Opcode.WRITE_10,
                                         12: Opcode.WRITE_12, 16: Opcode.WRITE_16}

    def transfer_length(self, block_size: int) -> int:
        return self.blocks * block_size


@dataclass(frozen=True, slots=True)
class WriteAndVerify(BlockCommand):
    """WRITE AND VERIFY: ``bytchk`` 0 = verify medium only, 1 = compare with data."""

    bytchk: int = 0
    direction: ClassVar[Direction] = Direction.OUT
    OPCODES: ClassVar[dict[int, int]] = {10: Opcode.WRITE_AND_VERIFY_10,
                                         12: Opcode.WRITE_AND_VERIFY_12,
                                         16: Opcode.WRITE_AND_VERIFY_16}

    def _flags(self) -> int:
        return (self.protect & 7) << 5 | (0x10 if self.dpo else 0) | (self.bytchk & 3) << 1

    @classmethod
    def _from_flags(cls, flags: int) -> dict[str, object]:
        return {"protect": flags >> 5, "dpo": bool(flags & 0x10), "bytchk": (flags >> 1) & 3}

    def transfer_length(self, block_size: int) -> int:
        return self.blocks * block_size


@dataclass(frozen=True, slots=True)
class Verify(BlockCommand):
    """VERIFY: ``bytchk`` 0 = medium only (no data), 1 = compare, 3 = compare one block."""

    bytchk: int = 0
    OPCODES: ClassVar[dict[int, int]] = {10: Opcode.VERIFY_10, 12: Opcode.VERIFY_12,
                                         16: Opcode.VERIFY_16}

    @property
    def direction(self) -> Direction:  # type: ignore[override]
        return Direction.OUT if self.bytchk else Direction.NONE

    def _flags(self) -> int:
        return (self.protect & 7) << 5 | (0x10 if self.dpo else 0) | (self.bytchk & 3) << 1

    @classmethod
    def _from_flags(cls, flags: int) -> dict[str, object]:
        return {"protect": flags >> 5, "dpo": bool(flags & 0x10), "bytchk": (flags >> 1) & 3}

    def transfer_length(self, block_size: int) -> int:
        if self.bytchk == 1:
            return self.blocks * block_size
        return block_size if self.bytchk == 3 else 0


@dataclass(frozen=True, slots=True)
class SynchronizeCache(BlockCommand):
    """SYNCHRONIZE CACHE: ``blocks`` 0 means to the end of the medium."""

    immed: bool = False
    OPCODES: ClassVar[dict[int, int]] = {10: Opcode.SYNCHRONIZE_CACHE_10,
                                         16: Opcode.SYNCHRONIZE_CACHE_16}

    def _flags(self) -> int:
        return 0x02 if self.immed else 0

    @classmethod
    def _from_flags(cls, flags: int) -> dict[str, object]:
        return {"immed": bool(flags & 0x02)}


@dataclass(frozen=True, slots=True)
class PreFetch(BlockCommand):
    immed: bool = False
    OPCODES: ClassVar[dict[int, int]] = {10: Opcode.PRE_FETCH_10, 16: Opcode.PRE_FETCH_16}

    def _flags(self) -> int:
        return 0x02 if self.immed else 0

    @classmethod
    def _from_flags(cls, flags: int) -> dict[str, object]:
        return {"immed": bool(flags & 0x02)}


@dataclass(frozen=True, slots=True)
class WriteSame(BlockCommand):
    """WRITE SAME: one block of data (none with NDOB) replicated over ``blocks``."""

    unmap: bool = False
    anchor: bool = False
    ndob: bool = False
    OPCODES: ClassVar[dict[int, int]] = {10: Opcode.WRITE_SAME_10, 16: Opcode.WRITE_SAME_16}

    @property
    def direction(self) -> Direction:  # type: ignore[override]
        return Direction.NONE if self.ndob else Direction.OUT

    def _flags(self) -> int:
        return ((self.protect & 7) << 5 | (0x10 if self.anchor else 0)
                | (0x08 if self.unmap else 0) | (0x01 if self.ndob else 0))

    @classmethod
    def _from_flags(cls, flags: int) -> dict[str, object]:
        return {"protect": flags >> 5, "anchor": bool(flags & 0x10),
                "unmap": bool(flags & 0x08), "ndob": bool(flags & 0x01)}

    def transfer_length(self, block_size: int) -> int:
        return 0 if self.ndob else block_size


_BLOCK_CLASSES: dict[int, type[BlockCommand]] = {}
_BLOCK_SIZES: dict[int, int] = {}
for _cls in (Read, Write, WriteAndVerify, Verify, SynchronizeCache, PreFetch, WriteSame):
    for _size, _op in _cls.OPCODES.items():
        _BLOCK_CLASSES[_op] = _cls
        _BLOCK_SIZES[_op] = _size


@dataclass(frozen=True, slots=True)
class CompareAndWrite(Command):
    """COMPARE AND WRITE: data-out holds ``blocks`` to verify then ``blocks`` to write."""

    lba: int = 0
    blocks: int = 1
    fua: bool = False
    dpo: bool = False
    protect: int = 0
    group: int = 0
    direction: ClassVar[Direction] = Direction.OUT

    def encode(self) -> bytes:
        flags = (self.protect & 7) << 5 | (0x10 if self.dpo else 0) | (0x08 if self.fua else 0)
        return struct.pack(">BBQ3xBBB", Opcode.COMPARE_AND_WRITE, flags, self.lba,
                           self.blocks, self.group & 0x1F, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 16)
        _, flags, lba, blocks, group, _ = struct.unpack_from(">BBQ3xBBB", cdb)
        return cls(lba=lba, blocks=blocks, fua=bool(flags & 0x08), dpo=bool(flags & 0x10),
                   protect=flags >> 5, group=group & 0x1F)

    def transfer_length(self, block_size: int) -> int:
        return 2 * self.blocks * block_size


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
class ReadCapacity10(Command):
    lba: int = 0
    pmi: bool = False
    direction: ClassVar[Direction] = Direction.IN

    def encode(self) -> bytes:
        return struct.pack(">BxIxxBB", Opcode.READ_CAPACITY_10, self.lba,
                           1 if self.pmi else 0, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 10)
        return cls(lba=struct.unpack_from(">I", cdb, 2)[0], pmi=bool(cdb[8] & 1))

    def transfer_length(self, block_size: int) -> int:
        return 8


@dataclass(frozen=True, slots=True)
class ReadCapacity16(Command):
    allocation_length: int = 32
    lba: int = 0
    pmi: bool = False
    direction: ClassVar[Direction] = Direction.IN

    def encode(self) -> bytes:
        return struct.pack(">BBQIBB", Opcode.SERVICE_ACTION_IN_16,
                           ServiceActionIn16.READ_CAPACITY_16, self.lba,
                           self.allocation_length, 1 if self.pmi else 0, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 16)
        _, _, lba, alloc, pmi, _ = struct.unpack_from(">BBQIBB", cdb)
        return cls(allocation_length=alloc, lba=lba, pmi=bool(pmi & 1))

    def transfer_length(self, block_size: int) -> int:
        return self.allocation_length


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
class Unmap(Command):
    parameter_list_length: int = 0
    anchor: bool = False
    group: int = 0
    direction: ClassVar[Direction] = Direction.OUT

    def encode(self) -> bytes:
        return struct.pack(">BB4xBHB", Opcode.UNMAP, 1 if self.anchor else 0,
                           self.group & 0x1F, self.parameter_list_length, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 10)
        return cls(parameter_list_length=struct.unpack_from(">H", cdb, 7)[0],
                   anchor=bool(cdb[1] & 1), group=cdb[6] & 0x1F)

    def transfer_length(self, block_size: int) -> int:
        return self.parameter_list_length


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
