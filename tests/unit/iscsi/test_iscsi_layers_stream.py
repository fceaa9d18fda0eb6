"""Dissecting iSCSI in TCP: port binding, several PDUs per segment, and TCPSession
reassembly of PDUs spanning segments, with digests switched on after login."""

from __future__ import annotations

import itertools

from scapy.layers.inet import IP, TCP
from scapy.packet import Packet, Raw
from scapy.sendrecv import sniff
from scapy.sessions import TCPSession

from harness.iscsi import codec, layers
from harness.iscsi.keys import encode_keys

INITIATOR, TARGET = ("127.0.0.1", 40000), ("127.0.0.2", 3260)


class TcpFlow:
    """Builds the IP/TCP packets of one connection, both directions, in order."""

    def __init__(self, target_port: int = TARGET[1]) -> None:
        self.target_port = target_port
        self.seq = {True: 1000, False: 5000}
        self.packets: list[Packet] = []

    def send(self, payload: bytes, *, from_initiator: bool, cuts: tuple[int, ...] = ()) -> None:
        edges = [0, *cuts, len(payload)]
        for start, end in itertools.pairwise(edges):
            src, dst = (INITIATOR, (TARGET[0], self.target_port)) if from_initiator else (
                (TARGET[0], self.target_port), INITIATOR)
            segment = IP(src=src[0], dst=dst[0]) / TCP(
                sport=src[1], dport=dst[1], flags="PA", seq=self.seq[from_initiator],
                ack=self.seq[not from_initiator]) / Raw(payload[start:end])
            self.seq[from_initiator] += end - start
            self.packets.append(IP(bytes(segment)))


def test_port_3260_dissects_as_iscsi_in_both_directions() -> None:
    wire = codec.encode(codec.NopOut(initiator_task_tag=7))
    out = IP(bytes(IP() / TCP(sport=1234, dport=3260) / Raw(wire)))
    back = IP(bytes(IP() / TCP(sport=3260, dport=1234) / Raw(codec.encode(codec.NopIn()))))
    assert isinstance(out[TCP].payload, layers.ISCSINopOut)
    assert out[layers.ISCSI].initiator_task_tag == 7
    assert isinstance(back[TCP].payload, layers.ISCSINopIn)


def test_bind_port_adds_any_port() -> None:
    wire = codec.encode(codec.R2T(r2t_sn=3))
    before = IP(bytes(IP() / TCP(sport=1234, dport=13260) / Raw(wire)))
    assert not before.haslayer(layers.ISCSI)
    layers.bind_port(13260)
    after = IP(bytes(IP() / TCP(sport=13260, dport=1234) / Raw(wire)))
    assert after[layers.ISCSIR2T].r2t_sn == 3


def test_several_pdus_in_one_segment_chain_and_a_partial_tail_is_padding() -> None:
    first = codec.encode(codec.DataIn(initiator_task_tag=1, data=b"x" * 5))
    second = codec.encode(codec.ScsiResponse(initiator_task_tag=1, status=0))
    third = codec.encode(codec.NopIn(data=b"ping"))
    dissected = layers.ISCSI(first + second + third[:30])
    assert [type(p) for p in layers.iter_pdus(dissected)] == [layers.ISCSIDataIn,
                                                         layers.ISCSIScsiResponse]
    assert bytes(dissected[layers.ISCSIScsiResponse].payload) == third[:30]


def test_tcp_session_reassembles_and_follows_negotiated_digests() -> None:
    login_request = codec.LoginRequest(
        transit=True, csg=1, nsg=3, isid=0x400001370000, cmd_sn=1,
        data=encode_keys({"HeaderDigest": "CRC32C,None", "DataDigest": "CRC32C,None"}))
    login_response = codec.LoginResponse(
        transit=True, csg=1, nsg=3, isid=0x400001370000, tsih=1, stat_sn=1, exp_cmd_sn=1,
        max_cmd_sn=2, data=encode_keys({"HeaderDigest": "CRC32C", "DataDigest": "CRC32C"}))
    write = codec.ScsiCommand(write=True, initiator_task_tag=0x10, cmd_sn=1,
                              expected_data_transfer_length=700, cdb=bytes.fromhex("2a") + bytes(9),
                              data=bytes(range(256)) * 2 + b"tail")
    response = codec.ScsiResponse(initiator_task_tag=0x10, stat_sn=2, exp_cmd_sn=2, max_cmd_sn=3)
    flow = TcpFlow()
    flow.send(codec.encode(login_request), from_initiator=True, cuts=(20,))
    flow.send(codec.encode(login_response), from_initiator=False)
    write_wire = codec.encode(write, header_digest=True, data_digest=True)
    flow.send(write_wire, from_initiator=True, cuts=(10, 50, 300))
    nop = codec.encode(codec.NopIn(data=b"abc"), header_digest=True, data_digest=True)
    flow.send(codec.encode(response, header_digest=True, data_digest=True) + nop,
              from_initiator=False)

    dissected = sniff(offline=flow.packets, session=TCPSession)
    pdus = [pdu for packet in dissected for pdu in layers.iter_pdus(packet)]
    assert [type(p) for p in pdus] == [layers.ISCSILoginRequest, layers.ISCSILoginResponse,
                                       layers.ISCSIScsiCommand, layers.ISCSIScsiResponse,
                                       layers.ISCSINopIn]
    command = pdus[2]
    assert command.with_header_digest and command.with_data_digest
    assert command.data == write.data and command.expected_data_transfer_length == 700
    assert bytes(command) == write_wire  # digests recomputed equal the captured ones
    assert pdus[3].stat_sn == 2 and pdus[4].data == b"abc"


def test_text_keys_and_whole_cdb_helpers() -> None:
    login = layers.ISCSI(codec.encode(codec.LoginRequest(
        data=encode_keys({"InitiatorName": "iqn.x", "SessionType": "Normal"}))))
    assert login.text_keys() == [("InitiatorName", "iqn.x"), ("SessionType", "Normal")]
    continued = layers.ISCSI(codec.encode(codec.TextRequest(
        continue_=True, final=False, data=b"SendTargets=All\x00TargetNa")))
    assert continued.text_keys() == [("SendTargets", "All")]
    cdb = bytes(range(1, 33))
    command = layers.ISCSI(codec.encode(codec.ScsiCommand(cdb=cdb)))
    assert command.whole_cdb == cdb and bytes(command.cdb) == cdb[:16]
