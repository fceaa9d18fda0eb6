"""REPORT SUPPORTED OPERATION CODES parameter data (SPC-4 6.35).

``AllCommandsData`` answers reporting option 000b (one 8-byte descriptor per
command, plus a 12-byte timeouts descriptor each when RCTD is set);
``OneCommandData`` answers options 001b-011b (support, CDB size and the CDB
usage bit map: a set bit is a bit the device server examines).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Self

from harness.scsi.errors import ScsiDataError


class CommandSupport(IntEnum):
    NOT_AVAILABLE = 0b000
    NOT_SUPPORTED = 0b001
    SUPPORTED = 0b011
    SUPPORTED_VENDOR_SPECIFIC = 0b101


@dataclass(frozen=True, slots=True)
class CommandTimeouts:
    nominal: int = 0       # seconds, 0 = not specified
    recommended: int = 0
    command_specific: int = 0

    def encode(self) -> bytes:
        return struct.pack(">HxBII", 0x0A, self.command_specific, self.nominal,
                           self.recommended)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < 12:
            raise ScsiDataError(f"command timeouts descriptor is {len(raw)} bytes; need 12")
        _, specific, nominal, recommended = struct.unpack_from(">HxBII", raw)
        return cls(nominal, recommended, specific)


@dataclass(frozen=True, slots=True)
class CommandDescriptor:
    opcode: int
    service_action: int | None
    cdb_length: int
    timeouts: CommandTimeouts | None = None

    def encode(self) -> bytes:
        flags = (0x02 if self.timeouts else 0) | (0x01 if self.service_action is not None else 0)
        head = struct.pack(">BxHxBH", self.opcode, self.service_action or 0, flags,
                           self.cdb_length)
        return head + (self.timeouts.encode() if self.timeouts else b"")


@dataclass(frozen=True, slots=True)
class AllCommandsData:
    commands: tuple[CommandDescriptor, ...] = ()

    def encode(self) -> bytes:
        body = b"".join(c.encode() for c in self.commands)
        return struct.pack(">I", len(body)) + body

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < 4:
            raise ScsiDataError(f"supported opcodes data is {len(raw)} bytes; the header is 4")
        end = min(len(raw), 4 + struct.unpack_from(">I", raw)[0])
        pos, out = 4, []
        while pos + 8 <= end:
            op, sa, flags, length = struct.unpack_from(">BxHxBH", raw, pos)
            pos += 8
            timeouts = None
            if flags & 0x02:
                if pos + 12 > end:
                    break
                timeouts = CommandTimeouts.decode(raw[pos : pos + 12])
                pos += 12
            out.append(CommandDescriptor(op, sa if flags & 0x01 else None, length, timeouts))
        return cls(tuple(out))


@dataclass(frozen=True, slots=True)
class OneCommandData:
    support: CommandSupport
    usage: bytes = b""            # CDB usage data; its length is the CDB size
    timeouts: CommandTimeouts | None = None

    def encode(self) -> bytes:
        b1 = (0x80 if self.timeouts else 0) | (self.support & 7)
        out = struct.pack(">xBH", b1, len(self.usage)) + self.usage
        return out + (self.timeouts.encode() if self.timeouts else b"")

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < 4:
            raise ScsiDataError(f"one-command data is {len(raw)} bytes; the header is 4")
        b1, size = raw[1], struct.unpack_from(">H", raw, 2)[0]
        usage = bytes(raw[4 : 4 + size])
        timeouts = None
        if b1 & 0x80 and len(raw) >= 4 + size + 12:
            timeouts = CommandTimeouts.decode(raw[4 + size : 16 + size])
        return cls(CommandSupport(b1 & 7), usage, timeouts)
