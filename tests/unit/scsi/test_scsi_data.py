"""READ CAPACITY, REPORT LUNS, mode parameters and ALUA data: known bytes and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.scsi import alua, mode
from harness.scsi.capacity import ReadCapacity10Data, ReadCapacity16Data
from harness.scsi.errors import ParameterListError, ScsiDataError
from harness.scsi.report_luns import ReportLunsData, decode_lun, encode_lun


def test_read_capacity10_saturates() -> None:
    assert ReadCapacity10Data.for_device(2048, 512).encode() == bytes.fromhex("000007ff 00000200")
    big = ReadCapacity10Data.for_device(2**33, 512)
    assert big.returned_lba == 0xFFFFFFFF and big.needs_16


def test_read_capacity16_known_bytes() -> None:
    raw = ReadCapacity16Data(2047, 4096, lbpme=True, lbprz=True).encode()
    assert raw == bytes.fromhex("00000000000007ff 00001000 00 00 c000") + bytes(16)


@given(st.builds(ReadCapacity16Data, returned_lba=st.integers(0, 2**64 - 1),
                 block_length=st.integers(0, 2**32 - 1), prot_en=st.booleans(),
                 p_type=st.integers(0, 7), p_i_exponent=st.integers(0, 15),
                 logical_per_physical_exponent=st.integers(0, 15), lbpme=st.booleans(),
                 lbprz=st.booleans(), lowest_aligned_lba=st.integers(0, 0x3FFF)))
def test_read_capacity16_round_trip(data: ReadCapacity16Data) -> None:
    assert ReadCapacity16Data.decode(data.encode()) == data


def test_lun_addressing() -> None:
    assert encode_lun(1) == bytes.fromhex("0001000000000000")
    assert encode_lun(300) == bytes.fromhex("412c000000000000")
    assert decode_lun(encode_lun(16383)) == 16383
    with pytest.raises(ScsiDataError):
        encode_lun(16384)
    with pytest.raises(ScsiDataError):
        decode_lun(bytes.fromhex("c000000000000000"))


@given(st.lists(st.integers(0, 16383), max_size=20).map(tuple))
def test_report_luns_round_trip(luns: tuple[int, ...]) -> None:
    raw = ReportLunsData(luns).encode()
    assert int.from_bytes(raw[:4], "big") == 8 * len(luns)
    assert ReportLunsData.decode(raw).luns == luns
    assert ReportLunsData.decode(raw[: 8 + 8 * (len(luns) // 2)]).luns == luns[: len(luns) // 2]


def test_mode_sense6_with_caching_page_known_bytes() -> None:
    params = mode.ModeParameters(pages=(mode.CachingPage(wce=True),),
                                 block_descriptors=(mode.BlockDescriptor(2048, 512),))
    raw = params.encode(6)
    assert raw[:4] == bytes([3 + 8 + 20, 0, 0x10, 8])
    assert raw[4:12] == bytes.fromhex("00000800 00 000200")
    assert raw[12:15] == bytes.fromhex("08 12 04")
    assert mode.ModeParameters.decode(raw, 6) == params


def test_mode_sense10_long_lba() -> None:
    params = mode.ModeParameters(pages=(mode.ControlPage(d_sense=True),),
                                 block_descriptors=(mode.BlockDescriptor(2**40, 4096),),
                                 long_lba=True)
    raw = params.encode(10)
    assert raw[4] == 1 and raw[6:8] == bytes.fromhex("0010")
    assert raw[24:28] == bytes.fromhex("0a 0a 06 10")  # D_SENSE|GLTSD, QAM 1
    assert mode.ModeParameters.decode(raw, 10) == params


def test_mode_select_overrun_is_parameter_list_error() -> None:
    raw = bytes.fromhex("00 00 00 00 08 12 04")
    with pytest.raises(ParameterListError) as err:
        mode.ModeParameters.decode(raw, 6, select=True)
    assert err.value.byte == 5
    raw6 = bytes.fromhex("00 00 00 05") + bytes(5)
    with pytest.raises(ParameterListError):
        mode.ModeParameters.decode(raw6, 6, select=True)


def test_mode_sense_truncated_by_allocation_length_decodes_what_is_there() -> None:
    raw = mode.ModeParameters(pages=(mode.CachingPage(), mode.ControlPage())).encode(6)
    assert mode.ModeParameters.decode(raw[:26], 6).pages == (mode.CachingPage(),)


flag = st.booleans()


@given(st.builds(
    mode.ModeParameters,
    pages=st.lists(st.one_of(
        st.builds(mode.CachingPage, wce=flag, rcd=flag, dra=flag, ic=flag,
                  write_retention=st.integers(0, 15), maximum_prefetch=st.integers(0, 0xFFFF),
                  cache_segments=st.integers(0, 255), ps=flag),
        st.builds(mode.ControlPage, tst=st.integers(0, 7), d_sense=flag, gltsd=flag,
                  qerr=st.integers(0, 3), tas=flag, swp=flag,
                  busy_timeout_period=st.integers(0, 0xFFFF), ps=flag),
        st.builds(mode.RawModePage, page_code=st.sampled_from([0x01, 0x1C, 0x19]),
                  data=st.binary(max_size=20), ps=flag),
    ), max_size=3).map(tuple),
    block_descriptors=st.lists(st.builds(mode.BlockDescriptor, st.integers(0, 2**32 - 1),
                                         st.integers(0, 2**24 - 1)), max_size=2).map(tuple),
    medium_type=st.integers(0, 255), write_protect=flag, dpofua=flag,
))
def test_mode_parameters_round_trip(params: mode.ModeParameters) -> None:
    for size in (6, 10):
        raw = params.encode(size)
        if size == 6 and len(raw) > 256:
            continue
        assert mode.ModeParameters.decode(raw, size) == params


def test_rtpg_known_bytes() -> None:
    data = alua.RtpgData((
        alua.TargetPortGroupDescriptor(1, alua.AccessState.ACTIVE_OPTIMIZED, (1, 2),
                                       preferred=True),
        alua.TargetPortGroupDescriptor(2, alua.AccessState.STANDBY, (3,)),
    ))
    raw = data.encode()
    assert raw[:4] == (16 + 12).to_bytes(4, "big")
    assert raw[4:12] == bytes.fromhex("80 8f 0001 00 00 00 02")
    assert raw[12:20] == bytes.fromhex("00000001 00000002")
    assert raw[20] == 0x02
    assert alua.RtpgData.decode(raw) == data


def test_rtpg_extended_header() -> None:
    data = alua.RtpgData((alua.TargetPortGroupDescriptor(
        7, alua.AccessState.TRANSITIONING, (9,)),), extended=True, implicit_transition_time=10)
    raw = data.encode()
    assert raw[4:8] == bytes.fromhex("10 0a 0000")
    assert alua.RtpgData.decode(raw) == data


def test_stpg_list() -> None:
    lst = alua.SetTargetPortGroupsList(((1, alua.AccessState.STANDBY),))
    assert lst.encode() == bytes.fromhex("00000000 02 00 0001")
    assert alua.SetTargetPortGroupsList.decode(lst.encode()) == lst
    with pytest.raises(ParameterListError):
        alua.SetTargetPortGroupsList.decode(bytes.fromhex("00000000 05 00 0001"))
    with pytest.raises(ParameterListError):
        alua.SetTargetPortGroupsList.decode(bytes(6))


@given(st.lists(st.builds(
    alua.TargetPortGroupDescriptor, group_id=st.integers(0, 0xFFFF),
    state=st.sampled_from(alua.AccessState),
    relative_ports=st.lists(st.integers(0, 0xFFFF), max_size=4).map(tuple),
    preferred=flag, supported=st.builds(alua.SupportedStates, flag, flag, flag, flag, flag,
                                        flag, flag),
    status=st.integers(0, 2), vendor_specific=st.integers(0, 255)), max_size=4).map(tuple),
    flag, st.integers(0, 255))
def test_rtpg_round_trip(groups: tuple, extended: bool, itt: int) -> None:
    data = alua.RtpgData(groups, extended, itt if extended else 0)
    assert alua.RtpgData.decode(data.encode()) == data


def test_lba_status_known_bytes_and_round_trip() -> None:
    from harness.scsi.provisioning import LbaStatusData, LbaStatusDescriptor, ProvisioningStatus

    data = LbaStatusData((LbaStatusDescriptor(0, 8, ProvisioningStatus.MAPPED),
                          LbaStatusDescriptor(8, 100, ProvisioningStatus.DEALLOCATED)))
    raw = data.encode()
    assert raw[:8] == bytes.fromhex("00000024 00000000")
    assert raw[24:40] == bytes.fromhex("0000000000000008 00000064 01 000000")
    assert LbaStatusData.decode(raw) == data
    assert LbaStatusData.decode(raw[:24]).descriptors == data.descriptors[:1]
