"""Sync-channel framing: round trips and clear errors on garbage."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.target.ha import protocol
from harness.target.ha.protocol import Message, MessageKind, SyncProtocolError


@given(st.sampled_from(list(MessageKind)), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
       st.integers(0, 2**64 - 1), st.binary(max_size=600), st.integers(0, 4))
def test_round_trip(kind, seq, rid, lba, payload, flags):
    msg = Message(kind, seq=seq, rid=rid, lba=lba, payload=payload, flags=flags)
    assert protocol.decode(protocol.encode(msg)) == msg


def test_stream_reader_reads_consecutive_frames():
    async def scenario() -> list[Message]:
        reader = asyncio.StreamReader()
        reader.feed_data(protocol.encode(Message(MessageKind.ACK, seq=7)))
        reader.feed_data(protocol.encode(protocol.control(MessageKind.HELLO, {"node": "a"})))
        reader.feed_eof()
        return [await protocol.read_message(reader), await protocol.read_message(reader)]

    ack, hello = asyncio.run(scenario())
    assert ack.seq == 7 and hello.json() == {"node": "a"}


@pytest.mark.parametrize(("frame", "message"), [
    (b"\x00" * protocol.HEADER_SIZE, "bad frame magic"),
    (protocol.HEADER.pack(protocol.MAGIC, 99, 0, 0, 0, 0, 0), "unknown sync message kind 99"),
    (protocol.HEADER.pack(protocol.MAGIC, 2, 0, 0, 0, 0, 2**31), "exceeds"),
    (protocol.HEADER.pack(protocol.MAGIC, 2, 0, 0, 0, 0, 10) + b"abc", "truncated"),
])
def test_garbage_is_a_typed_error(frame, message):
    with pytest.raises(SyncProtocolError, match=message):
        protocol.decode(frame)


def test_invalid_json_is_a_typed_error():
    with pytest.raises(SyncProtocolError, match="invalid JSON"):
        Message(MessageKind.HELLO, payload=b"{nope").json()
