"""The PDU recording: the scapy dissection of the pcap must match what the initiator
sent and received (every PDU, in order, with the same opcode and fields)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.sendrecv import sniff
from scapy.sessions import TCPSession

from harness.initiator.discovery import send_targets
from harness.initiator.recorder import PcapRecorder
from harness.initiator.session import Session
from harness.iscsi.layers import ISCSI, bind_port, iter_pdus
from harness.peers.tgtd import TgtdTarget

COMPARED_FIELDS = ("initiator_task_tag", "cmd_sn", "exp_stat_sn", "stat_sn", "exp_cmd_sn",
                   "max_cmd_sn", "data_sn", "buffer_offset", "target_transfer_tag", "status",
                   "response", "expected_data_transfer_length", "residual_count", "r2t_sn",
                   "desired_data_transfer_length", "tsih", "isid", "status_class")


def dissect(path: Path, port: int) -> list[tuple[bool, Any]]:
    """(sent by the initiator?, iSCSI layer) for every PDU in the capture, in order."""
    bind_port(port)
    found: list[tuple[bool, Any]] = []
    for packet in sniff(offline=str(path), session=TCPSession, quiet=True):
        if ISCSI not in packet:
            continue
        sent = packet[TCP].dport == port
        found.extend((sent, pdu) for pdu in iter_pdus(packet))
    return found


def record_session(target: TgtdTarget, path: Path, data: bytes, **kwargs: Any) -> PcapRecorder:
    async def body() -> None:
        with PcapRecorder(path, keep_records=True) as recorder:
            await send_targets(target.host, target.port, recorder=recorder)
            async with Session(target.host, target.port, target.iqn, lun=target.lun,
                               recorder=recorder, **kwargs) as s:
                await s.ping(b"ping")
                await s.write(16, data)
                assert await s.read(16, len(data) // 512) == data
                await s.lun_reset()
                await s.test_unit_ready()
            holder.append(recorder)

    holder: list[PcapRecorder] = []
    asyncio.run(asyncio.wait_for(body(), 60))
    return holder[0]


@pytest.mark.parametrize("digests", [False, True], ids=["plain", "crc32c"])
def test_dissection_matches_what_the_initiator_saw(tgtd_target: TgtdTarget, tmp_path: Path,
                                                   settings, digests: bool) -> None:
    prefs = {}
    if digests:
        tgtd_target.set_param("HeaderDigest", "CRC32C")
        tgtd_target.set_param("DataDigest", "CRC32C")
        prefs = {"HeaderDigest": "CRC32C,None", "DataDigest": "CRC32C,None"}
    data = random.Random(settings.seed).randbytes(300 * 1024)  # several Data-In/Out PDUs
    path = tmp_path / "session.pcap"
    recorder = record_session(tgtd_target, path, data, preferences=prefs)
    dissected = dissect(path, tgtd_target.port)
    records = recorder.records
    assert len(dissected) == len(records) > 20
    opcodes = {r.pdu.opcode for r in records if r.pdu is not None}
    assert {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25,
            0x26, 0x31} <= opcodes
    for index, ((sent, layer), record) in enumerate(zip(dissected, records, strict=True)):
        pdu = record.pdu
        assert pdu is not None
        where = f"PDU #{index} ({type(pdu).__name__})"
        assert sent == record.sent, where
        assert layer.opcode == pdu.opcode, where
        assert bytes(layer) == record.raw, where  # scapy rebuilds the exact bytes
        for name in COMPARED_FIELDS:
            if name in pdu.fields and layer.get_field(name) is not None:
                assert getattr(layer, name) == getattr(pdu, name), f"{where} field {name}"
        assert bytes(layer.data or b"") == pdu.data, where
        if digests and pdu.opcode in (0x01, 0x25) and pdu.data:
            assert layer.data_digest is not None


def test_frames_carry_real_addresses_and_consistent_sequence_numbers(
        tgtd_target: TgtdTarget, tmp_path: Path) -> None:
    path = tmp_path / "tcp.pcap"
    record_session(tgtd_target, path, bytes(4096))
    expected_next: dict[tuple[str, int], int] = {}
    segments = 0
    for packet in sniff(offline=str(path), quiet=True):
        ip, tcp = packet[IP], packet[TCP]
        assert {ip.src, ip.dst} == {tgtd_target.host}
        assert tgtd_target.port in (tcp.sport, tcp.dport)
        key = (ip.src, tcp.sport)
        if tcp.flags.S:
            expected_next[key] = (tcp.seq + 1) & 0xFFFFFFFF
            continue
        assert tcp.seq == expected_next[key], "TCP sequence numbers have a gap"
        payload = len(tcp.payload)
        expected_next[key] = (tcp.seq + payload + (1 if tcp.flags.F else 0)) & 0xFFFFFFFF
        segments += bool(payload)
    assert segments > 10
