"""CRC32C header and data digests (RFC 7143 section 13.1, RFC 3385).

The digest is the Castagnoli CRC (polynomial 0x1EDC6F41, reflected, initial value
and final XOR 0xFFFFFFFF) and is sent as 4 bytes, least significant byte first.
The header digest covers the BHS and all AHS; the data digest covers the data
segment and its padding and is present only when DataSegmentLength > 0.
"""

from __future__ import annotations

import struct

from crc32c import crc32c

DIGEST_LENGTH = 4

_LE32 = struct.Struct("<I")


def crc32c_value(data: bytes | bytearray | memoryview) -> int:
    """The CRC32C of ``data`` as an integer."""
    return crc32c(data)


def crc32c_digest(data: bytes | bytearray | memoryview) -> bytes:
    """The CRC32C of ``data`` as the 4 bytes that go on the wire (little-endian)."""
    return _LE32.pack(crc32c(data))


def digest_matches(data: bytes | bytearray | memoryview, received: bytes | memoryview) -> bool:
    """Whether the 4 wire bytes ``received`` are the CRC32C of ``data``."""
    return _LE32.unpack(received)[0] == crc32c(data)
