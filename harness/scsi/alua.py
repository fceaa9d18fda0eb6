"""Asymmetric logical unit access data (SPC-4 5.16, 6.37, 6.46).

``AccessState`` names the asymmetric access states; ``RtpgData`` is the REPORT
TARGET PORT GROUPS parameter data (length header, optional extended header,
one descriptor per target port group with its relative target ports);
``SetTargetPortGroupsList`` is the SET TARGET PORT GROUPS parameter list.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Self

from harness.scsi.errors import ParameterListError, ScsiDataError


class AccessState(IntEnum):
    ACTIVE_OPTIMIZED = 0x0
    ACTIVE_NON_OPTIMIZED = 0x1
    STANDBY = 0x2
    UNAVAILABLE = 0x3
    LBA_DEPENDENT = 0x4
    OFFLINE = 0xE
    TRANSITIONING = 0xF


class TpgStatus(IntEnum):
    """Status code of a target port group descriptor."""

    NONE = 0x00
    SET_BY_STPG = 0x01
    IMPLICIT_CHANGE = 0x02


@dataclass(frozen=True, slots=True)
class SupportedStates:
    """Which access states a port group may take (the *_SUP bits of byte 1)."""

    transitioning: bool = True
    offline: bool = False
    lba_dependent: bool = False
    unavailable: bool = True
    standby: bool = True
    non_optimized: bool = True
    optimized: bool = True

    def encode(self) -> int:
        return ((0x80 if self.transitioning else 0) | (0x40 if self.offline else 0)
                | (0x10 if self.lba_dependent else 0) | (0x08 if self.unavailable else 0)
                | (0x04 if self.standby else 0) | (0x02 if self.non_optimized else 0)
                | (0x01 if self.optimized else 0))

    @classmethod
    def decode(cls, b: int) -> Self:
        return cls(bool(b & 0x80), bool(b & 0x40), bool(b & 0x10), bool(b & 0x08),
                   bool(b & 0x04), bool(b & 0x02), bool(b & 0x01))

    def allows(self, state: AccessState) -> bool:
        return {
            AccessState.ACTIVE_OPTIMIZED: self.optimized,
            AccessState.ACTIVE_NON_OPTIMIZED: self.non_optimized,
            AccessState.STANDBY: self.standby,
            AccessState.UNAVAILABLE: self.unavailable,
            AccessState.LBA_DEPENDENT: self.lba_dependent,
            AccessState.OFFLINE: self.offline,
            AccessState.TRANSITIONING: self.transitioning,
        }[state]


@dataclass(frozen=True, slots=True)
class TargetPortGroupDescriptor:
    group_id: int
    state: AccessState
    relative_ports: tuple[int, ...] = ()
    preferred: bool = False
    supported: SupportedStates = SupportedStates()
    status: int = TpgStatus.NONE
    vendor_specific: int = 0

    def encode(self) -> bytes:
        head = struct.pack(">BBHxBBB", (0x80 if self.preferred else 0) | (self.state & 0xF),
                           self.supported.encode(), self.group_id, self.status,
                           self.vendor_specific, len(self.relative_ports))
        return head + b"".join(struct.pack(">xxH", p) for p in self.relative_ports)


@dataclass(frozen=True, slots=True)
class RtpgData:
    """REPORT TARGET PORT GROUPS parameter data."""

    groups: tuple[TargetPortGroupDescriptor, ...] = ()
    extended: bool = False
    implicit_transition_time: int = 0

    def encode(self) -> bytes:
        body = b"".join(g.encode() for g in self.groups)
        if self.extended:
            return struct.pack(">IBB2x", len(body) + 4, 0x10,
                               self.implicit_transition_time) + body
        return struct.pack(">I", len(body)) + body

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < 4:
            raise ScsiDataError(f"REPORT TARGET PORT GROUPS data is {len(raw)} bytes; need 4")
        length = struct.unpack_from(">I", raw)[0]
        end = min(len(raw), 4 + length)
        pos, extended, itt = 4, False, 0
        if len(raw) >= 8 and (raw[4] >> 4) & 7 == 1:
            extended, itt, pos = True, raw[5], 8
        groups = []
        while pos + 8 <= end:
            b0, sup, gid, status, vs, count = struct.unpack_from(">BBHxBBB", raw, pos)
            pos += 8
            ports = []
            for _ in range(count):
                if pos + 4 > end:
                    break
                ports.append(struct.unpack_from(">H", raw, pos + 2)[0])
                pos += 4
            groups.append(TargetPortGroupDescriptor(
                gid, AccessState(b0 & 0xF), tuple(ports), bool(b0 & 0x80),
                SupportedStates.decode(sup), status, vs))
        return cls(tuple(groups), extended, itt)


@dataclass(frozen=True, slots=True)
class SetTargetPortGroupsList:
    """SET TARGET PORT GROUPS parameter list: (group id, requested state) pairs."""

    requests: tuple[tuple[int, AccessState], ...] = ()

    def encode(self) -> bytes:
        return bytes(4) + b"".join(struct.pack(">BxH", state & 0xF, gid)
                                   for gid, state in self.requests)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < 4 or (len(raw) - 4) % 4:
            raise ParameterListError(
                f"SET TARGET PORT GROUPS list is {len(raw)} bytes; it must be 4 + 4*n",
                length_error=True)
        out = []
        for pos in range(4, len(raw), 4):
            state = raw[pos] & 0xF
            try:
                out.append((struct.unpack_from(">H", raw, pos + 2)[0], AccessState(state)))
            except ValueError:
                raise ParameterListError(
                    f"SET TARGET PORT GROUPS asks for unknown access state 0x{state:x}",
                    byte=pos) from None
        return cls(tuple(out))
