"""Every RFC 7143 PDU as a scapy layer, for dissecting captures and crafting probes.

The model: :class:`ISCSI` is the generic 48-byte BHS; reading bytes through it
dispatches on the opcode to one flat layer per PDU (``ISCSINopOut`` ...
``ISCSIReject``), whose ``fields_desc`` is built from the PDU's field table
(:mod:`harness.iscsi.bhs`, the same table the codec's class is generated from,
so the names are the codec's), followed by the framing every PDU shares: AHS
segments, an optional header digest, the data segment padded to 4 bytes, and an
optional data digest. Lengths are filled in at build time and
CRC32C digests are computed in ``post_build`` only when left ``None``, so a probe
can send a wrong one on purpose.

Digests are not visible in the bytes: a layer learns whether they are present
from the ``with_header_digest``/``with_data_digest`` keywords (the fields
``header_digest``/``data_digest`` hold the values), from the layer below it, or
in a capture from the login the :meth:`ISCSI.tcp_reassemble` hook has seen on the
same TCP session. Several PDUs in one segment dissect as a chain of layers; an
incomplete trailing PDU is left as padding for TCP reassembly, and bytes that
stop inside a PDU dissect as :class:`ISCSITruncated` rather than failing.

This module is for observation and probes; hot paths use the codec.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any, ClassVar

from scapy.config import conf
from scapy.fields import (
    BitEnumField,
    BitField,
    BitFieldLenField,
    ByteEnumField,
    ByteField,
    ConditionalField,
    Field,
    FieldLenField,
    IntField,
    PacketListField,
    PadField,
    ShortField,
    StrField,
    StrFixedLenField,
    StrLenField,
    XBitField,
    XByteField,
    XIntField,
    XLEIntField,
    XLongField,
    XShortField,
)
from scapy.layers.inet import TCP
from scapy.packet import Packet, bind_layers

from harness.iscsi import bhs
from harness.iscsi.bhs import BHS_LENGTH
from harness.iscsi.codes import (
    AhsType,
    Opcode,
)
from harness.iscsi.digest import crc32c_value
from harness.iscsi.errors import ProtocolError
from harness.iscsi.keys import decode_keys

ISCSI_PORT = 3260
_OPCODES = {op.value: op.name for op in Opcode}


def _names(enum: Any) -> dict[int, str]:
    return {member.value: member.name for member in enum}


class AdditionalHeaderSegment(Packet):
    """One AHS: AHSLength, AHSType, a type-specific byte, and the content padded to 4."""

    name = "iSCSI AHS"
    fields_desc: ClassVar[list[Field[Any, Any]]] = [
        FieldLenField("ahs_length", None, fmt="!H", length_of="ahs_data",
                      adjust=lambda pkt, x: x + 1),
        ByteEnumField("ahs_type", AhsType.EXTENDED_CDB, _names(AhsType)),
        XByteField("ahs_specific", 0),
        PadField(StrLenField("ahs_data", b"", length_from=lambda p: max(0, p.ahs_length - 1)),
                 4, padwith=b"\x00"),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


def _wire_length(s: bytes, header_digest: bool, data_digest: bool) -> int | None:
    """Length of the PDU whose BHS starts ``s``, or None when ``s`` has no whole BHS."""
    if len(s) < BHS_LENGTH:
        return None
    lengths = struct.unpack_from(">I", s, 4)[0]
    data_length = lengths & 0xFFFFFF
    total = BHS_LENGTH + (lengths >> 24) * 4 + ((data_length + 3) & ~3)
    total += 4 if header_digest else 0
    total += 4 if data_digest and data_length else 0
    return total


class ISCSITruncated(Packet):
    """Bytes that start an iSCSI PDU but stop before its announced end (a capture cut
    short, a crafted probe); kept as they are instead of inventing the missing part."""

    name = "iSCSI truncated PDU"
    fields_desc: ClassVar[list[Field[Any, Any]]] = [StrField("load", b"")]

    def __init__(self, _pkt: bytes = b"", *args: Any, with_header_digest: bool | None = None,
                 with_data_digest: bool | None = None, **kwargs: Any) -> None:
        super().__init__(_pkt, *args, **kwargs)


def _data_length(pkt: ISCSI) -> int:
    length = pkt.data_segment_length
    return len(pkt.data or b"") if length is None else length


def _framing(opcode: Opcode, byte1: list[Field[Any, Any]], bytes2_3: list[Field[Any, Any]],
             rest: list[Field[Any, Any]], *, immediate: bool = False) -> list[Field[Any, Any]]:
    """A whole PDU: byte 0, the opcode-specific bytes 1-3, the lengths, bytes 8-47,
    then AHS, header digest, padded data and data digest."""
    return [
        BitField("reserved", 0, 1),
        BitField("immediate", int(immediate), 1),
        BitEnumField("opcode", int(opcode), 6, _OPCODES),
        *byte1,
        *bytes2_3,
        FieldLenField("total_ahs_length", None, fmt="B", length_of="ahs",
                      adjust=lambda pkt, x: x // 4),
        BitFieldLenField("data_segment_length", None, 24, length_of="data"),
        *rest,
        PacketListField("ahs", [], AdditionalHeaderSegment,
                        length_from=lambda p: p.total_ahs_length * 4),
        ConditionalField(XLEIntField("header_digest", None),
                         lambda p: p.with_header_digest),
        PadField(StrLenField("data", b"", length_from=lambda p: p.data_segment_length),
                 4, padwith=b"\x00"),
        ConditionalField(XLEIntField("data_digest", None),
                         lambda p: p.with_data_digest and _data_length(p) > 0),
    ]


def _scapy_names(names: Any) -> dict[int, str]:
    return names if isinstance(names, dict) else _names(names)


def _byte1(table: bhs.Bhs) -> list[Field[Any, Any]]:
    """Byte 1 of a table, most significant bit first, reserved bits filled in."""
    by_bit = {f.shift + f.width - 1: f for f in table.flags}
    out: list[Field[Any, Any]] = []
    bit = 7
    gaps = 0
    while bit >= 0:
        f = by_bit.get(bit)
        if f is None:
            width = 1
            while bit - width >= 0 and not any(
                    g.shift <= bit - width <= g.shift + g.width - 1 for g in table.flags):
                width += 1
            out.append(BitField("reserved_flags" if not gaps else f"reserved_flag{bit - width + 1}",
                                0, width))
            gaps += 1
            bit -= width
            continue
        if isinstance(f, bhs.Fixed):
            out.append(BitField(f.name, 1, 1))
        elif isinstance(f, bhs.Flag):
            out.append(BitField(f.name, int(f.default), 1))
        elif f.names is not None:
            out.append(BitEnumField(f.name, int(f.default), f.width, _scapy_names(f.names)))
        else:
            out.append(BitField(f.name, f.default, f.width))
        bit -= f.width
    return out


def _bytes(fields: tuple[bhs.Bytes, ...], offset: int) -> list[Field[Any, Any]]:
    """Scapy fields for a run of table fields starting at byte ``offset``."""
    out: list[Field[Any, Any]] = []
    for f in fields:
        if isinstance(f, bhs.Reserved):
            name = bhs.reserved_name(offset)
            out.append({1: XByteField, 2: XShortField, 4: XIntField}[f.size](name, 0)
                       if f.size in (1, 2, 4) else _reserved(name, f.size))
        elif f.raw:
            out.append(StrFixedLenField(f.name, f.default, f.size))
        elif f.names is not None:
            out.append(ByteEnumField(f.name, f.default, _scapy_names(f.names)))
        elif f.size == 1:
            out.append((XByteField if f.hex else ByteField)(f.name, f.default))
        elif f.size == 2:
            out.append((XShortField if f.hex else ShortField)(f.name, f.default))
        elif f.size == 4:
            out.append((XIntField if f.hex else IntField)(f.name, f.default))
        elif f.size == 8:
            out.append(XLongField(f.name, f.default))
        else:
            out.append(XBitField(f.name, f.default, f.size * 8))
        offset += f.size
    return out


def _layer_fields(table: bhs.Bhs) -> list[Field[Any, Any]]:
    """The whole ``fields_desc`` of a PDU's layer, from its field table."""
    return _framing(table.opcode, _byte1(table), _bytes(table.bytes2_3, 2),
                    _bytes(table.rest, 8), immediate=table.immediate)


