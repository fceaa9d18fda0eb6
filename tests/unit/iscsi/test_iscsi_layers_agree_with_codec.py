"""Property tests: the scapy layers and the fast codec agree byte for byte.

For random PDUs of every opcode, with and without digests: ``codec.encode`` equals
``bytes()`` of the scapy layer built from the same field values, scapy dissects the
codec's bytes to the same field values, and the codec decodes scapy's bytes to
the same PDU.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.iscsi import codec, layers
from harness.iscsi.errors import DigestError

BOOLEAN_FIELDS = {"immediate", "final", "read", "write", "transit", "continue_",
                  "residual_overflow", "residual_underflow", "bidirectional_overflow",
                  "bidirectional_underflow", "acknowledge", "status_present"}
FIELD_BITS = {
    "attr": 3, "function": 7, "reason_code": 7, "type": 4, "csg": 2, "nsg": 2,
    "version_max": 8, "version_min": 8, "version_active": 8, "response": 8, "status": 8,
    "status_class": 8, "status_detail": 8, "async_event": 8, "async_vcode": 8, "reason": 8,
    "tsih": 16, "cid": 16, "time2wait": 16, "time2retain": 16, "parameter1": 16,
    "parameter2": 16, "parameter3": 16, "isid": 48, "lun": 64,
}
FRAMING = {"ahs", "data", "expected_bidirectional_read_data_length"}


def field_strategy(name: str) -> st.SearchStrategy[object]:
    if name in BOOLEAN_FIELDS:
        return st.booleans()
    if name == "cdb":
        return st.binary(min_size=16, max_size=16)
    return st.integers(0, (1 << FIELD_BITS.get(name, 32)) - 1)


# An AHS segment of a type the codec keeps verbatim: (type, specific byte, content).
ahs_segments = st.lists(
    st.tuples(st.integers(3, 255), st.integers(0, 255), st.binary(max_size=11)), max_size=3)


@st.composite
def pdus(draw: st.DrawFn) -> tuple[codec.Pdu, list[tuple[int, int, bytes]]]:
    cls = draw(st.sampled_from(sorted(codec.PDU_CLASSES.values(), key=lambda c: c.opcode)))
    values = {name: draw(field_strategy(name)) for name in cls.fields if name not in FRAMING}
    segments = draw(ahs_segments)
    raw_ahs = b"".join(
        struct.pack(">HBB", len(content) + 1, kind, specific) + content
        + bytes(-(4 + len(content)) & 3)
        for kind, specific, content in segments)
    pdu = cls(ahs=raw_ahs, data=draw(st.binary(max_size=300)), **values)
    return pdu, segments


def scapy_layer(pdu: codec.Pdu, segments: list[tuple[int, int, bytes]], *, header_digest: bool,
                data_digest: bool) -> layers.ISCSI:
    layer_class = layers.PDU_LAYERS[pdu.opcode]
    values = {name: int(getattr(pdu, name)) if name in BOOLEAN_FIELDS else getattr(pdu, name)
              for name in pdu.fields if name not in FRAMING}
    ahs = [layers.AdditionalHeaderSegment(ahs_type=kind, ahs_specific=specific, ahs_data=content)
           for kind, specific, content in segments]
    return layer_class(with_header_digest=header_digest, with_data_digest=data_digest,
                       ahs=ahs, data=pdu.data, **values)


def assert_same_fields(layer: layers.ISCSI, pdu: codec.Pdu) -> None:
    assert type(layer) is layers.PDU_LAYERS[pdu.opcode]
    for name in pdu.fields:
        if name in FRAMING:
            continue
        expected = getattr(pdu, name)
        assert getattr(layer, name) == (int(expected) if name in BOOLEAN_FIELDS else expected), name
    assert (layer.data or b"") == pdu.data
    assert b"".join(bytes(segment) for segment in layer.ahs) == pdu.ahs


digest_modes = st.tuples(st.booleans(), st.booleans())


@settings(max_examples=400, deadline=None)
@given(generated=pdus(), digests=digest_modes)
def test_codec_and_scapy_build_the_same_bytes(
        generated: tuple[codec.Pdu, list[tuple[int, int, bytes]]],
        digests: tuple[bool, bool]) -> None:
    pdu, segments = generated
    header_digest, data_digest = digests
    wire = codec.encode(pdu, header_digest=header_digest, data_digest=data_digest)
    layer = scapy_layer(pdu, segments, header_digest=header_digest, data_digest=data_digest)
    assert bytes(layer) == wire


@settings(max_examples=400, deadline=None)
@given(generated=pdus(), digests=digest_modes)
def test_each_side_decodes_the_others_bytes(
        generated: tuple[codec.Pdu, list[tuple[int, int, bytes]]],
        digests: tuple[bool, bool]) -> None:
    pdu, segments = generated
    header_digest, data_digest = digests
    wire = codec.encode(pdu, header_digest=header_digest, data_digest=data_digest)
    dissected = layers.ISCSI(wire, with_header_digest=header_digest,
                             with_data_digest=data_digest)
    assert_same_fields(dissected, pdu)
    assert dissected.payload.name == "NoPayload"
    built = bytes(scapy_layer(pdu, segments, header_digest=header_digest,
                              data_digest=data_digest))
    assert codec.decode(built, header_digest=header_digest, data_digest=data_digest) == pdu


def test_extended_cdb_and_bidirectional_ahs_agree() -> None:
    cdb = bytes(range(0x80, 0xA0))
    pdu = codec.ScsiCommand(read=True, write=True, cdb=cdb,
                            expected_bidirectional_read_data_length=4096, data=b"\x01\x02")
    layer = layers.ISCSIScsiCommand(read=1, write=1, cdb=cdb[:16], data=b"\x01\x02", ahs=[
        layers.AdditionalHeaderSegment(ahs_type=1, ahs_data=cdb[16:]),
        layers.AdditionalHeaderSegment(ahs_type=2, ahs_data=(4096).to_bytes(4, "big"))])
    assert bytes(layer) == codec.encode(pdu)
    dissected = layers.ISCSI(codec.encode(pdu))
    assert [a.ahs_type for a in dissected.ahs] == [1, 2]
    assert [a.ahs_length for a in dissected.ahs] == [17, 5]
    assert dissected.ahs[0].ahs_data == cdb[16:]


def test_a_wrong_digest_set_on_purpose_survives_and_is_caught() -> None:
    layer = layers.ISCSIDataOut(with_header_digest=True, with_data_digest=True,
                                header_digest=0xDEADBEEF, data=b"abcd")
    wire = bytes(layer)
    assert wire[48:52] == struct.pack("<I", 0xDEADBEEF)
    with pytest.raises(DigestError):
        codec.decode(wire, header_digest=True, data_digest=True)
    layer = layers.ISCSIDataOut(with_data_digest=True, data_digest=0x1, data=b"abcd")
    with pytest.raises(DigestError):
        codec.decode(bytes(layer), data_digest=True)


def test_unknown_opcode_dissects_as_the_generic_bhs() -> None:
    raw = bytes([0x1D, 0x80, 0, 0, 0, 0, 0, 4]) + bytes(40) + b"abcd"
    layer = layers.ISCSI(raw)
    assert type(layer) is layers.ISCSI
    assert layer.opcode == 0x1D and layer.data == b"abcd"


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(min_size=48, max_size=160), digests=digest_modes)
def test_scapy_dissects_garbage_without_raising(garbage: bytes,
                                                digests: tuple[bool, bool]) -> None:
    layer = layers.ISCSI(garbage, with_header_digest=digests[0], with_data_digest=digests[1])
    whole = codec.pdu_length(garbage, header_digest=digests[0], data_digest=digests[1])
    if len(garbage) < whole:
        assert isinstance(layer, layers.ISCSITruncated) and layer.load == garbage
    else:
        assert layer.opcode == garbage[0] & 0x3F
        assert bytes(layer)[:whole] == garbage[:whole] or layer.ahs  # AHS may be re-padded
