"""The base of the RFC 7143 PDU classes, the code generated from their field tables,
and the AHS helpers they share.

There is one ``__slots__`` class per opcode (:mod:`harness.iscsi.initiator_pdus`,
:mod:`harness.iscsi.target_pdus`), made from its field table
(:mod:`harness.iscsi.bhs`, kept as ``layout``) by :func:`pdu_classes`, which
takes the class's name and docstring from the table too. When the class is
created, its
``__init__``, ``pack_bhs`` and ``unpack`` are generated from that table as
straight-line code over one ``struct.Struct`` compiled for the opcode, which
packs and unpacks the whole 48-byte BHS in one call, flag bits included: no
per-field Python loop runs on the hot path, and no field name is written twice.
The framing around the BHS (AHS, padding, digests, lengths) is
:mod:`harness.iscsi.codec`'s job.

Field names are RFC 7143's in snake_case. Every PDU has ``opcode``, ``immediate``,
``initiator_task_tag``, ``ahs`` (the raw Additional Header Segments, bytes) and
``data`` (the data segment, unpadded). Reserved bits and bytes are sent as zero
and ignored when received; bits the RFC fixes to 1 (the F bit of most PDUs) are
set on encode. ``continue_`` is the C bit of Login and Text PDUs.
"""

from __future__ import annotations

from struct import Struct
from typing import Any, ClassVar

from harness.iscsi.bhs import BHS_LENGTH, NO_TAG, Bhs, Bits, Field, Fixed, Flag, Reserved
from harness.iscsi.codes import AhsType, Opcode
from harness.iscsi.errors import ProtocolError

CDB_IN_BHS = 16
__all__ = ["BHS_LENGTH", "CDB_IN_BHS", "NO_TAG", "Pdu"]

_AHS_HEADER = Struct(">HBB")
_BIDI_AHS = Struct(">HBBI")


class Pdu:
    """Base of every PDU: the fields common to all BHS layouts."""

    __slots__ = ("ahs", "data", "immediate", "initiator_task_tag")
    opcode: ClassVar[Opcode]
    layout: ClassVar[Bhs]
    fields: ClassVar[tuple[str, ...]] = ()
    _struct: ClassVar[Struct]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            names.extend(klass.__dict__.get("__slots__", ()))
        cls.fields = tuple(names)
        if "layout" in cls.__dict__:
            _generate(cls, cls.layout)

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


_STRUCT_CODES = {1: "B", 2: "H", 4: "I", 6: "HI", 8: "Q"}


def pdu_classes(module: str, *tables: Bhs) -> tuple[type[Pdu], ...]:
    """One class per table, named and documented by its table, for ``module``."""
    return tuple(
        type(t.name, (Pdu,), {"__slots__": t.slots, "layout": t, "__doc__": t.doc,
                              "__module__": module, "__qualname__": t.name})
        for t in tables)


