"""Framing around the BHS: padding, digests, lengths, and every way a peer can get
them wrong, both from a buffer (``decode``) and from a stream (``read_pdu``)."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import SplitbrainError
from harness.iscsi import codec
from harness.iscsi.codec import R2T, DataIn, DataOut, NopIn, NopOut, ScsiCommand
from harness.iscsi.digest import crc32c_digest
from harness.iscsi.errors import (
    ConnectionClosed,
    DigestError,
    PduTooLarge,
    ProtocolError,
    TruncatedPdu,
    UnknownOpcode,
)
from harness.iscsi.keys import decode_keys

DIGEST_MODES = [(False, False), (True, False), (False, True), (True, True)]


@pytest.mark.parametrize("length", [0, 1, 2, 3, 4, 5, 4095, 4096])
def test_data_is_padded_to_four_bytes_with_zeros(length: int) -> None:
    wire = codec.encode(DataOut(data=b"\xee" * length))
    assert len(wire) == 48 + length + (-length & 3)
    assert wire[48 + length :] == bytes(-length & 3)
    assert int.from_bytes(wire[5:8], "big") == length


def test_header_digest_covers_bhs_and_ahs() -> None:
    pdu = ScsiCommand(cdb=bytes(range(20)), data=b"abc")
    wire = codec.encode(pdu, header_digest=True)
    header = wire[: 48 + 8]
    assert wire[4] == 2  # one extended-CDB AHS of 8 bytes
    assert wire[56:60] == crc32c_digest(header)
    assert wire[60:63] == b"abc"


def test_data_digest_covers_data_and_padding() -> None:
    wire = codec.encode(DataIn(data=b"abcde"), data_digest=True)
    assert wire[48:56] == b"abcde\x00\x00\x00"
    assert wire[56:60] == crc32c_digest(b"abcde\x00\x00\x00")
    assert len(wire) == 60


def test_no_data_digest_without_data() -> None:
    wire = codec.encode(NopOut(), header_digest=True, data_digest=True)
    assert len(wire) == 52
    assert codec.pdu_length(wire, header_digest=True, data_digest=True) == 52


@pytest.mark.parametrize(("header_digest", "data_digest"), DIGEST_MODES)
def test_round_trip_with_every_digest_setting(header_digest: bool, data_digest: bool) -> None:
    pdu = R2T(initiator_task_tag=3, target_transfer_tag=9, r2t_sn=1, data=b"xy")
    wire = codec.encode(pdu, header_digest=header_digest, data_digest=data_digest)
    assert codec.pdu_length(wire, header_digest=header_digest, data_digest=data_digest) == len(wire)
    assert codec.decode(wire, header_digest=header_digest, data_digest=data_digest) == pdu


def test_wrong_header_digest_is_a_digest_error() -> None:
    wire = bytearray(codec.encode(NopIn(data=b"1234"), header_digest=True))
    wire[49] ^= 0xFF
    with pytest.raises(DigestError) as caught:
        codec.decode(wire, header_digest=True)
    assert caught.value.header
    assert caught.value.bhs == bytes(wire[:48])


def test_wrong_data_digest_is_a_digest_error_that_quotes_the_header() -> None:
    wire = bytearray(codec.encode(DataOut(data=b"payload"), data_digest=True))
    wire[50] ^= 0x01  # corrupt the data, keep the digest
    with pytest.raises(DigestError) as caught:
        codec.decode(wire, data_digest=True)
    assert not caught.value.header
    assert caught.value.bhs == bytes(wire[:48])


def test_truncated_and_overlong_buffers() -> None:
    wire = codec.encode(DataIn(data=b"12345678"))
    with pytest.raises(TruncatedPdu):
        codec.decode(wire[:20])
    with pytest.raises(TruncatedPdu):
        codec.decode(wire[:-1])
    with pytest.raises(ProtocolError):
        codec.decode(wire + b"\x00\x00\x00\x00")


def test_unknown_opcode_carries_the_bhs() -> None:
    bhs = bytes([0x1C]) + bytes(47)
    with pytest.raises(UnknownOpcode) as caught:
        codec.decode(bhs)
    assert caught.value.opcode == 0x1C
    assert caught.value.bhs == bhs
    assert isinstance(caught.value, SplitbrainError)
    assert "\n" not in str(caught.value)


def test_malformed_ahs_is_a_protocol_error() -> None:
    wire = bytearray(codec.encode(ScsiCommand(cdb=bytes(20))))
    wire[48:50] = struct.pack(">H", 200)  # AHSLength past the AHS
    with pytest.raises(ProtocolError):
        codec.decode(wire)


def test_unencodable_pdus_raise_typed_errors() -> None:
    with pytest.raises(ProtocolError):
        codec.encode(NopOut(cmd_sn=1 << 32))
    with pytest.raises(ProtocolError):
        codec.encode(NopOut(ahs=b"\x00\x01\x01"))


# ------------------------------------------------------------------ read_pdu


def stream_of(*chunks: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    if eof:
        reader.feed_eof()
    return reader


async def read(reader: asyncio.StreamReader, **kwargs: object) -> codec.Pdu:
    options: dict[str, object] = {"max_data_segment_length": 65536, **kwargs}
    return await codec.read_pdu(reader, **options)  # type: ignore[arg-type]


def read_one(*chunks: bytes, **kwargs: object) -> codec.Pdu:
    """Read one PDU from a stream that holds ``chunks`` and then ends."""

    async def scenario() -> codec.Pdu:
        return await read(stream_of(*chunks), **kwargs)

    return asyncio.run(scenario())


def test_read_pdu_reads_consecutive_pdus_with_digests() -> None:
    pdus = [ScsiCommand(read=True, cdb=bytes(32), initiator_task_tag=i, data=bytes(i))
            for i in range(5)]
    wire = b"".join(codec.encode(p, header_digest=True, data_digest=True) for p in pdus)

    async def scenario() -> list[codec.Pdu]:
        reader = stream_of(wire[:7], wire[7:100], wire[100:])
        return [await read(reader, header_digest=True, data_digest=True) for _ in pdus]

    assert asyncio.run(scenario()) == pdus


def test_read_pdu_clean_eof_is_connection_closed() -> None:
    with pytest.raises(ConnectionClosed):
        read_one()


def test_read_pdu_eof_inside_header_or_body_is_truncation() -> None:
    wire = codec.encode(DataIn(data=bytes(100)))
    with pytest.raises(TruncatedPdu):
        read_one(wire[:30])
    with pytest.raises(TruncatedPdu) as caught:
        read_one(wire[:120])
    assert caught.value.bhs == wire[:48]


def test_read_pdu_refuses_an_oversized_segment_before_reading_it() -> None:
    wire = codec.encode(DataIn(data=bytes(9000)))

    async def scenario() -> None:
        reader = stream_of(wire[:48], eof=False)  # the data never arrives
        await read(reader, max_data_segment_length=8192)

    with pytest.raises(PduTooLarge) as caught:
        asyncio.run(scenario())
    assert (caught.value.length, caught.value.limit) == (9000, 8192)


def test_read_pdu_consumes_an_unknown_opcode_pdu_and_stays_in_step() -> None:
    unknown = bytearray(codec.encode(NopIn(data=b"zzzzz")))
    unknown[0] = 0x3C
    follower = NopIn(initiator_task_tag=42)

    async def scenario() -> tuple[UnknownOpcode, codec.Pdu]:
        reader = stream_of(bytes(unknown), codec.encode(follower))
        with pytest.raises(UnknownOpcode) as caught:
            await read(reader)
        return caught.value, await read(reader)

    error, after = asyncio.run(scenario())
    assert error.bhs == bytes(unknown[:48])
    assert after == follower


def test_read_pdu_wrong_data_digest() -> None:
    wire = bytearray(codec.encode(DataOut(data=b"abcd"), data_digest=True))
    wire[-1] ^= 0x80
    with pytest.raises(DigestError):
        read_one(bytes(wire), data_digest=True)


# ------------------------------------------------------------------ garbage in


@settings(max_examples=500, deadline=None)
@given(garbage=st.binary(max_size=200), digests=st.tuples(st.booleans(), st.booleans()))
def test_garbage_buffers_give_a_pdu_or_a_protocol_error(garbage: bytes,
                                                        digests: tuple[bool, bool]) -> None:
    try:
        pdu = codec.decode(garbage, header_digest=digests[0], data_digest=digests[1])
    except ProtocolError as error:
        assert "\n" not in str(error)
    else:
        assert pdu.opcode in codec.PDU_CLASSES


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(min_size=1, max_size=400))
def test_garbage_streams_give_pdus_then_a_protocol_error(garbage: bytes) -> None:
    async def scenario() -> None:
        reader = stream_of(garbage)
        for _ in range(len(garbage)):  # every PDU consumes at least 48 bytes
            try:
                await read(reader, max_data_segment_length=256)
            except ProtocolError:
                return
        raise AssertionError("read_pdu never reported the end of the stream")

    asyncio.run(scenario())


@settings(max_examples=300, deadline=None)
@given(text=st.binary(max_size=120))
def test_garbage_text_gives_pairs_or_a_protocol_error(text: bytes) -> None:
    try:
        pairs = decode_keys(text)
    except ProtocolError:
        return
    assert all(key and "\x00" not in value for key, value in pairs)