def _reserved(name: str, length: int) -> Field[Any, Any]:
    return StrFixedLenField(name, bytes(length), length)


class ISCSI(Packet):
    """The generic BHS: what an unknown opcode dissects as; dispatches known ones."""

    name = "iSCSI"
    match_subclass = True  # packet[ISCSI] finds any PDU layer
    header_digest_default: ClassVar[bool] = False
    data_digest_default: ClassVar[bool] = False
    fields_desc: ClassVar[list[Field[Any, Any]]] = _framing(
        Opcode.NOP_OUT, [XByteField("opcode_specific_1", 0)],
        [XShortField("opcode_specific_2", 0)], [_reserved("opcode_specific_8", 40)])

    def __init__(self, _pkt: bytes = b"", *args: Any, with_header_digest: bool | None = None,
                 with_data_digest: bool | None = None, **kwargs: Any) -> None:
        below = kwargs.get("_underlayer")
        inherit = below if isinstance(below, ISCSI) else None
        if with_header_digest is None:
            with_header_digest = (inherit.with_header_digest if inherit
                                  else self.header_digest_default)
        if with_data_digest is None:
            with_data_digest = inherit.with_data_digest if inherit else self.data_digest_default
        object.__setattr__(self, "with_header_digest", bool(with_header_digest))
        object.__setattr__(self, "with_data_digest", bool(with_data_digest))
        super().__init__(_pkt, *args, **kwargs)

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kwargs: Any) -> type[Packet]:
        if cls is not ISCSI or not _pkt:
            return cls
        below = kwargs.get("_underlayer")
        inherit = below if isinstance(below, ISCSI) else None
        header_digest = kwargs.get("with_header_digest")
        if header_digest is None:
            header_digest = inherit.with_header_digest if inherit else cls.header_digest_default
        data_digest = kwargs.get("with_data_digest")
        if data_digest is None:
            data_digest = inherit.with_data_digest if inherit else cls.data_digest_default
        needed = _wire_length(_pkt, header_digest, data_digest)
        if needed is None or len(_pkt) < needed:
            return ISCSITruncated
        return PDU_LAYERS.get(_pkt[0] & 0x3F, ISCSI)

    def _keep_digests(self, clone: ISCSI) -> ISCSI:
        object.__setattr__(clone, "with_header_digest", self.with_header_digest)
        object.__setattr__(clone, "with_data_digest", self.with_data_digest)
        return clone

    def copy(self) -> ISCSI:
        return self._keep_digests(super().copy())

    def clone_with(self, *args: Any, **kwargs: Any) -> ISCSI:
        return self._keep_digests(super().clone_with(*args, **kwargs))

    def pdu_length(self, s: bytes) -> int | None:
        """Length of the PDU at the start of ``s`` with this layer's digests, or None."""
        return _wire_length(s, self.with_header_digest, self.with_data_digest)

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        """Complete PDUs after this one are its payload; an incomplete tail is padding."""
        whole = 0
        while (length := self.pdu_length(s[whole:])) is not None and whole + length <= len(s):
            whole += length
        return s[:whole], s[whole:]

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        return ISCSI if len(payload) >= BHS_LENGTH else conf.raw_layer

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        header_end = BHS_LENGTH + p[4] * 4
        if self.with_header_digest:
            if self.header_digest is None:
                p = (p[:header_end] + struct.pack("<I", crc32c_value(p[:header_end]))
                     + p[header_end + 4 :])
            header_end += 4
        data_length = int.from_bytes(p[5:8], "big")
        if self.with_data_digest and data_length and self.data_digest is None:
            p = p[:-4] + struct.pack("<I", crc32c_value(p[header_end:-4]))
        return p + pay

    def mysummary(self) -> str:
        return self.sprintf("iSCSI %opcode% itt=%initiator_task_tag%") if hasattr(
            self, "initiator_task_tag") else self.sprintf("iSCSI %opcode%")

    @classmethod
    def tcp_reassemble(cls, data: bytes, metadata: dict[str, Any],
                       session: dict[str, Any]) -> Packet | None:
        """Scapy ``TCPSession`` hook: one whole PDU at a time, digests as negotiated."""
        header_digest = session.get("iscsi_header_digest", False)
        data_digest = session.get("iscsi_data_digest", False)
        probe = ISCSI(with_header_digest=header_digest, with_data_digest=data_digest)
        length = probe.pdu_length(data)
        if length is None or len(data) < length:
            metadata["tcp_min_len"] = length or BHS_LENGTH
            return None
        pdu = ISCSI(data[:length], with_header_digest=header_digest,
                    with_data_digest=data_digest)
        _observe_login(pdu, session)
        if len(data) > length:
            pdu.add_payload(conf.padding_layer(data[length:]))
        return pdu


