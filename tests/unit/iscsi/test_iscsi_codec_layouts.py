"""Known byte layouts of every PDU, written out by hand from RFC 7143 section 11.

Each vector is the BHS in rows (bytes 0-15, 16-27, 28-39, 40-47) followed by
the data segment and its padding. A vector proves both directions: the codec
encodes the PDU to exactly these bytes and decodes these bytes to the same PDU.
"""

from __future__ import annotations

import pytest

from harness.iscsi import codec
from harness.iscsi.codec import (
    NO_TAG,
    R2T,
    AsyncMessage,
    DataIn,
    DataOut,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Reject,
    ScsiCommand,
    ScsiResponse,
    Snack,
    TaskManagementRequest,
    TaskManagementResponse,
    TextRequest,
    TextResponse,
)

LUN2 = codec.lun_to_wire(2)  # 00 02 00 00 00 00 00 00
READ10 = bytes.fromhex("28 00 00 00 00 08 00 00 08 00")
SENSE = bytes.fromhex("0012" "70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 00 00 00")
REJECTED_BHS = bytes(range(48))

VECTORS = [
    pytest.param(
        NopOut(immediate=True, lun=LUN2, initiator_task_tag=0x11223344, cmd_sn=5, exp_stat_sn=6,
               data=b"ping"),
        "40 80 0000 00 000004 0002000000000000"
        "11223344 ffffffff 00000005"
        "00000006 00000000 00000000"
        "00000000 00000000" "70696e67",
        id="nop-out",
    ),
    pytest.param(
        ScsiCommand(final=True, read=True, attr=1, lun=LUN2, initiator_task_tag=0x10,
                    expected_data_transfer_length=4096, cmd_sn=7, exp_stat_sn=3, cdb=READ10),
        "01 c1 0000 00 000000 0002000000000000"
        "00000010 00001000 00000007"
        "00000003 28000000 00080000"
        "08000000 00000000",
        id="scsi-command",
    ),
    pytest.param(
        TaskManagementRequest(immediate=True, function=1, lun=LUN2, initiator_task_tag=0x20,
                              referenced_task_tag=0x10, cmd_sn=9, exp_stat_sn=4, ref_cmd_sn=7,
                              exp_data_sn=0),
        "42 81 0000 00 000000 0002000000000000"
        "00000020 00000010 00000009"
        "00000004 00000007 00000000"
        "00000000 00000000",
        id="task-management-request",
    ),
    pytest.param(
        LoginRequest(transit=True, csg=1, nsg=3, isid=0x400001370000, initiator_task_tag=0,
                     cid=1, cmd_sn=1, exp_stat_sn=0, data=b"HeaderDigest=None\x00"),
        "43 87 00 00 00 000012 400001370000 0000"
        "00000000 0001 0000 00000001"
        "00000000 00000000 00000000"
        "00000000 00000000"
        + b"HeaderDigest=None\x00".hex() + "0000",
        id="login-request",
    ),
    pytest.param(
        TextRequest(initiator_task_tag=5, cmd_sn=2, exp_stat_sn=1, data=b"SendTargets=All\x00"),
        "04 80 0000 00 000010 0000000000000000"
        "00000005 ffffffff 00000002"
        "00000001 00000000 00000000"
        "00000000 00000000" + b"SendTargets=All\x00".hex(),
        id="text-request",
    ),
    pytest.param(
        DataOut(final=True, lun=LUN2, initiator_task_tag=0x10, target_transfer_tag=0x99,
                exp_stat_sn=3, data_sn=2, buffer_offset=8192, data=bytes(range(6))),
        "05 80 0000 00 000006 0002000000000000"
        "00000010 00000099 00000000"
        "00000003 00000000 00000002"
        "00002000 00000000 000102030405" "0000",
        id="data-out",
    ),
    pytest.param(
        LogoutRequest(reason_code=0, initiator_task_tag=0x30, cid=1, cmd_sn=11, exp_stat_sn=8),
        "46 80 0000 00 000000 0000000000000000"
        "00000030 0001 0000 0000000b"
        "00000008 00000000 00000000"
        "00000000 00000000",
        id="logout-request",
    ),
    pytest.param(
        Snack(type=1, exp_stat_sn=5, beg_run=3, run_length=2),
        "10 81 0000 00 000000 0000000000000000"
        "ffffffff ffffffff 00000000"
        "00000005 00000000 00000000"
        "00000003 00000002",
        id="snack",
    ),
    pytest.param(
        NopIn(initiator_task_tag=0x11223344, stat_sn=6, exp_cmd_sn=6, max_cmd_sn=37,
              data=b"ping"),
        "20 80 0000 00 000004 0000000000000000"
        "11223344 ffffffff 00000006"
        "00000006 00000025 00000000"
        "00000000 00000000" "70696e67",
        id="nop-in",
    ),
    pytest.param(
        ScsiResponse(residual_underflow=True, status=2, initiator_task_tag=0x10, stat_sn=3,
                     exp_cmd_sn=8, max_cmd_sn=39, exp_data_sn=1, residual_count=512,
                     data=SENSE),
        "21 82 00 02 00 000014 0000000000000000"
        "00000010 00000000 00000003"
        "00000008 00000027 00000001"
        "00000000 00000200" + SENSE.hex(),
        id="scsi-response",
    ),
    pytest.param(
        TaskManagementResponse(response=0, initiator_task_tag=0x20, stat_sn=4, exp_cmd_sn=10,
                               max_cmd_sn=41),
        "22 80 00 00 00 000000 0000000000000000"
        "00000020 00000000 00000004"
        "0000000a 00000029 00000000"
        "00000000 00000000",
        id="task-management-response",
    ),
    pytest.param(
        LoginResponse(transit=True, csg=0, nsg=1, isid=0x400001370000, tsih=0x0102,
                      initiator_task_tag=7, stat_sn=0x1000, exp_cmd_sn=1, max_cmd_sn=2,
                      status_class=2, status_detail=1),
        "23 81 00 00 00 000000 400001370000 0102"
        "00000007 00000000 00001000"
        "00000001 00000002 0201 0000"
        "00000000 00000000",
        id="login-response",
    ),
    pytest.param(
        TextResponse(initiator_task_tag=5, stat_sn=2, exp_cmd_sn=3, max_cmd_sn=34,
                     data=b"TargetName=iqn.x\x00"),
        "24 80 0000 00 000011 0000000000000000"
        "00000005 ffffffff 00000002"
        "00000003 00000022 00000000"
        "00000000 00000000" + b"TargetName=iqn.x\x00".hex() + "000000",
        id="text-response",
    ),
    pytest.param(
        DataIn(final=True, residual_overflow=True, status_present=True, status=0, lun=LUN2,
               initiator_task_tag=0x10, stat_sn=3, exp_cmd_sn=8, max_cmd_sn=39, data_sn=1,
               buffer_offset=0x1000, residual_count=4, data=b"\xaa" * 8),
        "25 85 00 00 00 000008 0002000000000000"
        "00000010 ffffffff 00000003"
        "00000008 00000027 00000001"
        "00001000 00000004" "aaaaaaaaaaaaaaaa",
        id="data-in",
    ),
    pytest.param(
        LogoutResponse(initiator_task_tag=0x30, stat_sn=9, exp_cmd_sn=12, max_cmd_sn=43,
                       time2wait=2, time2retain=20),
        "26 80 00 00 00 000000 0000000000000000"
        "00000030 00000000 00000009"
        "0000000c 0000002b 00000000"
        "0002 0014 00000000",
        id="logout-response",
    ),
    pytest.param(
        R2T(lun=LUN2, initiator_task_tag=0x10, target_transfer_tag=0x55, stat_sn=4,
            exp_cmd_sn=8, max_cmd_sn=39, r2t_sn=1, buffer_offset=65536,
            desired_data_transfer_length=262144),
        "31 80 0000 00 000000 0002000000000000"
        "00000010 00000055 00000004"
        "00000008 00000027 00000001"
        "00010000 00040000",
        id="r2t",
    ),
    pytest.param(
        AsyncMessage(lun=LUN2, stat_sn=5, exp_cmd_sn=6, max_cmd_sn=7, async_event=1,
                     parameter2=2, parameter3=20),
        "32 80 0000 00 000000 0002000000000000"
        "ffffffff 00000000 00000005"
        "00000006 00000007 01 00 0000"
        "0002 0014 00000000",
        id="async-message",
    ),
    pytest.param(
        Reject(reason=4, stat_sn=5, exp_cmd_sn=6, max_cmd_sn=37, data=REJECTED_BHS),
        "3f 80 04 00 00 000030 0000000000000000"
        "ffffffff 00000000 00000005"
        "00000006 00000025 00000000"
        "00000000 00000000" + REJECTED_BHS.hex(),
        id="reject",
    ),
]


