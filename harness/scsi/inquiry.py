"""Standard INQUIRY data (SPC-4 6.6.2): who the logical unit says it is.

``StandardInquiry.encode()`` builds the 96-byte page a target returns (version
SPC-4, response data format 2, HISUP, CMDQUE, TPGS bits for ALUA, version
descriptors); ``StandardInquiry.decode()`` reads any page of at least 36 bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from harness.scsi.errors import ScsiDataError

VERSION_SPC4 = 0x06
STANDARD_INQUIRY_LENGTH = 96


class PeripheralDeviceType(IntEnum):
    DIRECT_ACCESS_BLOCK = 0x00
    ENCLOSURE = 0x0D
    UNKNOWN = 0x1F


class PeripheralQualifier(IntEnum):
    CONNECTED = 0
    NOT_CONNECTED = 1
    NOT_SUPPORTED = 3


class Tpgs(IntEnum):
    """Target port group support (byte 5 bits 5..4)."""

    NONE = 0
    IMPLICIT = 1
    EXPLICIT = 2
    BOTH = 3


class VersionDescriptor(IntEnum):
    """Version descriptors (SPC-4 table 149) this target claims."""

    SAM_5 = 0x00A0
    SPC_4 = 0x0460
    SBC_3 = 0x04C0
    ISCSI = 0x0960


def _ascii(text: str, width: int) -> bytes:
    raw = text.encode("ascii", "replace")[:width]
    return raw.ljust(width, b" ")


@dataclass(frozen=True, slots=True)
class StandardInquiry:
    vendor: str = "SPLITBRN"
    product: str = ""
    revision: str = ""
    device_type: int = PeripheralDeviceType.DIRECT_ACCESS_BLOCK
    qualifier: int = PeripheralQualifier.CONNECTED
    version: int = VERSION_SPC4
    removable: bool = False
    normaca: bool = False
    hisup: bool = True
    sccs: bool = False
    acc: bool = False
    tpgs: int = Tpgs.NONE
    third_party_copy: bool = False
    protect: bool = False
    encserv: bool = False
    multip: bool = False
    cmdque: bool = True
    version_descriptors: tuple[int, ...] = field(default=(
        VersionDescriptor.SAM_5, VersionDescriptor.ISCSI,
        VersionDescriptor.SPC_4, VersionDescriptor.SBC_3,
    ))

    def encode(self) -> bytes:
        buf = bytearray(STANDARD_INQUIRY_LENGTH)
        buf[0] = (self.qualifier & 7) << 5 | (self.device_type & 0x1F)
        buf[1] = 0x80 if self.removable else 0
        buf[2] = self.version
        buf[3] = (0x20 if self.normaca else 0) | (0x10 if self.hisup else 0) | 0x02
        buf[4] = STANDARD_INQUIRY_LENGTH - 5
        buf[5] = ((0x80 if self.sccs else 0) | (0x40 if self.acc else 0)
                  | (self.tpgs & 3) << 4 | (0x08 if self.third_party_copy else 0)
                  | (0x01 if self.protect else 0))
        buf[6] = (0x40 if self.encserv else 0) | (0x10 if self.multip else 0)
        buf[7] = 0x02 if self.cmdque else 0
        buf[8:16] = _ascii(self.vendor, 8)
        buf[16:32] = _ascii(self.product, 16)
        buf[32:36] = _ascii(self.revision, 4)
        for i, desc in enumerate(self.version_descriptors[:8]):
            struct.pack_into(">H", buf, 58 + 2 * i, desc)
        return bytes(buf)

    @classmethod
    def decode(cls, raw: bytes) -> StandardInquiry:
        if len(raw) < 36:
            raise ScsiDataError(
                f"standard INQUIRY data is {len(raw)} bytes; SPC-4 requires at least 36"
            )
        descs: list[int] = []
        for off in range(58, min(len(raw), 5 + raw[4], 74) - 1, 2):
            value = struct.unpack_from(">H", raw, off)[0]
            if value:
                descs.append(value)
        return cls(
            vendor=raw[8:16].decode("ascii", "replace").rstrip(),
            product=raw[16:32].decode("ascii", "replace").rstrip(),
            revision=raw[32:36].decode("ascii", "replace").rstrip(),
            device_type=raw[0] & 0x1F, qualifier=raw[0] >> 5, version=raw[2],
            removable=bool(raw[1] & 0x80), normaca=bool(raw[3] & 0x20),
            hisup=bool(raw[3] & 0x10), sccs=bool(raw[5] & 0x80), acc=bool(raw[5] & 0x40),
            tpgs=(raw[5] >> 4) & 3, third_party_copy=bool(raw[5] & 0x08),
            protect=bool(raw[5] & 0x01), encserv=bool(raw[6] & 0x40),
            multip=bool(raw[6] & 0x10), cmdque=bool(raw[7] & 0x02),
            version_descriptors=tuple(descs),
        )
