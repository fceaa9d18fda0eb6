"""GET LBA STATUS parameter data (SBC-3 5.8.2): which LBA ranges are mapped or deallocated."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Self

from harness.scsi.errors import ScsiDataError


class ProvisioningStatus(IntEnum):
    MAPPED = 0x0
    DEALLOCATED = 0x1
    ANCHORED = 0x2


@dataclass(frozen=True, slots=True)
class LbaStatusDescriptor:
    lba: int
    blocks: int
    status: ProvisioningStatus

    def encode(self) -> bytes:
        return struct.pack(">QIB3x", self.lba, self.blocks, self.status & 0xF)


@dataclass(frozen=True, slots=True)
class LbaStatusData:
    descriptors: tuple[LbaStatusDescriptor, ...] = ()

    def encode(self) -> bytes:
        body = b"".join(d.encode() for d in self.descriptors)
        return struct.pack(">I4x", len(body) + 4) + body

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < 8:
            raise ScsiDataError(f"GET LBA STATUS data is {len(raw)} bytes; the header is 8")
        end = min(len(raw), 4 + struct.unpack_from(">I", raw)[0])
        out = []
        for off in range(8, end - 15, 16):
            lba, blocks, status = struct.unpack_from(">QIB", raw, off)
            out.append(LbaStatusDescriptor(lba, blocks, ProvisioningStatus(status & 0xF)))
        return cls(tuple(out))