def _observe_login(pdu: Packet, session: dict[str, Any]) -> None:
    """Follow login text on a TCP session; after the final successful Login Response
    switch the session to the negotiated digests."""
    if not isinstance(pdu, ISCSILoginRequest | ISCSILoginResponse):
        return
    buffers = session.setdefault("iscsi_text", {})
    text = buffers.get(pdu.opcode, b"") + bytes(pdu.data or b"")
    if pdu.continue_:
        buffers[pdu.opcode] = text
        return
    buffers.pop(pdu.opcode, None)
    keys = session.setdefault("iscsi_keys", {})
    with contextlib.suppress(ProtocolError):  # malformed text must not stop dissection
        keys.update(decode_keys(text))
    if (isinstance(pdu, ISCSILoginResponse) and pdu.transit and pdu.nsg == 3
            and pdu.status_class == 0):
        session["iscsi_header_digest"] = keys.get("HeaderDigest") == "CRC32C"
        session["iscsi_data_digest"] = keys.get("DataDigest") == "CRC32C"


# --------------------------------------------------------------------- the PDU layers
# Every layer is made from its field table (harness.iscsi.bhs): its class name,
# name and fields; only behaviour is written here.


class TextPdu(ISCSI):
    """Login and Text PDUs: the data segment is ``key=value`` text."""

    def text_keys(self) -> list[tuple[str, str]]:
        """The key-value pairs of this PDU's data segment (one PDU's worth; use a
        :class:`harness.iscsi.keys.TextAssembler` when the C bit is set)."""
        data = bytes(self.data or b"")
        return decode_keys(data) if not self.continue_ else decode_keys(
            data[: data.rfind(b"\x00") + 1])


