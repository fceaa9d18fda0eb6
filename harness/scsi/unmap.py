"""UNMAP parameter list (SBC-3 5.28.2): block descriptors of LBA ranges to deallocate."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from harness.scsi.errors import ParameterListError


@dataclass(frozen=True, slots=True)
class UnmapParameters:
    ranges: tuple[tuple[int, int], ...] = ()  # (lba, number of blocks)

    def encode(self) -> bytes:
        body = b"".join(struct.pack(">QI4x", lba, n) for lba, n in self.ranges)
        return struct.pack(">HH4x", len(body) + 6, len(body)) + body

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        """Parse a list; malformed lengths raise ``ParameterListError`` at their byte."""
        if len(raw) < 8:
            raise ParameterListError(
                f"UNMAP parameter list is {len(raw)} bytes; the header alone is 8",
                length_error=True)
        data_len, desc_len = struct.unpack_from(">HH", raw)
        if desc_len % 16:
            raise ParameterListError(
                f"UNMAP block descriptor data length {desc_len} is not a multiple of 16",
                byte=2)
        if data_len and data_len + 2 < 8 + desc_len:
            raise ParameterListError(
                f"UNMAP data length {data_len} is shorter than its descriptors", byte=0)
        if 8 + desc_len > len(raw):
            raise ParameterListError(
                f"UNMAP block descriptors ({desc_len} bytes) run past the parameter list",
                length_error=True)
        return cls(tuple(struct.unpack_from(">QI", raw, off)
                         for off in range(8, 8 + desc_len, 16)))
