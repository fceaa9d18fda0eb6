"""The base of the RFC 7143 PDU classes and the AHS helpers they share.

There is one ``__slots__`` class per opcode (:mod:`harness.iscsi.initiator_pdus`,
:mod:`harness.iscsi.target_pdus`). Each class knows its own 48-byte Basic Header
Segment: a ``struct.Struct`` compiled once per opcode packs and unpacks the whole
BHS in one call, flag bits included, so no per-field Python loop runs on the hot
path. The framing around
the BHS (AHS, padding, digests, lengths) is :mod:`harness.iscsi.codec`'s job.

Field names are RFC 7143's in snake_case. Every PDU has ``opcode``, ``immediate``,
``initiator_task_tag``, ``ahs`` (the raw Additional Header Segments, bytes) and
``data`` (the data segment, unpadded). Reserved bits and bytes are sent as zero
and ignored when received; bits the RFC fixes to 1 (the F bit of most PDUs) are
set on encode. ``continue_`` is the C bit of Login and Text PDUs.
"""

from __future__ import annotations

from struct import Struct
from typing import ClassVar

from harness.iscsi.codes import AhsType, Opcode
from harness.iscsi.errors import ProtocolError

BHS_LENGTH = 48
CDB_IN_BHS = 16
NO_TAG = 0xFFFFFFFF

_AHS_HEADER = Struct(">HBB")
_BIDI_AHS = Struct(">HBBI")


class Pdu:
    """Base of every PDU: the fields common to all BHS layouts."""

    __slots__ = ("ahs", "data", "immediate", "initiator_task_tag")
    opcode: ClassVar[Opcode]
    fields: ClassVar[tuple[str, ...]] = ()
    _struct: ClassVar[Struct]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            names.extend(klass.__dict__.get("__slots__", ()))
        cls.fields = tuple(names)

    def __init__(
        self, *, immediate: bool, initiator_task_tag: int, ahs: bytes, data: bytes
    ) -> None:
        self.immediate = immediate
        self.initiator_task_tag = initiator_task_tag
        self.ahs = ahs
        self.data = data

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.fields)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        shown = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.fields)
        return f"{type(self).__name__}({shown})"

    def _byte0(self) -> int:
        return (0x40 | self.opcode) if self.immediate else self.opcode

    def wire_ahs(self) -> bytes:
        """The AHS bytes to send (a subclass may derive them from its fields)."""
        return self.ahs

    def pack_bhs(self, lengths: int) -> bytes:
        """The 48-byte BHS; ``lengths`` is bytes 4-7 (TotalAHSLength, DataSegmentLength)."""
        raise NotImplementedError

    @classmethod
    def unpack(cls, bhs: bytes | memoryview, ahs: bytes, data: bytes) -> Pdu:
        """The PDU whose BHS, AHS and (unpadded) data segment are given."""
        raise NotImplementedError


def _new(cls: type[Pdu], immediate: bool, ahs: bytes, data: bytes) -> Pdu:
    self = object.__new__(cls)
    self.immediate = immediate
    self.ahs = ahs
    self.data = data
    return self


def iter_ahs(ahs: bytes) -> list[tuple[int, bytes]]:
    """Split AHS bytes into (AHSType, AHS-specific byte + content) pairs, padding dropped."""
    segments: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(ahs):
        if len(ahs) - offset < _AHS_HEADER.size:
            raise ProtocolError(
                f"AHS of {len(ahs)} bytes ends inside a segment header at offset {offset}; "
                "the PDU's TotalAHSLength is wrong"
            )
        length, ahs_type, _ = _AHS_HEADER.unpack_from(ahs, offset)
        end = offset + 3 + length
        if length == 0 or end > len(ahs):
            raise ProtocolError(
                f"AHS segment at offset {offset} claims AHSLength {length}, which does not "
                f"fit the {len(ahs)}-byte AHS; the PDU is malformed"
            )
        segments.append((ahs_type, ahs[offset + 3 : end]))
        offset = end + (-(3 + length) & 3)
    return segments


def extended_cdb_ahs(extension: bytes) -> bytes:
    """An Extended CDB AHS carrying the CDB bytes beyond the first 16."""
    body = b"\x00" + extension
    return _AHS_HEADER.pack(len(body), AhsType.EXTENDED_CDB, 0)[:3] + body + bytes(
        -(3 + len(body)) & 3
    )


def bidirectional_read_length_ahs(length: int) -> bytes:
    """An Expected Bidirectional Read Data Length AHS."""
    return _BIDI_AHS.pack(5, AhsType.BIDIRECTIONAL_READ_LENGTH, 0, length)