def _layer_class(table: bhs.Bhs, base: type[ISCSI] = ISCSI,
                 **extra: Any) -> type[ISCSI]:
    """The scapy layer of one PDU, ``ISCSI<name>``, from its field table."""
    name = f"ISCSI{table.name}"
    return type(name, (base,), {"name": f"iSCSI {table.title}", "__doc__": table.doc,
                                "fields_desc": _layer_fields(table), "__module__": __name__,
                                "__qualname__": name, **extra})


def _whole_cdb(self: ISCSI) -> bytes:
    """The CDB including the bytes carried in an Extended CDB AHS."""
    extension = b"".join(bytes(segment.ahs_data) for segment in self.ahs
                         if segment.ahs_type == AhsType.EXTENDED_CDB)
    return bytes(self.cdb) + extension


ISCSIScsiCommand = _layer_class(bhs.SCSI_COMMAND, whole_cdb=property(_whole_cdb))
ISCSILoginRequest, ISCSITextRequest, ISCSILoginResponse, ISCSITextResponse = (
    _layer_class(t, TextPdu) for t in (bhs.LOGIN_REQUEST, bhs.TEXT_REQUEST, bhs.LOGIN_RESPONSE,
                                       bhs.TEXT_RESPONSE))
(ISCSINopOut, ISCSITaskManagementRequest, ISCSIDataOut, ISCSILogoutRequest, ISCSISnack,
 ISCSINopIn, ISCSIScsiResponse, ISCSITaskManagementResponse, ISCSIDataIn, ISCSILogoutResponse,
 ISCSIR2T, ISCSIAsyncMessage, ISCSIReject) = (
    _layer_class(t) for t in (
        bhs.NOP_OUT, bhs.TASK_MANAGEMENT_REQUEST, bhs.DATA_OUT, bhs.LOGOUT_REQUEST, bhs.SNACK,
        bhs.NOP_IN, bhs.SCSI_RESPONSE, bhs.TASK_MANAGEMENT_RESPONSE, bhs.DATA_IN,
        bhs.LOGOUT_RESPONSE, bhs.R2T, bhs.ASYNC_MESSAGE, bhs.REJECT))


PDU_LAYERS: dict[int, type[ISCSI]] = {
    int(layer.fields_desc[2].default): layer
    for layer in (ISCSINopOut, ISCSIScsiCommand, ISCSITaskManagementRequest, ISCSILoginRequest,
                  ISCSITextRequest, ISCSIDataOut, ISCSILogoutRequest, ISCSISnack, ISCSINopIn,
                  ISCSIScsiResponse, ISCSITaskManagementResponse, ISCSILoginResponse,
                  ISCSITextResponse, ISCSIDataIn, ISCSILogoutResponse, ISCSIR2T,
                  ISCSIAsyncMessage, ISCSIReject)
}
"""Opcode -> scapy layer."""


def iter_pdus(packet: Packet) -> list[ISCSI]:
    """Every iSCSI PDU layer in ``packet`` (several PDUs may share one segment)."""
    found = []
    layer = packet.getlayer(ISCSI)
    while isinstance(layer, ISCSI):
        found.append(layer)
        layer = layer.payload
    return found


def bind_port(port: int) -> None:
    """Dissect TCP traffic to or from ``port`` as iSCSI (3260 is bound already)."""
    bind_layers(TCP, ISCSI, dport=port)
    bind_layers(TCP, ISCSI, sport=port)


bind_port(ISCSI_PORT)
