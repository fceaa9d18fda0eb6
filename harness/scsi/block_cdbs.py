"""SBC-3 command descriptor blocks: the LBA-range commands and the other block commands.

READ/WRITE/WRITE AND VERIFY/VERIFY/SYNCHRONIZE CACHE/PRE-FETCH/WRITE SAME share one
layout per CDB size (6, 10, 12, 16 bytes) and carry a ``size`` field choosing it.
Byte 1 of the block commands is kept as named flags; the (RD|WR|VR)PROTECT field
is kept raw so the target can reject it. ``harness.scsi.cdb`` re-exports all of
these and parses them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from harness.scsi.command import Command, Direction
from harness.scsi.command import need as _need
from harness.scsi.errors import CdbError
from harness.scsi.opcodes import Opcode, ServiceActionIn16

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


@dataclass(frozen=True, slots=True)
class OrWrite(BlockCommand):
    """ORWRITE(16): the medium becomes medium OR data-out, atomically."""

    direction: ClassVar[Direction] = Direction.OUT
    OPCODES: ClassVar[dict[int, int]] = {16: Opcode.ORWRITE_16}

    def transfer_length(self, block_size: int) -> int:
        return self.blocks * block_size


_BLOCK_CLASSES: dict[int, type[BlockCommand]] = {}
_BLOCK_SIZES: dict[int, int] = {}
for _cls in (Read, Write, WriteAndVerify, Verify, SynchronizeCache, PreFetch, WriteSame,
             OrWrite):
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
class GetLbaStatus(Command):
    lba: int = 0
    allocation_length: int = 4096
    direction: ClassVar[Direction] = Direction.IN

    def encode(self) -> bytes:
        return struct.pack(">BBQIxB", Opcode.SERVICE_ACTION_IN_16,
                           ServiceActionIn16.GET_LBA_STATUS, self.lba,
                           self.allocation_length, 0)

    @classmethod
    def decode(cls, cdb: bytes) -> Self:
        _need(cdb, 16)
        _, _, lba, alloc = struct.unpack_from(">BBQI", cdb)
        return cls(lba=lba, allocation_length=alloc)

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
