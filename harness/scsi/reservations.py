"""Persistent reservation data (SPC-4 6.15, 6.16, 7.6.4): PR IN replies and PR OUT lists.

Codes: ``PrType`` (the six reservation types), ``PrOutAction``, ``PrInAction``.
PR IN parameter data: ``ReadKeysData``, ``ReadReservationData``,
``ReportCapabilitiesData``, ``ReadFullStatusData`` (with ``TransportId`` for iSCSI,
format 0 = name only, format 1 = name plus ISID, i.e. one initiator port).
PR OUT parameter lists: ``PrOutParameters`` (basic list, with SPEC_I_PT
TransportIDs) and ``RegisterAndMoveParameters``. Every class encodes and decodes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Self

from harness.scsi.errors import ParameterListError, ScsiDataError

PROTOCOL_ISCSI = 0x5
PR_OUT_BASIC_LENGTH = 24


class PrType(IntEnum):
    WRITE_EXCLUSIVE = 0x1
    EXCLUSIVE_ACCESS = 0x3
    WRITE_EXCLUSIVE_REGISTRANTS_ONLY = 0x5
    EXCLUSIVE_ACCESS_REGISTRANTS_ONLY = 0x6
    WRITE_EXCLUSIVE_ALL_REGISTRANTS = 0x7
    EXCLUSIVE_ACCESS_ALL_REGISTRANTS = 0x8

    @property
    def all_registrants(self) -> bool:
        return self in (PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS,
                        PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS)

    @property
    def registrants_only(self) -> bool:
        return self in (PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY,
                        PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY)

    @property
    def exclusive_access(self) -> bool:
        return self in (PrType.EXCLUSIVE_ACCESS, PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY,
                        PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS)


class PrOutAction(IntEnum):
    REGISTER = 0x00
    RESERVE = 0x01
    RELEASE = 0x02
    CLEAR = 0x03
    PREEMPT = 0x04
    PREEMPT_AND_ABORT = 0x05
    REGISTER_AND_IGNORE_EXISTING_KEY = 0x06
    REGISTER_AND_MOVE = 0x07


class PrInAction(IntEnum):
    READ_KEYS = 0x00
    READ_RESERVATION = 0x01
    REPORT_CAPABILITIES = 0x02
    READ_FULL_STATUS = 0x03


PR_SCOPE_LU = 0x0


@dataclass(frozen=True, slots=True)
class TransportId:
    """An iSCSI TransportID: format 0 names an initiator device, format 1 a port."""

    name: str
    isid: str | None = None  # 12 hex digits for format 1

    @classmethod
    def from_port_name(cls, port: str) -> Self:
        """From ``<iqn>,i,0x<isid>`` (or a bare name, giving format 0)."""
        name, sep, isid = port.partition(",i,0x")
        return cls(name, isid.lower() if sep else None)

    @property
    def port_name(self) -> str:
        return self.name if self.isid is None else f"{self.name},i,0x{self.isid}"

    def encode(self) -> bytes:
        text = self.port_name.encode("utf-8") + b"\0"
        text = text.ljust(max(20, (len(text) + 3) // 4 * 4), b"\0")
        fmt = 0x40 if self.isid is not None else 0x00
        return struct.pack(">BxH", fmt | PROTOCOL_ISCSI, len(text)) + text

    @classmethod
    def decode_from(cls, raw: bytes, offset: int = 0) -> tuple[Self, int]:
        """Decode one TransportID at ``offset``; return it and its encoded length."""
        if len(raw) < offset + 4:
            raise ParameterListError(f"TransportID at offset {offset} is truncated",
                                     byte=offset, length_error=True)
        b0 = raw[offset]
        if b0 & 0x0F != PROTOCOL_ISCSI:
            raise ParameterListError(
                f"TransportID at offset {offset} has protocol 0x{b0 & 0xF:x}; only iSCSI (5) "
                "is supported", byte=offset)
        fmt = b0 >> 6
        length = struct.unpack_from(">H", raw, offset + 2)[0]
        end = offset + 4 + length
        if end > len(raw) or fmt > 1:
            raise ParameterListError(
                f"TransportID at offset {offset} is malformed (format {fmt}, length {length})",
                byte=offset + (2 if end > len(raw) else 0))
        text = bytes(raw[offset + 4 : end]).split(b"\0", 1)[0].decode("utf-8", "replace")
        if fmt == 1:
            name, sep, isid = text.partition(",i,0x")
            if not sep:
                raise ParameterListError(
                    f"TransportID format 1 at offset {offset} lacks the ',i,0x' separator",
                    byte=offset + 4)
            return cls(name, isid.lower()), end - offset
        return cls(text), end - offset

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        return cls.decode_from(raw, 0)[0]

    def matches(self, port: str) -> bool:
        """Whether this TransportID designates the initiator port ``port``."""
        other = TransportId.from_port_name(port)
        if self.name.lower() != other.name.lower():
            return False
        return self.isid is None or self.isid == other.isid


@dataclass(frozen=True, slots=True)
class ReadKeysData:
    generation: int
    keys: tuple[int, ...] = ()

    def encode(self) -> bytes:
        return struct.pack(f">II{len(self.keys)}Q", self.generation, 8 * len(self.keys),
                           *self.keys)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < 8:
            raise ScsiDataError(f"PR IN READ KEYS data is {len(raw)} bytes; the header is 8")
        gen, length = struct.unpack_from(">II", raw)
        n = min(length, len(raw) - 8) // 8
        return cls(gen, struct.unpack_from(f">{n}Q", raw, 8))


@dataclass(frozen=True, slots=True)
class ReadReservationData:
    generation: int
    key: int | None = None      # None: no reservation
    pr_type: PrType | None = None
    scope: int = PR_SCOPE_LU

    def encode(self) -> bytes:
        if self.key is None or self.pr_type is None:
            return struct.pack(">II", self.generation, 0)
        return struct.pack(">IIQ4xxBxx", self.generation, 16, self.key,
                           (self.scope & 0xF) << 4 | self.pr_type)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < 8:
            raise ScsiDataError(f"PR IN READ RESERVATION data is {len(raw)} bytes; need 8")
        gen, length = struct.unpack_from(">II", raw)
        if length < 16 or len(raw) < 24:
            return cls(gen)
        key, st = struct.unpack_from(">Q4xxB", raw, 8)
        return cls(gen, key, PrType(st & 0xF), st >> 4)


@dataclass(frozen=True, slots=True)
class ReportCapabilitiesData:
    rlr_c: bool = False
    crh: bool = True
    sip_c: bool = True
    atp_c: bool = True
    ptpl_c: bool = True
    tmv: bool = True
    allow_commands: int = 0
    ptpl_a: bool = False
    types: frozenset[PrType] = field(default_factory=lambda: frozenset(PrType))

    _MASK_BITS = {PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS: 0x8000,
                  PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: 0x4000,
                  PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY: 0x2000,
                  PrType.EXCLUSIVE_ACCESS: 0x0800, PrType.WRITE_EXCLUSIVE: 0x0200,
                  PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS: 0x0001}

    def encode(self) -> bytes:
        b2 = ((0x80 if self.rlr_c else 0) | (0x10 if self.crh else 0)
              | (0x08 if self.sip_c else 0) | (0x04 if self.atp_c else 0)
              | (0x01 if self.ptpl_c else 0))
        b3 = ((0x80 if self.tmv else 0) | (self.allow_commands & 7) << 4
              | (0x01 if self.ptpl_a else 0))
        mask = 0
        for t in self.types:
            mask |= self._MASK_BITS[t]
        return struct.pack(">HBBH2x", 8, b2, b3, mask)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < 6:
            raise ScsiDataError(f"PR IN REPORT CAPABILITIES data is {len(raw)} bytes; need 8")
        _, b2, b3, mask = struct.unpack_from(">HBBH", raw)
        types = frozenset(t for t, bit in cls._MASK_BITS.items() if mask & bit)
        return cls(bool(b2 & 0x80), bool(b2 & 0x10), bool(b2 & 0x08), bool(b2 & 0x04),
                   bool(b2 & 0x01), bool(b3 & 0x80), (b3 >> 4) & 7, bool(b3 & 0x01), types)


@dataclass(frozen=True, slots=True)
class FullStatusDescriptor:
    key: int
    transport_id: TransportId
    relative_target_port: int = 0
    all_tg_pt: bool = False
    holder: bool = False
    pr_type: PrType | None = None
    scope: int = PR_SCOPE_LU

    def encode(self) -> bytes:
        tid = self.transport_id.encode()
        st = (self.scope & 0xF) << 4 | (self.pr_type or 0) if self.holder else 0
        return struct.pack(">Q4xBB4xHI", self.key,
                           (0x02 if self.all_tg_pt else 0) | (0x01 if self.holder else 0),
                           st, self.relative_target_port, len(tid)) + tid


@dataclass(frozen=True, slots=True)
class ReadFullStatusData:
    generation: int
    descriptors: tuple[FullStatusDescriptor, ...] = ()

    def encode(self) -> bytes:
        body = b"".join(d.encode() for d in self.descriptors)
        return struct.pack(">II", self.generation, len(body)) + body

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < 8:
            raise ScsiDataError(f"PR IN READ FULL STATUS data is {len(raw)} bytes; need 8")
        gen, length = struct.unpack_from(">II", raw)
        end = min(len(raw), 8 + length)
        pos, out = 8, []
        while pos + 24 <= end:
            key, flags, st, rtp, dlen = struct.unpack_from(">Q4xBB4xHI", raw, pos)
            if pos + 24 + dlen > end:
                break
            try:
                tid = TransportId.decode(raw[pos + 24 : pos + 24 + dlen])
            except ParameterListError as exc:
                raise ScsiDataError(f"READ FULL STATUS descriptor: {exc}") from None
            holder = bool(flags & 1)
            out.append(FullStatusDescriptor(
                key, tid, rtp, bool(flags & 2), holder,
                PrType(st & 0xF) if holder else None, st >> 4))
            pos += 24 + dlen
        return cls(gen, tuple(out))


@dataclass(frozen=True, slots=True)
class PrOutParameters:
    """The basic PR OUT parameter list (every service action but REGISTER AND MOVE)."""

    key: int = 0
    service_action_key: int = 0
    spec_i_pt: bool = False
    all_tg_pt: bool = False
    aptpl: bool = False
    transport_ids: tuple[TransportId, ...] = ()

    def encode(self) -> bytes:
        flags = ((0x08 if self.spec_i_pt else 0) | (0x04 if self.all_tg_pt else 0)
                 | (0x01 if self.aptpl else 0))
        out = struct.pack(">QQ4xBx2x", self.key, self.service_action_key, flags)
        if self.spec_i_pt:
            tids = b"".join(t.encode() for t in self.transport_ids)
            out += struct.pack(">I", len(tids)) + tids
        return out

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < PR_OUT_BASIC_LENGTH:
            raise ParameterListError(
                f"PR OUT parameter list is {len(raw)} bytes; the basic list is 24",
                length_error=True)
        key, sak, flags = struct.unpack_from(">QQ4xB", raw)
        spec = bool(flags & 0x08)
        tids: list[TransportId] = []
        if spec:
            if len(raw) < 28:
                raise ParameterListError(
                    "PR OUT with SPEC_I_PT needs a TransportID parameter data length at byte 24",
                    length_error=True)
            tlen = struct.unpack_from(">I", raw, 24)[0]
            if 28 + tlen > len(raw):
                raise ParameterListError(
                    f"PR OUT TransportID data length {tlen} runs past the parameter list",
                    length_error=True)
            pos = 28
            while pos < 28 + tlen:
                tid, n = TransportId.decode_from(raw[: 28 + tlen], pos)
                tids.append(tid)
                pos += n
        elif len(raw) != PR_OUT_BASIC_LENGTH:
            raise ParameterListError(
                f"PR OUT parameter list is {len(raw)} bytes; without SPEC_I_PT it must be 24",
                length_error=True)
        return cls(key, sak, spec, bool(flags & 0x04), bool(flags & 0x01), tuple(tids))


@dataclass(frozen=True, slots=True)
class RegisterAndMoveParameters:
    key: int
    service_action_key: int
    transport_id: TransportId
    relative_target_port: int
    unreg: bool = False
    aptpl: bool = False

    def encode(self) -> bytes:
        tid = self.transport_id.encode()
        return struct.pack(">QQxBHI", self.key, self.service_action_key,
                           (0x02 if self.unreg else 0) | (0x01 if self.aptpl else 0),
                           self.relative_target_port, len(tid)) + tid

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < 24:
            raise ParameterListError(
                f"REGISTER AND MOVE parameter list is {len(raw)} bytes; need at least 24",
                length_error=True)
        key, sak, flags, rtp, tlen = struct.unpack_from(">QQxBHI", raw)
        if 24 + tlen > len(raw) or tlen < 4:
            raise ParameterListError(
                f"REGISTER AND MOVE TransportID length {tlen} does not fit the parameter list",
                length_error=True)
        tid, _ = TransportId.decode_from(raw[: 24 + tlen], 24)
        return cls(key, sak, tid, rtp, bool(flags & 0x02), bool(flags & 0x01))
