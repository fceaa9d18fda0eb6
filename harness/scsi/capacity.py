"""READ CAPACITY parameter data (SBC-3 5.16, 5.17): the size of the logical unit.

``ReadCapacity10Data`` is 8 bytes (returned LBA saturates at FFFFFFFFh, telling
the initiator to use READ CAPACITY(16)); ``ReadCapacity16Data`` is 32 bytes with
the physical block exponent and the thin-provisioning bits LBPME/LBPRZ.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from harness.scsi.errors import ScsiDataError


@dataclass(frozen=True, slots=True)
class ReadCapacity10Data:
    returned_lba: int
    block_length: int

    @classmethod
    def for_device(cls, num_blocks: int, block_length: int) -> Self:
        return cls(min(num_blocks - 1, 0xFFFFFFFF), block_length)

    def encode(self) -> bytes:
        return struct.pack(">II", self.returned_lba, self.block_length)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < 8:
            raise ScsiDataError(f"READ CAPACITY(10) data is {len(raw)} bytes; expected 8")
        return cls(*struct.unpack_from(">II", raw))

    @property
    def needs_16(self) -> bool:
        return self.returned_lba == 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ReadCapacity16Data:
    returned_lba: int
    block_length: int
    prot_en: bool = False
    p_type: int = 0
    p_i_exponent: int = 0
    logical_per_physical_exponent: int = 0
    lbpme: bool = False
    lbprz: bool = False
    lowest_aligned_lba: int = 0

    @property
    def num_blocks(self) -> int:
        return self.returned_lba + 1

    def encode(self) -> bytes:
        b12 = (self.p_type & 7) << 1 | (1 if self.prot_en else 0)
        b13 = (self.p_i_exponent & 0xF) << 4 | (self.logical_per_physical_exponent & 0xF)
        b14 = ((0x8000 if self.lbpme else 0) | (0x4000 if self.lbprz else 0)
               | (self.lowest_aligned_lba & 0x3FFF))
        return struct.pack(">QIBBH16x", self.returned_lba, self.block_length, b12, b13, b14)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < 12:
            raise ScsiDataError(
                f"READ CAPACITY(16) data is {len(raw)} bytes; need at least 12 of 32"
            )
        raw = bytes(raw).ljust(32, b"\0")
        lba, length, b12, b13, b14 = struct.unpack_from(">QIBBH", raw)
        return cls(lba, length, bool(b12 & 1), (b12 >> 1) & 7, b13 >> 4, b13 & 0xF,
                   bool(b14 & 0x8000), bool(b14 & 0x4000), b14 & 0x3FFF)
