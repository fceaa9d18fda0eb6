"""Mode parameters (SPC-4 7.5, SBC-3 6.4): headers, block descriptors, caching and control pages.

MODE SENSE returns, and MODE SELECT takes, a ``ModeParameters``: a 4-byte (6-byte
CDB) or 8-byte (10-byte CDB) header, zero or more block descriptors (8 bytes, or
16 with LONGLBA) and a sequence of pages. Pages this module knows are typed
(``CachingPage`` 08h, ``ControlPage`` 0Ah); others are kept raw (``RawModePage``).
The same classes encode the changeable-values mask (page control 1): a set bit or
non-zero field means "changeable".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self

from harness.scsi.errors import ParameterListError, ScsiDataError

ALL_PAGES = 0x3F


class PageControl(IntEnum):
    CURRENT = 0
    CHANGEABLE = 1
    DEFAULT = 2
    SAVED = 3


class ModePageCode(IntEnum):
    CACHING = 0x08
    CONTROL = 0x0A


def _page_header(code: int, body: bytes, ps: bool = False) -> bytes:
    return bytes(((0x80 if ps else 0) | code, len(body))) + body


@dataclass(frozen=True, slots=True)
class CachingPage:
    """Caching mode page (08h, 20 bytes). ``wce`` = write-back cache enabled."""

    wce: bool = False
    rcd: bool = False
    mf: bool = False
    size: bool = False
    disc: bool = False
    cap: bool = False
    abpf: bool = False
    ic: bool = False
    demand_read_retention: int = 0
    write_retention: int = 0
    disable_prefetch_transfer_length: int = 0
    minimum_prefetch: int = 0
    maximum_prefetch: int = 0
    maximum_prefetch_ceiling: int = 0
    fsw: bool = False
    lbcss: bool = False
    dra: bool = False
    nv_dis: bool = False
    cache_segments: int = 0
    cache_segment_size: int = 0
    ps: bool = False
    page_code: ClassVar[int] = ModePageCode.CACHING
    LENGTH: ClassVar[int] = 0x12

    def encode(self) -> bytes:
        b2 = ((0x80 if self.ic else 0) | (0x40 if self.abpf else 0) | (0x20 if self.cap else 0)
              | (0x10 if self.disc else 0) | (0x08 if self.size else 0)
              | (0x04 if self.wce else 0) | (0x02 if self.mf else 0) | (0x01 if self.rcd else 0))
        b12 = ((0x80 if self.fsw else 0) | (0x40 if self.lbcss else 0)
               | (0x20 if self.dra else 0) | (0x01 if self.nv_dis else 0))
        body = struct.pack(
            ">BBHHHHBBH4x", b2,
            (self.demand_read_retention & 0xF) << 4 | (self.write_retention & 0xF),
            self.disable_prefetch_transfer_length, self.minimum_prefetch,
            self.maximum_prefetch, self.maximum_prefetch_ceiling, b12, self.cache_segments,
            self.cache_segment_size,
        )
        return _page_header(self.page_code, body, self.ps)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        body = bytes(raw[2 : 2 + raw[1]]).ljust(cls.LENGTH, b"\0")
        b2, ret, dpf, minp, maxp, ceil, b12, segs, segsize = struct.unpack_from(
            ">BBHHHHBBH", body)
        return cls(
            wce=bool(b2 & 0x04), rcd=bool(b2 & 0x01), mf=bool(b2 & 0x02),
            size=bool(b2 & 0x08), disc=bool(b2 & 0x10), cap=bool(b2 & 0x20),
            abpf=bool(b2 & 0x40), ic=bool(b2 & 0x80), demand_read_retention=ret >> 4,
            write_retention=ret & 0xF, disable_prefetch_transfer_length=dpf,
            minimum_prefetch=minp, maximum_prefetch=maxp, maximum_prefetch_ceiling=ceil,
            fsw=bool(b12 & 0x80), lbcss=bool(b12 & 0x40), dra=bool(b12 & 0x20),
            nv_dis=bool(b12 & 0x01), cache_segments=segs, cache_segment_size=segsize,
            ps=bool(raw[0] & 0x80),
        )


@dataclass(frozen=True, slots=True)
class ControlPage:
    """Control mode page (0Ah, 12 bytes). ``d_sense`` selects descriptor-format sense."""

    tst: int = 0
    tmf_only: bool = False
    dpicz: bool = False
    d_sense: bool = False
    gltsd: bool = True
    rlec: bool = False
    queue_algorithm_modifier: int = 1  # unrestricted reordering
    nuar: bool = False
    qerr: int = 0
    rac: bool = False
    ua_intlck_ctrl: int = 0
    swp: bool = False
    ato: bool = False
    tas: bool = False
    atmpe: bool = False
    rwwp: bool = False
    autoload_mode: int = 0
    busy_timeout_period: int = 0
    extended_self_test_completion_time: int = 0
    ps: bool = False
    page_code: ClassVar[int] = ModePageCode.CONTROL
    LENGTH: ClassVar[int] = 0x0A

    def encode(self) -> bytes:
        b2 = ((self.tst & 7) << 5 | (0x10 if self.tmf_only else 0) | (0x08 if self.dpicz else 0)
              | (0x04 if self.d_sense else 0) | (0x02 if self.gltsd else 0)
              | (0x01 if self.rlec else 0))
        b3 = (self.queue_algorithm_modifier & 0xF) << 4 | (0x08 if self.nuar else 0) | (
            (self.qerr & 3) << 1)
        b4 = ((0x40 if self.rac else 0) | (self.ua_intlck_ctrl & 3) << 4
              | (0x08 if self.swp else 0))
        b5 = ((0x80 if self.ato else 0) | (0x40 if self.tas else 0) | (0x20 if self.atmpe else 0)
              | (0x10 if self.rwwp else 0) | (self.autoload_mode & 7))
        body = struct.pack(">BBBB2xHH", b2, b3, b4, b5, self.busy_timeout_period,
                           self.extended_self_test_completion_time)
        return _page_header(self.page_code, body, self.ps)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        body = bytes(raw[2 : 2 + raw[1]]).ljust(cls.LENGTH, b"\0")
        b2, b3, b4, b5, busy, selftest = struct.unpack_from(">BBBB2xHH", body)
        return cls(
            tst=b2 >> 5, tmf_only=bool(b2 & 0x10), dpicz=bool(b2 & 0x08),
            d_sense=bool(b2 & 0x04), gltsd=bool(b2 & 0x02), rlec=bool(b2 & 0x01),
            queue_algorithm_modifier=b3 >> 4, nuar=bool(b3 & 0x08), qerr=(b3 >> 1) & 3,
            rac=bool(b4 & 0x40), ua_intlck_ctrl=(b4 >> 4) & 3, swp=bool(b4 & 0x08),
            ato=bool(b5 & 0x80), tas=bool(b5 & 0x40), atmpe=bool(b5 & 0x20),
            rwwp=bool(b5 & 0x10), autoload_mode=b5 & 7, busy_timeout_period=busy,
            extended_self_test_completion_time=selftest, ps=bool(raw[0] & 0x80),
        )


@dataclass(frozen=True, slots=True)
class RawModePage:
    """A page this module does not interpret, kept byte for byte (page_0 format)."""

    page_code: int
    data: bytes
    ps: bool = False

    def encode(self) -> bytes:
        return _page_header(self.page_code, self.data, self.ps)


ModePage = CachingPage | ControlPage | RawModePage

_PAGE_CLASSES: dict[int, type] = {ModePageCode.CACHING: CachingPage,
                                  ModePageCode.CONTROL: ControlPage}


def decode_page(raw: bytes) -> ModePage:
    code = raw[0] & 0x3F
    if raw[0] & 0x40:
        raise ScsiDataError(f"mode page 0x{code:02x} uses sub-page format; not supported")
    cls = _PAGE_CLASSES.get(code)
    if cls is not None:
        return cls.decode(raw)  # type: ignore[no-any-return]
    return RawModePage(code, bytes(raw[2 : 2 + raw[1]]), bool(raw[0] & 0x80))


@dataclass(frozen=True, slots=True)
class BlockDescriptor:
    num_blocks: int
    block_length: int


@dataclass(frozen=True, slots=True)
class ModeParameters:
    """The whole MODE SENSE / MODE SELECT parameter data."""

    pages: tuple[ModePage, ...] = ()
    block_descriptors: tuple[BlockDescriptor, ...] = ()
    medium_type: int = 0
    write_protect: bool = False
    dpofua: bool = True
    long_lba: bool = False

    def _descriptors(self) -> bytes:
        out = bytearray()
        for d in self.block_descriptors:
            if self.long_lba:
                out += struct.pack(">Q4xI", d.num_blocks, d.block_length)
            else:
                out += struct.pack(">I", min(d.num_blocks, 0xFFFFFFFF))
                out += struct.pack(">I", d.block_length & 0xFFFFFF)
        return bytes(out)

    def encode(self, size: int = 6) -> bytes:
        """Encode as MODE SENSE(6) (``size=6``) or MODE SENSE(10) parameter data."""
        descs = self._descriptors()
        pages = b"".join(p.encode() for p in self.pages)
        dsp = (0x80 if self.write_protect else 0) | (0x10 if self.dpofua else 0)
        if size == 6:
            total = 3 + len(descs) + len(pages)
            return bytes((min(total, 0xFF), self.medium_type, dsp, len(descs))) + descs + pages
        total = 6 + len(descs) + len(pages)
        return struct.pack(">HBBBxH", min(total, 0xFFFF), self.medium_type, dsp,
                           1 if self.long_lba else 0, len(descs)) + descs + pages

    @classmethod
    def decode(cls, raw: bytes, size: int = 6, *, select: bool = False) -> Self:
        """Decode MODE SENSE data, or a MODE SELECT parameter list with ``select=True``.

        For MODE SELECT malformed input raises ``ParameterListError`` with the byte
        offset, which the target reports as INVALID FIELD IN PARAMETER LIST.
        """
        err = ParameterListError if select else ScsiDataError
        head = 4 if size == 6 else 8
        if len(raw) < head:
            raise err(f"mode parameter data is {len(raw)} bytes; the header alone is {head}")
        if size == 6:
            total = raw[0] + 1
            medium, dsp, bdl = raw[1], raw[2], raw[3]
            long_lba = False
        else:
            total, medium, dsp, flags, bdl = struct.unpack_from(">HBBBxH", raw)
            total += 2
            long_lba = bool(flags & 1)
        end = len(raw) if select else min(len(raw), total)
        dlen = 16 if long_lba else 8
        if bdl % dlen or head + bdl > end:
            msg = (f"block descriptor length {bdl} is not a whole number of {dlen}-byte "
                   "descriptors inside the mode parameter data")
            if select:
                raise ParameterListError(msg, byte=3 if size == 6 else 6)
            raise ScsiDataError(msg)
        descs = []
        for off in range(head, head + bdl, dlen):
            if long_lba:
                n, length = struct.unpack_from(">Q4xI", raw, off)
            else:
                n, length = struct.unpack_from(">I", raw, off)[0], int.from_bytes(
                    raw[off + 5 : off + 8], "big")
            descs.append(BlockDescriptor(n, length))
        pages: list[ModePage] = []
        pos = head + bdl
        while pos + 2 <= end:
            plen = raw[pos + 1]
            if pos + 2 + plen > end:
                if select:
                    raise ParameterListError(
                        f"mode page 0x{raw[pos] & 0x3F:02x} at offset {pos} runs past the "
                        "parameter list", byte=pos + 1)
                break
            pages.append(decode_page(raw[pos : pos + 2 + plen]))
            pos += 2 + plen
        return cls(tuple(pages), tuple(descs), medium, bool(dsp & 0x80), bool(dsp & 0x10),
                   long_lba)

    def page(self, code: int) -> ModePage | None:
        for p in self.pages:
            if p.page_code == code:
                return p
        return None
