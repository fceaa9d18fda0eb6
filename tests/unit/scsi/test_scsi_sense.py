"""Sense data: fixed and descriptor formats, known bytes and round trips."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.scsi.errors import ScsiDataError
from harness.scsi.sense import (
    Asc,
    FieldPointer,
    SenseData,
    SenseKey,
    describe_asc,
    invalid_field_in_cdb,
    invalid_field_in_parameter_list,
    unit_attention,
)


def test_fixed_invalid_field_in_cdb_known_bytes() -> None:
    raw = invalid_field_in_cdb(2, 3).encode()
    assert raw == bytes.fromhex("70 00 05 00000000 0a 00000000 24 00 00 cb 0002")


def test_fixed_with_information_sets_valid() -> None:
    sense = SenseData.of(SenseKey.MISCOMPARE, Asc.MISCOMPARE_DURING_VERIFY, information=0x11)
    raw = sense.encode()
    assert raw[0] == 0xF0 and raw[2] == 0x0E and raw[3:7] == bytes.fromhex("00000011")
    assert (raw[12], raw[13]) == (0x1D, 0x00)
    assert SenseData.decode(raw) == sense


def test_descriptor_known_bytes() -> None:
    sense = SenseData.of(SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE, information=0x1234)
    raw = sense.encode(descriptor=True)
    assert raw == bytes.fromhex("72 05 21 00 000000 0c 00 0a 80 00 0000000000001234")


def test_descriptor_field_pointer() -> None:
    sense = invalid_field_in_parameter_list(17)
    raw = sense.encode(descriptor=True)
    assert raw[8:16] == bytes.fromhex("02 06 0000 80 0011 00")
    assert SenseData.decode(raw).field_pointer == FieldPointer(False, 17, None)


def test_unit_attention_names() -> None:
    sense = unit_attention(Asc.RESERVATIONS_PREEMPTED)
    assert sense.is_(Asc.RESERVATIONS_PREEMPTED)
    assert "RESERVATIONS PREEMPTED" in str(sense)
    assert describe_asc(0x2A, 0x09) == "CAPACITY DATA HAS CHANGED (2Ah/09h)"
    assert describe_asc(0x7F, 0x7F) == "ASC 7Fh ASCQ 7Fh"


def test_all_named_codes_are_distinct() -> None:
    codes = [v for v in vars(Asc).values() if isinstance(v, tuple)]
    assert len({(a.asc, a.ascq) for a in codes}) == len(codes)


def test_decode_rejects_unknown_response_code() -> None:
    with pytest.raises(ScsiDataError):
        SenseData.decode(bytes.fromhex("7f 00 00 00"))
    with pytest.raises(ScsiDataError):
        SenseData.decode(b"\x70")


def test_fixed_information_beyond_32_bits_is_dropped_not_truncated() -> None:
    sense = SenseData.of(SenseKey.MEDIUM_ERROR, Asc.UNRECOVERED_READ_ERROR,
                         information=2**40)
    decoded = SenseData.decode(sense.encode())
    assert decoded.information is None  # VALID = 0, never a wrong LBA
    assert SenseData.decode(sense.encode(descriptor=True)).information == 2**40


pointers = st.builds(FieldPointer, in_cdb=st.booleans(), byte=st.integers(0, 0xFFFF),
                     bit=st.none() | st.integers(0, 7))


@st.composite
def senses(draw: st.DrawFn, descriptor: bool) -> SenseData:
    key = draw(st.sampled_from(SenseKey))
    fp = draw(st.none() | pointers) if key == SenseKey.ILLEGAL_REQUEST else None
    sks = None
    if key != SenseKey.ILLEGAL_REQUEST and draw(st.booleans()):
        sks = bytes([0x80 | draw(st.integers(0, 0x7F))]) + draw(st.binary(min_size=2,
                                                                          max_size=2))
    limit = 2**64 - 1 if descriptor else 2**32 - 1
    return SenseData(
        key=key, asc=draw(st.integers(0, 255)), ascq=draw(st.integers(0, 255)),
        information=draw(st.none() | st.integers(0, limit)),
        command_specific=draw(st.none() | st.integers(1, limit)),
        field_pointer=fp, sense_key_specific=sks, deferred=draw(st.booleans()),
        ili=draw(st.booleans()) and not descriptor,
    )


@given(senses(descriptor=False))
def test_fixed_round_trip(sense: SenseData) -> None:
    assert SenseData.decode(sense.encode()) == sense


@given(senses(descriptor=True))
def test_descriptor_round_trip(sense: SenseData) -> None:
    assert SenseData.decode(sense.encode(descriptor=True)) == sense


@given(st.binary(max_size=64))
def test_decode_garbage_is_typed(raw: bytes) -> None:
    with contextlib.suppress(ScsiDataError):
        SenseData.decode(raw)
