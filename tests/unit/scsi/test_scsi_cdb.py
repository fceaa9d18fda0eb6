"""CDB builders and parse_cdb: known bytes from SBC-3/SPC-4 and round trips."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.scsi import cdb as c
from harness.scsi.errors import CdbError, UnsupportedOpcode
from harness.scsi.opcodes import Opcode, cdb_length


def test_read10_known_bytes() -> None:
    raw = c.Read(lba=5, blocks=8, fua=True).encode()
    assert raw == bytes.fromhex("28 08 00000005 00 0008 00")
    assert c.parse_cdb(raw) == c.Read(lba=5, blocks=8, fua=True, size=10)


def test_write16_known_bytes() -> None:
    raw = c.Write(lba=0x1_0000_0000, blocks=0x10000, size=16, dpo=True).encode()
    assert raw == bytes.fromhex("8a 10 0000000100000000 00010000 00 00")


def test_read6_zero_length_means_256() -> None:
    raw = bytes.fromhex("08 1f ffff 00 00")
    cmd = c.parse_cdb(raw)
    assert cmd == c.Read(lba=0x1FFFFF, blocks=256, size=6)
    assert cmd.encode() == raw


def test_inquiry_vpd_known_bytes() -> None:
    assert c.Inquiry(evpd=True, page_code=0x83, allocation_length=255).encode() == bytes.fromhex(
        "12 01 83 00ff 00")


def test_inquiry_cmddt_is_invalid_field() -> None:
    with pytest.raises(CdbError) as err:
        c.parse_cdb(bytes.fromhex("12 02 00 00ff 00"))
    assert err.value.byte == 1


def test_read_capacity16_known_bytes() -> None:
    raw = c.ReadCapacity16().encode()
    assert raw == bytes.fromhex("9e 10 0000000000000000 00000020 00 00")
    assert isinstance(c.parse_cdb(raw), c.ReadCapacity16)


def test_pr_out_known_bytes() -> None:
    raw = c.PersistentReserveOut(action=1, pr_type=5, parameter_list_length=24).encode()
    assert raw == bytes.fromhex("5f 01 05 0000 00000018 00")


def test_compare_and_write_known_bytes() -> None:
    raw = c.CompareAndWrite(lba=7, blocks=1, fua=True).encode()
    assert raw == bytes.fromhex("89 08 0000000000000007 000000 01 00 00")
    assert c.parse_cdb(raw).transfer_length(512) == 1024


def test_rtpg_and_stpg_service_actions() -> None:
    assert c.ReportTargetPortGroups(allocation_length=0x100).encode() == bytes.fromhex(
        "a3 0a 00000000 00000100 00 00")
    assert c.ReportTargetPortGroups(extended=True).encode()[1] == 0x2A
    assert isinstance(c.parse_cdb(c.SetTargetPortGroups(8).encode()), c.SetTargetPortGroups)


def test_write_same_unmap_bit_and_ndob() -> None:
    raw = c.WriteSame(lba=10, blocks=100, unmap=True, size=16).encode()
    assert raw[1] == 0x08
    ndob = c.WriteSame(lba=0, blocks=1, ndob=True, size=16)
    assert ndob.direction is c.Direction.NONE and ndob.transfer_length(512) == 0
    assert c.WriteSame(blocks=1).direction is c.Direction.OUT


def test_verify_direction_follows_bytchk() -> None:
    assert c.Verify(blocks=4).direction is c.Direction.NONE
    assert c.Verify(blocks=4, bytchk=1).transfer_length(512) == 2048
    assert c.Verify(blocks=4, bytchk=3).transfer_length(512) == 512


def test_unknown_opcode_and_service_action() -> None:
    with pytest.raises(UnsupportedOpcode) as err:
        c.parse_cdb(bytes.fromhex("c0 00 00 00 00 00"))
    assert err.value.byte == 0
    with pytest.raises(UnsupportedOpcode) as err:
        c.parse_cdb(bytes.fromhex("9e 1f") + bytes(14))
    assert err.value.byte == 1


def test_truncated_cdb_is_cdb_error() -> None:
    with pytest.raises(CdbError):
        c.parse_cdb(bytes.fromhex("28 00 00"))
    with pytest.raises(CdbError):
        c.parse_cdb(b"")


def test_cdb_lengths_match_group_codes() -> None:
    for op in Opcode:
        cls_len = cdb_length(op)
        assert cls_len in (6, 10, 12, 16), op


def test_directions_and_lengths() -> None:
    assert c.Write(blocks=3).transfer_length(4096) == 3 * 4096
    assert c.Write(blocks=3).direction is c.Direction.OUT
    assert c.Inquiry(allocation_length=96).transfer_length(512) == 96
    assert c.TestUnitReady().direction is c.Direction.NONE


lba32 = st.integers(0, 2**32 - 1)
lba64 = st.integers(0, 2**64 - 1)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 2**32 - 1)
flag = st.booleans()


def _block(cls: type, size: int) -> st.SearchStrategy:
    lba = {6: st.integers(0, 0x1FFFFF), 10: lba32, 12: lba32, 16: lba64}[size]
    blocks = {6: st.integers(1, 256), 10: u16, 12: u32, 16: u32}[size]
    kwargs: dict[str, st.SearchStrategy] = {"lba": lba, "blocks": blocks, "size": st.just(size)}
    if size != 6:
        kwargs["group"] = st.integers(0, 31)
        if cls in (c.Read, c.Write, c.WriteAndVerify, c.Verify, c.WriteSame, c.OrWrite):
            kwargs["protect"] = st.integers(0, 7)
        if cls in (c.Read, c.Write, c.WriteAndVerify, c.Verify, c.OrWrite):
            kwargs["dpo"] = flag
        if cls in (c.Read, c.Write, c.OrWrite):
            kwargs["fua"] = flag
        if cls in (c.WriteAndVerify, c.Verify):
            kwargs["bytchk"] = st.integers(0, 3)
        if cls in (c.SynchronizeCache, c.PreFetch):
            kwargs["immed"] = flag
        if cls is c.WriteSame:
            kwargs.update(unmap=flag, anchor=flag)
            if size == 16:
                kwargs["ndob"] = flag
    return st.builds(cls, **kwargs)


commands = st.one_of(
    *[_block(cls, size) for cls in (c.Read, c.Write, c.WriteAndVerify, c.Verify,
                                    c.SynchronizeCache, c.PreFetch, c.WriteSame, c.OrWrite)
      for size in cls.OPCODES],
    st.builds(c.CompareAndWrite, lba=lba64, blocks=st.integers(0, 255), fua=flag, dpo=flag,
              protect=st.integers(0, 7), group=st.integers(0, 31)),
    st.just(c.TestUnitReady()),
    st.builds(c.RequestSense, allocation_length=st.integers(0, 255), desc=flag),
    st.builds(c.Inquiry, evpd=flag, page_code=st.integers(0, 255), allocation_length=u16),
    st.builds(c.ModeSense, page_code=st.integers(0, 63), subpage=st.integers(0, 255),
              page_control=st.integers(0, 3), dbd=flag, allocation_length=st.integers(0, 255),
              size=st.just(6)),
    st.builds(c.ModeSense, page_code=st.integers(0, 63), subpage=st.integers(0, 255),
              page_control=st.integers(0, 3), dbd=flag, llbaa=flag, allocation_length=u16,
              size=st.just(10)),
    st.builds(c.ModeSelect, parameter_list_length=st.integers(0, 255), pf=flag, sp=flag,
              size=st.just(6)),
    st.builds(c.ModeSelect, parameter_list_length=u16, pf=flag, sp=flag, size=st.just(10)),
    st.just(c.Reserve6()), st.just(c.Release6()),
    st.builds(c.StartStopUnit, immed=flag, power_condition=st.integers(0, 15), loej=flag,
              start=flag),
    st.builds(c.ReadCapacity10, lba=lba32, pmi=flag),
    st.builds(c.ReadCapacity16, allocation_length=u32, lba=lba64, pmi=flag),
    st.builds(c.GetLbaStatus, lba=lba64, allocation_length=u32),
    st.builds(c.ReportLuns, allocation_length=u32, select_report=st.integers(0, 255)),
    st.builds(c.PersistentReserveIn, action=st.integers(0, 31), allocation_length=u16),
    st.builds(c.PersistentReserveOut, action=st.integers(0, 31), pr_type=st.integers(0, 15),
              scope=st.integers(0, 15), parameter_list_length=u32),
    st.builds(c.ReportTargetPortGroups, allocation_length=u32, extended=flag),
    st.builds(c.SetTargetPortGroups, parameter_list_length=u32),
    st.builds(c.ReportSupportedOpcodes, options=st.integers(0, 7),
              requested_opcode=st.integers(0, 255), requested_service_action=u16,
              rctd=flag, allocation_length=u32),
    st.builds(c.Unmap, parameter_list_length=u16, anchor=flag, group=st.integers(0, 31)),
)


@given(commands)
def test_every_command_round_trips(cmd: c.Command) -> None:
    raw = cmd.encode()
    assert len(raw) == cdb_length(raw[0])
    assert c.parse_cdb(raw) == cmd
    assert c.parse_cdb(raw).encode() == raw


@given(st.binary(min_size=0, max_size=20))
def test_parse_cdb_never_raises_untyped(raw: bytes) -> None:
    with contextlib.suppress(CdbError):
        c.parse_cdb(raw)