def _generate(cls: type[Pdu], layout: Bhs) -> None:
    """Give ``cls`` the ``__init__``, ``pack_bhs`` and ``unpack`` its table describes.

    The code is generated as source and compiled once, so each method is the
    straight-line code one would write by hand for this opcode.
    """
    if cls.__dict__.get("__slots__") != layout.slots:
        raise TypeError(f"{cls.__name__}.__slots__ must be {layout.title}'s layout.slots")
    opcode = int(layout.opcode)
    fmt = [">BB"]
    b1_parts: list[str] = []
    fixed = 0
    b1_unpack: list[str] = []
    for f in layout.flags:
        mask = (1 << f.width) - 1
        if isinstance(f, Fixed):
            fixed |= 1 << f.bit
        elif isinstance(f, Flag):
            b1_parts.append(f"(self.{f.name} << {f.bit})" if f.bit else f"self.{f.name}")
            b1_unpack.append(f"self.{f.name} = bool(b1 & {1 << f.bit:#x})")
        else:
            assert isinstance(f, Bits)
            shifted = f"(self.{f.name} & {mask:#x})"
            b1_parts.append(f"({shifted} << {f.shift})" if f.shift else shifted)
            b1_unpack.append(f"self.{f.name} = (b1 >> {f.shift}) & {mask:#x}" if f.shift
                             else f"self.{f.name} = b1 & {mask:#x}")
    if fixed:
        b1_parts.insert(0, f"{fixed:#x}")
    pack_args = [f"({opcode | 0x40:#x} if self.immediate else {opcode:#x})",
                 " | ".join(b1_parts) or "0"]
    unpack_names = ["b0", "b1" if b1_unpack else "_"]
    unpack_sets: list[str] = []
    for part in (layout.bytes2_3, (None,), layout.rest):
        for f in part:
            if f is None:  # bytes 4-7: TotalAHSLength and DataSegmentLength
                fmt.append("I")
                pack_args.append("lengths")
                unpack_names.append("_")
            elif isinstance(f, Reserved):
                fmt.append(f"{f.size}x")
            elif f.raw:
                fmt.append(f"{f.size}s")
                pack_args.append(f"self.{f.name}")
                unpack_names.append(f"self.{f.name}")
            elif f.size == 6:  # a 48-bit field (the ISID): 16 + 32 bits
                fmt.append("HI")
                pack_args += [f"self.{f.name} >> 32", f"self.{f.name} & 0xFFFFFFFF"]
                unpack_names += [f"{f.name}_hi", f"{f.name}_lo"]
                unpack_sets.append(f"self.{f.name} = ({f.name}_hi << 32) | {f.name}_lo")
            else:
                fmt.append(_STRUCT_CODES[f.size])
                pack_args.append(f"self.{f.name}")
                unpack_names.append(f"self.{f.name}")
    struct = Struct("".join(fmt))
    if struct.size != BHS_LENGTH:
        raise TypeError(f"{layout.title}: the table packs {struct.size} bytes, not 48")
    table_fields = layout.fields
    namespace: dict[str, Any] = {"_pack": struct.pack, "_unpack_from": struct.unpack_from,
                                 "_new": object.__new__}
    params = [f"immediate={layout.immediate!r}"]
    body = ["self.immediate = immediate", "self.ahs = ahs", "self.data = data"]
    for f in table_fields:
        namespace[f"_d_{f.name}"] = f.default
        params.append(f"{f.name}=_d_{f.name}")
        if isinstance(f, Field) and f.raw:
            body.append(f"self.{f.name} = {f.name} if len({f.name}) >= {f.size} "
                        f"else {f.name}.ljust({f.size}, b'\\x00')")
        else:
            body.append(f"self.{f.name} = {f.name}")
    extras = []
    for name, default in layout.extras:
        namespace[f"_d_{name}"] = default
        params.append(f"{name}=_d_{name}")
        body.append(f"self.{name} = {name}")
        extras.append(f"self.{name} = _d_{name}")
    params += ["ahs=b''", "data=b''"]
    after_ahs = ["if ahs:", "    self._unpack_ahs(ahs)"] if hasattr(cls, "_unpack_ahs") else []
    source = "\n".join([
        f"def __init__(self, *, {', '.join(params)}):",
        *(f"    {line}" for line in body),
        "",
        "def pack_bhs(self, lengths):",
        f"    return _pack({', '.join(pack_args)})",
        "",
        "def unpack(cls, bhs, ahs, data):",
        "    self = _new(cls)",
        f"    ({', '.join(unpack_names)}) = _unpack_from(bhs)",
        "    self.immediate = bool(b0 & 0x40)",
        "    self.ahs = ahs",
        "    self.data = data",
        *(f"    {line}" for line in (*b1_unpack, *unpack_sets, *extras, *after_ahs)),
        "    return self",
    ])
    exec(compile(source, f"<bhs table {layout.title}>", "exec"), namespace)
    for name in ("__init__", "pack_bhs", "unpack"):
        namespace[name].__qualname__ = f"{cls.__name__}.{name}"
    cls.opcode = layout.opcode
    cls._struct = struct
    cls.__init__ = namespace["__init__"]  # type: ignore[method-assign]
    cls.pack_bhs = namespace["pack_bhs"]  # type: ignore[method-assign]
    cls.unpack = classmethod(namespace["unpack"])  # type: ignore[method-assign,assignment]


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
