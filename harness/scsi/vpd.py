"""Vital product data pages (SPC-4 7.8, SBC-3 6.5): 00h, 80h, 83h, B0h, B1h, B2h.

Each page is a frozen dataclass with ``encode()`` (the target's bytes, 4-byte VPD
header included) and ``decode(raw)``; ``decode_vpd`` dispatches on the page code.
Device identification (83h) is a tuple of ``Designator``s; an HA device presents
the same LU designators (NAA, T10 vendor id, SCSI name) on every node and path,
while the target-port designators (relative port, port group, port name) differ
per path. Windows clustering needs at least one NAA, EUI-64 or SCSI name
designator with LU association; MPIO collapses paths by it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self

from harness.scsi.errors import ScsiDataError


class VpdPage(IntEnum):
    SUPPORTED_PAGES = 0x00
    UNIT_SERIAL_NUMBER = 0x80
    DEVICE_IDENTIFICATION = 0x83
    BLOCK_LIMITS = 0xB0
    BLOCK_DEVICE_CHARACTERISTICS = 0xB1
    LOGICAL_BLOCK_PROVISIONING = 0xB2


class CodeSet(IntEnum):
    BINARY = 1
    ASCII = 2
    UTF8 = 3


class Association(IntEnum):
    LOGICAL_UNIT = 0
    TARGET_PORT = 1
    TARGET_DEVICE = 2


class DesignatorType(IntEnum):
    VENDOR_SPECIFIC = 0
    T10_VENDOR_ID = 1
    EUI64 = 2
    NAA = 3
    RELATIVE_TARGET_PORT = 4
    TARGET_PORT_GROUP = 5
    LOGICAL_UNIT_GROUP = 6
    MD5_LOGICAL_UNIT = 7
    SCSI_NAME_STRING = 8


PROTOCOL_ISCSI = 0x5


def _header(page: int, body: bytes, device_type: int = 0) -> bytes:
    return struct.pack(">BBH", device_type & 0x1F, page, len(body)) + body


def _body(raw: bytes, page: int) -> bytes:
    if len(raw) < 4:
        raise ScsiDataError(f"VPD page 0x{page:02x} is {len(raw)} bytes; the header alone is 4")
    if raw[1] != page:
        raise ScsiDataError(f"expected VPD page 0x{page:02x}, the target returned 0x{raw[1]:02x}")
    length = struct.unpack_from(">H", raw, 2)[0]
    return bytes(raw[4 : 4 + length])


@dataclass(frozen=True, slots=True)
class SupportedPages:
    pages: tuple[int, ...] = ()
    page_code: ClassVar[int] = VpdPage.SUPPORTED_PAGES

    def encode(self, device_type: int = 0) -> bytes:
        return _header(self.page_code, bytes(sorted(set(self.pages))), device_type)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        return cls(tuple(_body(raw, cls.page_code)))


@dataclass(frozen=True, slots=True)
class UnitSerialNumber:
    serial: str = ""
    page_code: ClassVar[int] = VpdPage.UNIT_SERIAL_NUMBER

    def encode(self, device_type: int = 0) -> bytes:
        return _header(self.page_code, self.serial.encode("ascii", "replace"), device_type)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        return cls(_body(raw, cls.page_code).decode("ascii", "replace").rstrip(" \0"))


@dataclass(frozen=True, slots=True)
class Designator:
    """One designation descriptor of VPD page 83h."""

    designator_type: int
    value: bytes
    code_set: int = CodeSet.BINARY
    association: int = Association.LOGICAL_UNIT
    protocol: int | None = None  # set (with PIV) for target port / device associations

    def encode(self) -> bytes:
        b0 = ((self.protocol or 0) & 0xF) << 4 | (self.code_set & 0xF)
        b1 = ((0x80 if self.protocol is not None else 0) | (self.association & 3) << 4
              | (self.designator_type & 0xF))
        return bytes((b0, b1, 0, len(self.value))) + self.value

    # -- constructors -----------------------------------------------------------------

    @classmethod
    def naa_registered_extended(
        cls, company_id: int, vendor_id: int, extension: int = 0
    ) -> Designator:
        """NAA 6 (IEEE Registered Extended): 24-bit OUI, 36-bit id, 64-bit extension."""
        high = (0x6 << 60) | (company_id & 0xFFFFFF) << 36 | (vendor_id & 0xFFFFFFFFF)
        return cls(DesignatorType.NAA, struct.pack(">QQ", high, extension & (2**64 - 1)))

    @classmethod
    def naa_from_hex(cls, naa: str) -> Designator:
        raw = bytes.fromhex(naa.removeprefix("0x").removeprefix("naa."))
        if len(raw) not in (8, 16) or raw[0] >> 4 not in (2, 3, 5, 6):
            raise ScsiDataError(
                f"NAA identifier {naa!r} is not 8 or 16 bytes with NAA 2, 3, 5 or 6; "
                "give 32 hex digits starting with 6 for NAA IEEE Registered Extended"
            )
        return cls(DesignatorType.NAA, raw)

    @classmethod
    def t10_vendor_id(cls, vendor: str, specific: str) -> Designator:
        value = vendor.encode("ascii")[:8].ljust(8, b" ") + specific.encode("ascii")
        return cls(DesignatorType.T10_VENDOR_ID, value, CodeSet.ASCII)

    @classmethod
    def scsi_name_string(
        cls, name: str, association: int = Association.TARGET_DEVICE
    ) -> Designator:
        raw = name.encode("utf-8") + b"\0"
        raw = raw.ljust((len(raw) + 3) // 4 * 4, b"\0")
        protocol = PROTOCOL_ISCSI if association != Association.LOGICAL_UNIT else None
        return cls(DesignatorType.SCSI_NAME_STRING, raw, CodeSet.UTF8, association, protocol)

    @classmethod
    def relative_target_port(cls, port_id: int) -> Designator:
        return cls(DesignatorType.RELATIVE_TARGET_PORT, struct.pack(">xxH", port_id),
                   CodeSet.BINARY, Association.TARGET_PORT, PROTOCOL_ISCSI)

    @classmethod
    def target_port_group(cls, group_id: int) -> Designator:
        return cls(DesignatorType.TARGET_PORT_GROUP, struct.pack(">xxH", group_id),
                   CodeSet.BINARY, Association.TARGET_PORT, PROTOCOL_ISCSI)

    # -- views ------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """Human form: hex for binary designators, the string for text ones."""
        if self.code_set in (CodeSet.ASCII, CodeSet.UTF8):
            return self.value.rstrip(b"\0").decode("utf-8", "replace")
        if self.designator_type in (DesignatorType.RELATIVE_TARGET_PORT,
                                    DesignatorType.TARGET_PORT_GROUP):
            return str(self.number)
        return self.value.hex()

    @property
    def number(self) -> int:
        """The port or group number of a relative target port / port group designator."""
        return struct.unpack_from(">H", self.value, 2)[0] if len(self.value) >= 4 else 0


@dataclass(frozen=True, slots=True)
class DeviceIdentification:
    designators: tuple[Designator, ...] = ()
    page_code: ClassVar[int] = VpdPage.DEVICE_IDENTIFICATION

    def encode(self, device_type: int = 0) -> bytes:
        return _header(self.page_code, b"".join(d.encode() for d in self.designators),
                       device_type)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        body = _body(raw, cls.page_code)
        out: list[Designator] = []
        pos = 0
        while pos + 4 <= len(body):
            b0, b1, _, n = body[pos : pos + 4]
            if pos + 4 + n > len(body):
                raise ScsiDataError(
                    f"VPD 83h designator at offset {pos + 4} claims {n} bytes past the page end"
                )
            out.append(Designator(
                designator_type=b1 & 0xF, value=body[pos + 4 : pos + 4 + n],
                code_set=b0 & 0xF, association=(b1 >> 4) & 3,
                protocol=(b0 >> 4) if b1 & 0x80 else None,
            ))
            pos += 4 + n
        return cls(tuple(out))

    def find(self, designator_type: int,
             association: int = Association.LOGICAL_UNIT) -> Designator | None:
        for d in self.designators:
            if d.designator_type == designator_type and d.association == association:
                return d
        return None

    def logical_unit_ids(self) -> tuple[Designator, ...]:
        """The designators that name the logical unit (what must match across paths)."""
        return tuple(d for d in self.designators if d.association == Association.LOGICAL_UNIT)


@dataclass(frozen=True, slots=True)
class BlockLimits:
    """Block Limits VPD page (SBC-3 6.5.3); lengths in logical blocks, 0 = no limit."""

    wsnz: bool = False
    max_compare_and_write_length: int = 0
    optimal_transfer_length_granularity: int = 0
    max_transfer_length: int = 0
    optimal_transfer_length: int = 0
    max_prefetch_length: int = 0
    max_unmap_lba_count: int = 0
    max_unmap_block_descriptor_count: int = 0
    optimal_unmap_granularity: int = 0
    unmap_granularity_alignment: int | None = None
    max_write_same_length: int = 0
    page_code: ClassVar[int] = VpdPage.BLOCK_LIMITS
    _FMT: ClassVar[struct.Struct] = struct.Struct(">BBHIIIIIII Q20x")

    def encode(self, device_type: int = 0) -> bytes:
        uga = self.unmap_granularity_alignment
        body = self._FMT.pack(
            1 if self.wsnz else 0, self.max_compare_and_write_length,
            self.optimal_transfer_length_granularity, self.max_transfer_length,
            self.optimal_transfer_length, self.max_prefetch_length, self.max_unmap_lba_count,
            self.max_unmap_block_descriptor_count, self.optimal_unmap_granularity,
            0 if uga is None else 0x80000000 | (uga & 0x7FFFFFFF), self.max_write_same_length,
        )
        return _header(self.page_code, body, device_type)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        body = _body(raw, cls.page_code).ljust(cls._FMT.size, b"\0")
        (wsnz, mcawl, otlg, mtl, otl, mpl, mulc, mubdc, oug, uga,
         mwsl) = cls._FMT.unpack_from(body)
        return cls(bool(wsnz & 1), mcawl, otlg, mtl, otl, mpl, mulc, mubdc, oug,
                   uga & 0x7FFFFFFF if uga & 0x80000000 else None, mwsl)


@dataclass(frozen=True, slots=True)
class BlockDeviceCharacteristics:
    """Block Device Characteristics VPD page (SBC-3 6.5.2); rotation 1 = non-rotating."""

    medium_rotation_rate: int = 1
    product_type: int = 0
    nominal_form_factor: int = 0
    fuab: bool = True
    vbuls: bool = False
    page_code: ClassVar[int] = VpdPage.BLOCK_DEVICE_CHARACTERISTICS

    def encode(self, device_type: int = 0) -> bytes:
        body = struct.pack(">HBBB55x", self.medium_rotation_rate, self.product_type,
                           self.nominal_form_factor & 0xF,
                           (0x02 if self.fuab else 0) | (0x01 if self.vbuls else 0))
        return _header(self.page_code, body, device_type)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        body = _body(raw, cls.page_code).ljust(5, b"\0")
        rate, ptype, ff, flags = struct.unpack_from(">HBBB", body)
        return cls(rate, ptype, ff & 0xF, bool(flags & 0x02), bool(flags & 0x01))


@dataclass(frozen=True, slots=True)
class LogicalBlockProvisioning:
    """Logical Block Provisioning VPD page (SBC-3 6.5.4); provisioning type 2 = thin."""

    threshold_exponent: int = 0
    lbpu: bool = True      # UNMAP supported
    lbpws: bool = True     # WRITE SAME(16) with UNMAP supported
    lbpws10: bool = True   # WRITE SAME(10) with UNMAP supported
    lbprz: bool = True     # unmapped blocks read as zeros
    anc_sup: bool = False
    dp: bool = False
    provisioning_type: int = 2
    page_code: ClassVar[int] = VpdPage.LOGICAL_BLOCK_PROVISIONING

    def encode(self, device_type: int = 0) -> bytes:
        flags = ((0x80 if self.lbpu else 0) | (0x40 if self.lbpws else 0)
                 | (0x20 if self.lbpws10 else 0) | (0x04 if self.lbprz else 0)
                 | (0x02 if self.anc_sup else 0) | (0x01 if self.dp else 0))
        body = bytes((self.threshold_exponent, flags, self.provisioning_type & 7, 0))
        return _header(self.page_code, body, device_type)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        body = _body(raw, cls.page_code).ljust(4, b"\0")
        f = body[1]
        return cls(body[0], bool(f & 0x80), bool(f & 0x40), bool(f & 0x20), bool(f & 0x04),
                   bool(f & 0x02), bool(f & 0x01), body[2] & 7)


VpdData = (SupportedPages | UnitSerialNumber | DeviceIdentification | BlockLimits
           | BlockDeviceCharacteristics | LogicalBlockProvisioning)

_PAGES: dict[int, type] = {cls.page_code: cls for cls in (
    SupportedPages, UnitSerialNumber, DeviceIdentification, BlockLimits,
    BlockDeviceCharacteristics, LogicalBlockProvisioning,
)}


def decode_vpd(raw: bytes) -> VpdData:
    """Decode any VPD page this module knows, by its page code (byte 1)."""
    if len(raw) < 4:
        raise ScsiDataError(f"VPD page is {len(raw)} bytes; the header alone is 4")
    cls = _PAGES.get(raw[1])
    if cls is None:
        raise ScsiDataError(f"VPD page 0x{raw[1]:02x} is not one this harness decodes")
    return cls.decode(raw)  # type: ignore[no-any-return]


__all__ = [
    "Association", "BlockDeviceCharacteristics", "BlockLimits", "CodeSet", "Designator",
    "DesignatorType", "DeviceIdentification", "LogicalBlockProvisioning", "SupportedPages",
    "UnitSerialNumber", "VpdPage", "decode_vpd",
]
