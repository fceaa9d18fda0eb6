"""The fast iSCSI codec: whole PDUs to bytes and back, and PDUs off an asyncio stream.

This is what the initiator and the target use on every hot path; the scapy
layers in :mod:`harness.iscsi.layers` describe the same bytes for dissection and
crafted probes, and property tests hold the two to byte-for-byte agreement.

A PDU on the wire (RFC 7143 section 11.2) is::

    BHS (48) | AHS (4 * TotalAHSLength) | HeaderDigest (4, optional)
    | DataSegment (DataSegmentLength) | padding to 4 | DataDigest (4, optional, only if data)

The digests are CRC32C (:mod:`harness.iscsi.digest`); whether they are present is
negotiated at login, so every function here takes ``header_digest`` and
``data_digest``. Everything a peer can get wrong raises a
:class:`~harness.iscsi.errors.ProtocolError` subclass.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Final

from crc32c import crc32c

from harness.iscsi.codes import Opcode
from harness.iscsi.errors import (
    ConnectionClosed,
    DigestError,
    PduTooLarge,
    ProtocolError,
    TruncatedPdu,
    UnknownOpcode,
)
from harness.iscsi.initiator_pdus import (
    DataOut,
    LoginRequest,
    LogoutRequest,
    NopOut,
    ScsiCommand,
    Snack,
    TaskManagementRequest,
    TextRequest,
)
from harness.iscsi.pdu import BHS_LENGTH, NO_TAG, Pdu
from harness.iscsi.target_pdus import (
    R2T,
    AsyncMessage,
    DataIn,
    LoginResponse,
    LogoutResponse,
    NopIn,
    Reject,
    ScsiResponse,
    TaskManagementResponse,
    TextResponse,
)

__all__ = [
    "BHS_LENGTH",
    "MAX_DATA_SEGMENT_LENGTH",
    "NO_TAG",
    "PDU_CLASSES",
    "R2T",
    "AsyncMessage",
    "DataIn",
    "DataOut",
    "LoginRequest",
    "LoginResponse",
    "LogoutRequest",
    "LogoutResponse",
    "NopIn",
    "NopOut",
    "Opcode",
    "Pdu",
    "Reject",
    "ScsiCommand",
    "ScsiResponse",
    "Snack",
    "TaskManagementRequest",
    "TaskManagementResponse",
    "TextRequest",
    "TextResponse",
    "decode",
    "encode",
    "lun_from_wire",
    "lun_to_wire",
    "pdu_length",
    "read_pdu",
]

MAX_DATA_SEGMENT_LENGTH: Final = (1 << 24) - 1
MAX_AHS_LENGTH: Final = 255 * 4

PDU_CLASSES: Final[dict[int, type[Pdu]]] = {
    cls.opcode: cls
    for cls in (NopOut, ScsiCommand, TaskManagementRequest, LoginRequest, TextRequest, DataOut,
                LogoutRequest, Snack, NopIn, ScsiResponse, TaskManagementResponse,
                LoginResponse, TextResponse, DataIn, LogoutResponse, R2T, AsyncMessage, Reject)
}
"""Opcode -> PDU class."""

_PAD: Final = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")  # indexed by length & 3
_LENGTHS = struct.Struct(">I")
_LE32 = struct.Struct("<I")


def encode(pdu: Pdu, *, header_digest: bool = False, data_digest: bool = False) -> bytes:
    """The wire bytes of ``pdu``: lengths filled in, data padded, digests appended."""
    data = pdu.data
    length = len(data)
    ahs = pdu.wire_ahs()
    if length > MAX_DATA_SEGMENT_LENGTH or len(ahs) > MAX_AHS_LENGTH or len(ahs) & 3:
        raise ProtocolError(
            f"cannot encode {type(pdu).__name__}: data segment of {length} bytes (max "
            f"{MAX_DATA_SEGMENT_LENGTH}) or AHS of {len(ahs)} bytes (a multiple of 4, max "
            f"{MAX_AHS_LENGTH}); fix the PDU"
        )
    try:
        header = pdu.pack_bhs((len(ahs) << 22) | length)
    except (struct.error, TypeError) as error:
        raise ProtocolError(
            f"cannot encode {type(pdu).__name__}: a field is out of range ({error}); "
            "fix the field values"
        ) from None
    if ahs:
        header += ahs
    if not length:
        return header + _LE32.pack(crc32c(header)) if header_digest else header
    parts = [header]
    if header_digest:
        parts.append(_LE32.pack(crc32c(header)))
    parts.append(data)
    pad = _PAD[length & 3]
    if pad:
        parts.append(pad)
    if data_digest:
        crc = crc32c(data)
        parts.append(_LE32.pack(crc32c(pad, crc) if pad else crc))
    return b"".join(parts)


def pdu_length(bhs: bytes | memoryview, *, header_digest: bool = False,
               data_digest: bool = False) -> int:
    """Total length of the PDU whose BHS (at least the first 8 bytes) is ``bhs``."""
    lengths = _LENGTHS.unpack_from(bhs, 4)[0]
    data_length = lengths & 0xFFFFFF
    total = BHS_LENGTH + ((lengths >> 22) & 0x3FC) + ((data_length + 3) & ~3)
    if header_digest:
        total += 4
    if data_digest and data_length:
        total += 4
    return total


def decode(buf: bytes | bytearray | memoryview, *, header_digest: bool = False,
           data_digest: bool = False) -> Pdu:
    """The PDU in ``buf``, which must hold exactly one whole PDU."""
    if len(buf) < BHS_LENGTH:
        raise TruncatedPdu(
            f"buffer of {len(buf)} bytes is shorter than a 48-byte iSCSI BHS; "
            "pass one whole PDU"
        )
    lengths = _LENGTHS.unpack_from(buf, 4)[0]
    if not (lengths & 0xFF000000 or header_digest or data_digest):
        # Fast path: no AHS, no digests; the common case on a hot path.
        data_length = lengths & 0xFFFFFF
        cls = PDU_CLASSES.get(buf[0] & 0x3F)
        if cls is not None and len(buf) == BHS_LENGTH + ((data_length + 3) & ~3):
            return cls.unpack(buf, b"", bytes(buf[BHS_LENGTH : BHS_LENGTH + data_length]))
    expected = pdu_length(buf, header_digest=header_digest, data_digest=data_digest)
    if len(buf) != expected:
        bhs = bytes(buf[:BHS_LENGTH])
        kind = TruncatedPdu if len(buf) < expected else ProtocolError
        raise kind(
            f"buffer of {len(buf)} bytes does not hold exactly the {expected}-byte PDU its "
            f"BHS announces (opcode 0x{buf[0] & 0x3F:02x}); check the digest settings",
            bhs=bhs,
        )
    mv = memoryview(buf)
    return _decode_parts(bytes(mv[:BHS_LENGTH]), mv[BHS_LENGTH:], header_digest, data_digest)


def _decode_parts(bhs: bytes, tail: bytes | memoryview, header_digest: bool,
                  data_digest: bool) -> Pdu:
    """Decode a PDU given its BHS and the rest of it, whose length is already right."""
    lengths = _LENGTHS.unpack_from(bhs, 4)[0]
    data_length = lengths & 0xFFFFFF
    ahs_length = (lengths >> 22) & 0x3FC
    offset = ahs_length
    if header_digest:
        header_crc = crc32c(bhs)
        if ahs_length:
            header_crc = crc32c(tail[:ahs_length], header_crc)
        if _LE32.unpack_from(tail, offset)[0] != header_crc:
            raise DigestError(
                f"header digest mismatch on a PDU with opcode 0x{bhs[0] & 0x3F:02x}; the "
                "header was corrupted in flight or the peer did not negotiate HeaderDigest",
                bhs=bhs, header=True,
            )
        offset += 4
    cls = PDU_CLASSES.get(bhs[0] & 0x3F)
    if cls is None:
        raise UnknownOpcode(bhs[0] & 0x3F, bhs=bhs)
    if data_length:
        padded = (data_length + 3) & ~3
        if data_digest:
            segment = tail[offset : offset + padded]
            if _LE32.unpack_from(tail, offset + padded)[0] != crc32c(segment):
                raise DigestError(
                    f"data digest mismatch on a {cls.__name__} with a {data_length}-byte "
                    "data segment; the data was corrupted in flight (answer with a Reject, "
                    "reason data digest error)",
                    bhs=bhs, header=False,
                )
        if offset == 0 and data_length == len(tail) and isinstance(tail, bytes):
            data = tail
        else:
            data = bytes(tail[offset : offset + data_length])
    else:
        data = b""
    ahs = bytes(tail[:ahs_length]) if ahs_length else b""
    try:
        return cls.unpack(bhs, ahs, data)
    except ProtocolError as error:
        error.bhs = bhs
        raise


async def read_pdu(reader: asyncio.StreamReader, *, header_digest: bool = False,
                   data_digest: bool = False, max_data_segment_length: int) -> Pdu:
    """Read exactly one PDU from ``reader``.

    The announced DataSegmentLength is checked against ``max_data_segment_length``
    (our MaxRecvDataSegmentLength) before the segment is read. An unknown opcode is
    raised only after the whole PDU is consumed, so the stream stays in step and a
    target can answer with a Reject quoting ``error.bhs``.
    """
    try:
        bhs = await reader.readexactly(BHS_LENGTH)
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            raise ConnectionClosed(
                "iSCSI peer closed the connection between PDUs; the session is gone "
                "(log in again)"
            ) from None
        raise TruncatedPdu(
            f"iSCSI connection ended {len(error.partial)} bytes into a 48-byte PDU header; "
            "the peer dropped the connection mid-PDU"
        ) from None
    except ConnectionError as error:
        raise ConnectionClosed(
            f"iSCSI connection failed while waiting for a PDU ({error}); log in again"
        ) from None
    data_length = _LENGTHS.unpack_from(bhs, 4)[0] & 0xFFFFFF
    if data_length > max_data_segment_length:
        raise PduTooLarge(data_length, max_data_segment_length, bhs=bhs)
    rest = pdu_length(bhs, header_digest=header_digest, data_digest=data_digest) - BHS_LENGTH
    tail = b""
    if rest:
        try:
            tail = await reader.readexactly(rest)
        except asyncio.IncompleteReadError as error:
            raise TruncatedPdu(
                f"iSCSI connection ended {len(error.partial)} of {rest} bytes into the body "
                f"of a PDU with opcode 0x{bhs[0] & 0x3F:02x}; the peer dropped the connection",
                bhs=bhs,
            ) from None
        except ConnectionError as error:
            raise ConnectionClosed(
                f"iSCSI connection failed inside a PDU ({error}); log in again"
            ) from None
    return _decode_parts(bhs, tail, header_digest, data_digest)


def lun_to_wire(lun: int) -> int:
    """The 8-byte LUN field (as an integer) for LUN number ``lun`` (SAM-5 addressing:
    peripheral device for LUNs below 256, flat space up to 16383)."""
    if 0 <= lun < 256:
        return lun << 48
    if lun < 0x4000:
        return (0x4000 | lun) << 48
    raise ProtocolError(f"LUN {lun} is beyond the 14-bit flat address space; use 0..16383")


def lun_from_wire(field: int) -> int:
    """The LUN number addressed by the 8-byte LUN field ``field`` (inverse of lun_to_wire)."""
    return (field >> 48) & 0x3FFF
