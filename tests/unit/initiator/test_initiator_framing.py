"""The connection's PDU framing: whatever way TCP cuts the stream, the same PDUs come out.

``Connection.data_received`` is fed the encoding of a run of target PDUs cut at
arbitrary points (hypothesis picks the cuts), with and without digests; the
decoded PDUs must equal the originals, in order. Holding (after the final Login
Response) must keep later PDUs undecoded until release, and bad framing must end
in exactly one typed error.
"""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.initiator.connection import Connection
from harness.initiator.errors import ConnectionLost, DigestError, PduTooLarge, TruncatedPdu
from harness.iscsi import codec
from harness.iscsi.pdu import Pdu
from harness.iscsi.target_pdus import R2T, DataIn, NopIn, ScsiResponse


class Sink:
    def __init__(self) -> None:
        self.pdus: list[Pdu] = []
        self.errors: list[BaseException] = []


class Transport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True

    def write(self, data: bytes) -> None:
        raise AssertionError("nothing is sent in these tests")

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def connection(sink: Sink, *, digests: bool = False, limit: int = 1 << 20) -> Connection:
    conn = Connection("test", sink.pdus.append, sink.errors.append)
    conn.transport = Transport()  # type: ignore[assignment]
    conn.header_digest = conn.data_digest = digests
    conn.max_recv_data_segment_length = limit
    return conn


PDUS = [
    NopIn(initiator_task_tag=1, stat_sn=5, exp_cmd_sn=9, max_cmd_sn=40, data=b"ping"),
    DataIn(initiator_task_tag=2, data_sn=0, buffer_offset=0, data=bytes(range(256)) * 9),
    DataIn(initiator_task_tag=2, data_sn=1, buffer_offset=2304, status_present=True,
           data=b"\x01\x02\x03", stat_sn=6),
    R2T(initiator_task_tag=3, target_transfer_tag=7, desired_data_transfer_length=4096),
    ScsiResponse(initiator_task_tag=4, status=2, stat_sn=7, data=b"\x00\x02\x70\x00"),
]


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=3000), max_size=12),
       digests=st.booleans())
def test_any_cutting_of_the_stream_yields_the_same_pdus(cuts: list[int], digests: bool) -> None:
    stream = b"".join(codec.encode(p, header_digest=digests, data_digest=digests) for p in PDUS)
    points = sorted({c % len(stream) for c in cuts} | {0, len(stream)})
    sink = Sink()
    conn = connection(sink, digests=digests)
    for start, end in itertools.pairwise(points):
        conn.data_received(stream[start:end])
    assert sink.errors == []
    assert sink.pdus == PDUS


def test_hold_keeps_later_pdus_for_after_the_switch() -> None:
    first, second = PDUS[0], PDUS[1]
    sink = Sink()
    conn = connection(sink)

    def on_pdu(pdu: Pdu) -> None:
        sink.pdus.append(pdu)
        if len(sink.pdus) == 1:
            conn.hold()  # as the session does on the final Login Response

    conn._on_pdu = on_pdu
    conn.data_received(codec.encode(first) + codec.encode(second, header_digest=True,
                                                          data_digest=True))
    assert sink.pdus == [first]
    conn.header_digest = conn.data_digest = True
    conn.release()
    assert sink.pdus == [first, second] and sink.errors == []


def test_oversized_segment_is_refused_before_it_is_read() -> None:
    sink = Sink()
    conn = connection(sink, limit=1024)
    conn.data_received(codec.encode(PDUS[1])[:48])  # the header alone announces 2304 bytes
    (error,) = sink.errors
    assert isinstance(error, PduTooLarge) and conn.closed


def test_corrupted_data_digest_is_one_error_then_silence() -> None:
    sink = Sink()
    conn = connection(sink, digests=True)
    raw = bytearray(codec.encode(PDUS[1], header_digest=True, data_digest=True))
    raw[100] ^= 1
    conn.data_received(bytes(raw))
    conn.data_received(codec.encode(PDUS[0], header_digest=True, data_digest=True))
    (error,) = sink.errors
    assert isinstance(error, DigestError) and not error.header
    assert sink.pdus == []


def test_end_of_stream_inside_a_pdu_is_truncation_and_between_pdus_is_loss() -> None:
    inside, between = Sink(), Sink()
    conn = connection(inside)
    conn.data_received(codec.encode(PDUS[0])[:30])
    conn.connection_lost(None)
    assert isinstance(inside.errors[0], TruncatedPdu)
    conn = connection(between)
    conn.data_received(codec.encode(PDUS[0]))
    conn.connection_lost(None)
    assert isinstance(between.errors[0], ConnectionLost) and between.pdus == [PDUS[0]]


def test_send_after_close_is_connection_lost() -> None:
    async def scenario() -> None:
        conn = connection(Sink())
        conn.close()
        try:
            conn.send(PDUS[0])
        except ConnectionLost:
            return
        raise AssertionError("send on a closed connection did not fail")

    asyncio.run(scenario())
