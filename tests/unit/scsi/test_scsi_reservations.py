"""Persistent reservation data: PR IN replies, PR OUT lists, iSCSI TransportIDs."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.scsi import reservations as r
from harness.scsi.errors import ParameterListError

PORT = "iqn.2026-01.lab:node1,i,0x23d000000001"


def test_transport_id_format1_known_bytes() -> None:
    tid = r.TransportId.from_port_name(PORT)
    raw = tid.encode()
    assert raw[0] == 0x45 and int.from_bytes(raw[2:4], "big") == len(raw) - 4
    assert (len(raw) - 4) % 4 == 0
    assert raw[4:].rstrip(b"\0") == PORT.encode()
    assert r.TransportId.decode(raw) == tid
    assert tid.matches(PORT) and not tid.matches("iqn.2026-01.lab:node1,i,0x23d000000002")


def test_transport_id_format0_matches_every_port_of_the_name() -> None:
    tid = r.TransportId("iqn.2026-01.lab:node1")
    raw = tid.encode()
    assert raw[0] == 0x05 and len(raw) == 4 + 24
    assert tid.matches(PORT)


def test_transport_id_rejects_other_protocols() -> None:
    with pytest.raises(ParameterListError):
        r.TransportId.decode(bytes.fromhex("00 00 0014") + bytes(20))


def test_read_keys_known_bytes() -> None:
    raw = r.ReadKeysData(3, (0xAA, 0xBB)).encode()
    assert raw == bytes.fromhex("00000003 00000010 00000000000000aa 00000000000000bb")
    assert r.ReadKeysData.decode(raw[:16]).keys == (0xAA,)


def test_read_reservation_known_bytes() -> None:
    raw = r.ReadReservationData(7, 0x1122, r.PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY).encode()
    assert raw == bytes.fromhex("00000007 00000010 0000000000001122 00000000 00 05 0000")
    assert r.ReadReservationData.decode(raw).pr_type is r.PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY
    empty = r.ReadReservationData(7).encode()
    assert empty == bytes.fromhex("00000007 00000000")
    assert r.ReadReservationData.decode(empty).key is None


def test_report_capabilities_known_bytes() -> None:
    raw = r.ReportCapabilitiesData(ptpl_a=True).encode()
    assert raw == bytes.fromhex("0008 1d 81 ea01 0000")
    assert r.ReportCapabilitiesData.decode(raw) == r.ReportCapabilitiesData(ptpl_a=True)


def test_pr_out_basic_known_bytes_and_length_rules() -> None:
    raw = r.PrOutParameters(key=1, service_action_key=2, aptpl=True).encode()
    assert raw == bytes.fromhex("0000000000000001 0000000000000002 00000000 01 00 0000")
    with pytest.raises(ParameterListError) as err:
        r.PrOutParameters.decode(raw + bytes(4))
    assert err.value.length_error
    with pytest.raises(ParameterListError):
        r.PrOutParameters.decode(raw[:20])


def test_pr_out_spec_i_pt() -> None:
    params = r.PrOutParameters(service_action_key=9, spec_i_pt=True, transport_ids=(
        r.TransportId.from_port_name(PORT), r.TransportId("iqn.2026-01.lab:node2")))
    raw = params.encode()
    assert raw[20] == 0x08
    assert r.PrOutParameters.decode(raw) == params
    with pytest.raises(ParameterListError):
        r.PrOutParameters.decode(raw[:-4])


def test_register_and_move_round_trip() -> None:
    params = r.RegisterAndMoveParameters(5, 6, r.TransportId.from_port_name(PORT), 2, unreg=True)
    raw = params.encode()
    assert raw[17] == 0x02 and raw[18:20] == b"\x00\x02"
    assert r.RegisterAndMoveParameters.decode(raw) == params


names = st.from_regex(r"iqn\.20[0-9]{2}-0[1-9]\.[a-z]{1,10}:[a-z0-9.-]{1,30}", fullmatch=True)
tids = st.builds(r.TransportId, names, st.none() | st.from_regex(r"[0-9a-f]{12}",
                                                                  fullmatch=True))
keys = st.integers(0, 2**64 - 1)


@given(st.builds(r.ReadFullStatusData, st.integers(0, 2**32 - 1), st.lists(st.builds(
    r.FullStatusDescriptor, keys, tids, st.integers(0, 0xFFFF), st.booleans(),
    st.just(False)), max_size=4).map(tuple)))
def test_read_full_status_round_trip(data: r.ReadFullStatusData) -> None:
    assert r.ReadFullStatusData.decode(data.encode()) == data


@given(keys, tids, st.sampled_from(r.PrType))
def test_full_status_holder(key: int, tid: r.TransportId, t: r.PrType) -> None:
    d = r.FullStatusDescriptor(key, tid, 1, False, True, t)
    assert r.ReadFullStatusData.decode(r.ReadFullStatusData(1, (d,)).encode()).descriptors == (d,)


@given(st.builds(r.PrOutParameters, keys, keys, st.booleans(), st.booleans(), st.booleans(),
                 st.lists(tids, max_size=3).map(tuple)))
def test_pr_out_round_trip(params: r.PrOutParameters) -> None:
    if not params.spec_i_pt:
        params = r.PrOutParameters(params.key, params.service_action_key, False,
                                   params.all_tg_pt, params.aptpl)
    assert r.PrOutParameters.decode(params.encode()) == params


@given(st.binary(max_size=80))
def test_pr_out_garbage_is_typed(raw: bytes) -> None:
    with contextlib.suppress(ParameterListError):
        r.PrOutParameters.decode(raw)


def test_type_properties() -> None:
    assert r.PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS.all_registrants
    assert r.PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY.registrants_only
    assert r.PrType.EXCLUSIVE_ACCESS.exclusive_access
    assert not r.PrType.WRITE_EXCLUSIVE.exclusive_access
