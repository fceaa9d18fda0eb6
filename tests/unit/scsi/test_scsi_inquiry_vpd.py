"""Standard INQUIRY data and VPD pages: known bytes and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.scsi import vpd
from harness.scsi.errors import ScsiDataError
from harness.scsi.inquiry import StandardInquiry, Tpgs, VersionDescriptor


def test_standard_inquiry_layout() -> None:
    raw = StandardInquiry(product="HA-DISK", revision="0001", tpgs=Tpgs.IMPLICIT).encode()
    assert len(raw) == 96
    assert raw[0] == 0x00 and raw[2] == 0x06 and raw[3] == 0x12 and raw[4] == 91
    assert raw[5] == 0x10 and raw[7] == 0x02
    assert raw[8:16] == b"SPLITBRN" and raw[16:32] == b"HA-DISK         "
    assert raw[32:36] == b"0001"
    assert raw[58:60] == bytes.fromhex("00a0") and raw[62:64] == bytes.fromhex("0460")


def test_standard_inquiry_decode_minimum_36_bytes() -> None:
    raw = StandardInquiry(product="X").encode()
    assert StandardInquiry.decode(raw[:36]).product == "X"
    with pytest.raises(ScsiDataError):
        StandardInquiry.decode(raw[:35])


text = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=8)


@given(st.builds(
    StandardInquiry, vendor=text, product=text, revision=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=4),
    device_type=st.integers(0, 31), qualifier=st.sampled_from([0, 1, 3]),
    removable=st.booleans(), hisup=st.booleans(), tpgs=st.integers(0, 3),
    third_party_copy=st.booleans(), protect=st.booleans(), multip=st.booleans(),
    cmdque=st.booleans(), version_descriptors=st.lists(
        st.sampled_from(VersionDescriptor), max_size=8).map(tuple),
))
def test_standard_inquiry_round_trip(inq: StandardInquiry) -> None:
    assert StandardInquiry.decode(inq.encode()) == inq


def test_naa6_registered_extended_known_bytes() -> None:
    d = vpd.Designator.naa_registered_extended(0x001405, 0x123456789, 0xAABBCCDDEEFF0011)
    assert d.encode() == bytes.fromhex("01 03 00 10 6001 4051 2345 6789 aabbccddeeff0011")
    assert d.text == "600140512345678 9aabbccddeeff0011".replace(" ", "")
    assert vpd.Designator.naa_from_hex(d.text) == d
    with pytest.raises(ScsiDataError):
        vpd.Designator.naa_from_hex("1234")


def test_device_identification_page() -> None:
    page = vpd.DeviceIdentification((
        vpd.Designator.naa_registered_extended(0x001405, 1, 2),
        vpd.Designator.t10_vendor_id("SPLITBRN", "serial-1"),
        vpd.Designator.scsi_name_string("iqn.2026-01.lab:ha1,t,0x0001",
                                        vpd.Association.TARGET_PORT),
        vpd.Designator.relative_target_port(2),
        vpd.Designator.target_port_group(1),
    ))
    raw = page.encode()
    assert raw[:2] == b"\x00\x83"
    port = raw[4 + 20 + 20:]
    assert port[0] == 0x53 and port[1] == 0x98  # iSCSI UTF-8, PIV, port association, type 8
    assert port[3] % 4 == 0
    back = vpd.DeviceIdentification.decode(raw)
    assert back == page
    assert back.find(vpd.DesignatorType.RELATIVE_TARGET_PORT,
                     vpd.Association.TARGET_PORT).number == 2
    assert [d.designator_type for d in back.logical_unit_ids()] == [3, 1]
    assert back.find(vpd.DesignatorType.T10_VENDOR_ID).text == "SPLITBRNserial-1"


def test_device_identification_rejects_overrun() -> None:
    with pytest.raises(ScsiDataError):
        vpd.DeviceIdentification.decode(bytes.fromhex("00 83 0005 01 03 00 10 60"))


def test_supported_pages_and_serial() -> None:
    raw = vpd.SupportedPages((0x83, 0x00, 0x80)).encode()
    assert raw == bytes.fromhex("00 00 0003 00 80 83")
    assert vpd.decode_vpd(vpd.UnitSerialNumber("abc123").encode()).serial == "abc123"
    with pytest.raises(ScsiDataError):
        vpd.UnitSerialNumber.decode(raw)


def test_block_limits_is_sbc3_length() -> None:
    raw = vpd.BlockLimits(max_compare_and_write_length=1, max_transfer_length=2048,
                          max_unmap_lba_count=0xFFFFFFFF, unmap_granularity_alignment=0,
                          max_write_same_length=65535).encode()
    assert raw[:4] == bytes.fromhex("00 b0 003c") and len(raw) == 64
    assert raw[5] == 1 and raw[32] == 0x80
    assert raw[36:44] == (65535).to_bytes(8, "big")


def test_block_characteristics_and_provisioning() -> None:
    raw = vpd.BlockDeviceCharacteristics().encode()
    assert raw[:6] == bytes.fromhex("00 b1 003c 0001")
    lbp = vpd.LogicalBlockProvisioning().encode()
    assert lbp == bytes.fromhex("00 b2 0004 00 e4 02 00")


u32 = st.integers(0, 2**32 - 1)


@given(st.one_of(
    st.builds(vpd.SupportedPages, st.lists(st.integers(0, 255), unique=True).map(
        lambda xs: tuple(sorted(xs)))),
    st.builds(vpd.UnitSerialNumber, st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)),
    st.builds(vpd.BlockLimits, wsnz=st.booleans(), max_compare_and_write_length=st.integers(
        0, 255), optimal_transfer_length_granularity=st.integers(0, 0xFFFF),
        max_transfer_length=u32, optimal_transfer_length=u32, max_prefetch_length=u32,
        max_unmap_lba_count=u32, max_unmap_block_descriptor_count=u32,
        optimal_unmap_granularity=u32,
        unmap_granularity_alignment=st.none() | st.integers(0, 2**31 - 1),
        max_write_same_length=st.integers(0, 2**64 - 1)),
    st.builds(vpd.BlockDeviceCharacteristics, medium_rotation_rate=st.integers(0, 0xFFFF),
              product_type=st.integers(0, 255), nominal_form_factor=st.integers(0, 15),
              fuab=st.booleans(), vbuls=st.booleans()),
    st.builds(vpd.LogicalBlockProvisioning, threshold_exponent=st.integers(0, 255),
              lbpu=st.booleans(), lbpws=st.booleans(), lbpws10=st.booleans(),
              lbprz=st.booleans(), anc_sup=st.booleans(), dp=st.booleans(),
              provisioning_type=st.integers(0, 7)),
    st.builds(vpd.DeviceIdentification, st.lists(st.builds(
        vpd.Designator, designator_type=st.integers(0, 15),
        value=st.binary(max_size=40), code_set=st.integers(0, 15),
        association=st.integers(0, 3), protocol=st.none() | st.integers(0, 15)),
        max_size=5).map(tuple)),
))
def test_vpd_round_trip(page: vpd.VpdData) -> None:
    assert vpd.decode_vpd(page.encode()) == page