@pytest.mark.parametrize(("pdu", "wire"), VECTORS)
def test_encode_gives_the_rfc_layout(pdu: codec.Pdu, wire: str) -> None:
    assert codec.encode(pdu).hex() == bytes.fromhex(wire).hex()


@pytest.mark.parametrize(("pdu", "wire"), VECTORS)
def test_decode_of_the_rfc_layout_gives_the_pdu(pdu: codec.Pdu, wire: str) -> None:
    decoded = codec.decode(bytes.fromhex(wire))
    assert type(decoded) is type(pdu)
    assert decoded == pdu
    assert decoded.opcode == pdu.opcode == bytes.fromhex(wire)[0] & 0x3F


def test_every_opcode_has_a_vector() -> None:
    covered = {param.values[0].opcode for param in VECTORS}
    assert covered == set(codec.PDU_CLASSES) == set(codec.Opcode)


def test_extended_cdb_and_bidirectional_length_travel_in_ahs() -> None:
    cdb = bytes(range(0x40, 0x40 + 32))
    pdu = ScsiCommand(read=True, write=True, cdb=cdb,
                      expected_bidirectional_read_data_length=0x4D, initiator_task_tag=1)
    wire = codec.encode(pdu)
    assert wire[4] == 7  # TotalAHSLength: 20-byte extended CDB AHS + 8-byte bidi AHS
    assert wire[32:48] == cdb[:16]
    assert wire[48:68] == bytes.fromhex("0011 01 00") + cdb[16:]
    assert wire[68:76] == bytes.fromhex("0005 02 00 0000004d")
    decoded = codec.decode(wire)
    assert decoded == pdu
    assert decoded.ahs == b""  # canonical AHS is re-derived, not kept
    assert decoded.cdb == cdb


def test_non_canonical_ahs_is_kept_verbatim() -> None:
    odd = bytes.fromhex("0003 7f 00 010203 00")  # an unknown AHSType, padded to 8
    pdu = ScsiCommand(ahs=odd, cdb=READ10)
    decoded = codec.decode(codec.encode(pdu))
    assert decoded.ahs == odd
    assert codec.encode(decoded) == codec.encode(pdu)


def test_short_cdb_is_padded_to_sixteen_bytes() -> None:
    assert ScsiCommand(cdb=READ10).cdb == READ10 + bytes(6)


def test_lun_addressing_round_trips() -> None:
    assert codec.lun_to_wire(0) == 0
    assert codec.lun_to_wire(2).to_bytes(8, "big").hex() == "0002000000000000"
    assert codec.lun_to_wire(300).to_bytes(8, "big").hex() == "412c000000000000"
    for lun in (0, 1, 255, 256, 16383):
        assert codec.lun_from_wire(codec.lun_to_wire(lun)) == lun


def test_no_tag_is_the_reserved_value() -> None:
    assert NO_TAG == 0xFFFFFFFF
