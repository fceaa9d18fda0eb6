"""REPORT LUNS parameter data (SPC-4 6.33) and the SAM-5 single-level LUN format.

LUNs below 256 use peripheral device addressing (``00 nn``), up to 16383 flat
space addressing (``40|hi lo``); the remaining six bytes are zero.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from harness.scsi.errors import ScsiDataError

MAX_FLAT_LUN = 0x3FFF


def encode_lun(lun: int) -> bytes:
    """The 8-byte LUN field for a single-level LUN number."""
    if lun < 0 or lun > MAX_FLAT_LUN:
        raise ScsiDataError(f"LUN {lun} is outside 0..{MAX_FLAT_LUN} (single-level addressing)")
    if lun < 256:
        return bytes((0, lun)) + bytes(6)
    return bytes((0x40 | (lun >> 8), lun & 0xFF)) + bytes(6)


def decode_lun(raw: bytes) -> int:
    """The LUN number of an 8-byte LUN field (peripheral or flat space addressing)."""
    if len(raw) < 2:
        raise ScsiDataError(f"LUN field is {len(raw)} bytes; expected 8")
    method = raw[0] >> 6
    if method == 0:
        return raw[1] if raw[0] == 0 else (raw[0] & 0x3F) << 8 | raw[1]
    if method == 1:
        return (raw[0] & 0x3F) << 8 | raw[1]
    raise ScsiDataError(
        f"LUN field {bytes(raw[:8]).hex()} uses address method {method}; "
        "only peripheral and flat space addressing are supported"
    )


@dataclass(frozen=True, slots=True)
class ReportLunsData:
    luns: tuple[int, ...] = ()

    def encode(self) -> bytes:
        body = b"".join(encode_lun(n) for n in self.luns)
        return struct.pack(">I4x", len(body)) + body

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        if len(raw) < 8:
            raise ScsiDataError(f"REPORT LUNS data is {len(raw)} bytes; the header alone is 8")
        length = struct.unpack_from(">I", raw)[0]
        end = min(len(raw), 8 + length)
        return cls(tuple(decode_lun(raw[off : off + 8]) for off in range(8, end - 7, 8)))
