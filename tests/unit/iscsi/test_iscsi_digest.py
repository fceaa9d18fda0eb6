"""CRC32C digests: the RFC 3720 appendix B.4 vectors, the wire byte order, and
agreement with an independent bit-by-bit implementation."""

from __future__ import annotations

import random

import pytest

from harness.iscsi.digest import crc32c_digest, crc32c_value, digest_matches


def reference_crc32c(data: bytes) -> int:
    """Castagnoli CRC, reflected polynomial 0x82F63B78, one bit at a time."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


RFC_VECTORS = [
    pytest.param(bytes(32), "aa36918a", id="32-zero-bytes"),
    pytest.param(b"\xff" * 32, "43aba862", id="32-ones-bytes"),
    pytest.param(bytes(range(32)), "4e79dd46", id="incrementing"),
    pytest.param(bytes(range(31, -1, -1)), "5cdb3f11", id="decrementing"),
    pytest.param(
        bytes.fromhex(
            "01c00000 00000000 00000000 00000000 14000000 00000400 00000014 00000018"
            "28000000 00000000 02000000 00000000"
        ),
        "563a96d9",
        id="iscsi-read-command",
    ),
]


@pytest.mark.parametrize(("data", "wire"), RFC_VECTORS)
def test_rfc_vectors_on_the_wire(data: bytes, wire: str) -> None:
    assert crc32c_digest(data).hex() == wire
    assert crc32c_value(data) == int.from_bytes(bytes.fromhex(wire), "little")
    assert reference_crc32c(data) == crc32c_value(data)


def test_agrees_with_the_reference_on_random_buffers() -> None:
    rng = random.Random(7143)
    for length in (0, 1, 3, 4, 5, 47, 48, 511, 4096):
        data = rng.randbytes(length)
        assert crc32c_value(data) == reference_crc32c(data)


def test_digest_matches_detects_a_flipped_bit() -> None:
    data = bytearray(b"iSCSI data segment")
    digest = crc32c_digest(data)
    assert digest_matches(data, digest)
    data[3] ^= 0x10
    assert not digest_matches(data, digest)
