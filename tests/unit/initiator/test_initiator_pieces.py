"""Small pure pieces of the initiator: pcap frames, URLs, SendTargets text, serial numbers."""

from __future__ import annotations

import argparse

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.utils import rdpcap

from harness.cli.probe_command import ProbeError, _chap
from harness.initiator.discovery import Portal, parse_send_targets
from harness.initiator.errors import ProtocolError
from harness.initiator.recorder import MAX_SEGMENT, PcapRecorder
from harness.initiator.session import serial_lt
from harness.iscsi import codec
from harness.iscsi.initiator_pdus import NopOut
from harness.iscsi.names import IscsiUrlError, parse_iscsi_url, random_isid
from harness.iscsi.target_pdus import DataIn


def test_recorded_frames_have_valid_checksums_and_split_large_pdus(tmp_path) -> None:
    path = tmp_path / "x.pcap"
    small = codec.encode(NopOut(initiator_task_tag=1))
    large = codec.encode(DataIn(initiator_task_tag=1, data=bytes(range(256)) * 600))
    with PcapRecorder(path, keep_records=True) as recorder:
        stream = recorder.stream(("127.0.0.1", 40000), ("127.0.0.2", 3260))
        stream.sent(small)
        stream.received(large)
    packets = rdpcap(str(path))
    assert [p[TCP].flags for p in packets[:3]] == ["S", "SA", "A"]
    payload = [p for p in packets if len(p[TCP].payload)]
    assert len(payload) == 1 + -(-len(large) // MAX_SEGMENT)
    assert bytes(payload[0][TCP].payload) == small
    assert b"".join(bytes(p[TCP].payload) for p in payload[1:]) == large
    for packet in packets:
        ip, tcp = packet[IP], packet[TCP]
        ip_sum, tcp_sum = ip.chksum, tcp.chksum
        del ip.chksum, tcp.chksum
        rebuilt = IP(bytes(ip))
        assert (rebuilt.chksum, rebuilt[TCP].chksum) == (ip_sum, tcp_sum)
    assert [r.sent for r in recorder.records] == [True, False]
    assert packets[3].time > 1_600_000_000  # real wall-clock timestamps


def test_recorder_speaks_ipv6(tmp_path) -> None:
    path = tmp_path / "v6.pcap"
    with PcapRecorder(path) as recorder:
        recorder.stream(("::1", 40000), ("::1", 3260)).sent(codec.encode(NopOut()))
    packets = rdpcap(str(path))
    assert all(IPv6 in p for p in packets)
    frame = packets[3]
    tcp_sum = frame[TCP].chksum
    del frame[TCP].chksum
    assert IPv6(bytes(frame[IPv6]))[TCP].chksum == tcp_sum


@pytest.mark.parametrize(("url", "expected"), [
    ("iscsi://10.0.0.1", ("10.0.0.1", 3260, None, None, None, None)),
    ("iscsi://u:s%40x@h:3261/iqn.2026-11.a:b/3", ("h", 3261, "iqn.2026-11.a:b", 3, "u", "s@x")),
    ("iscsi://[::1]:3262/iqn.x", ("::1", 3262, "iqn.x", None, None, None)),
])
def test_probe_urls(url: str, expected: tuple) -> None:
    parsed = parse_iscsi_url(url, partial=True)
    assert (parsed.host, parsed.port, parsed.target, parsed.lun, parsed.user,
            parsed.secret) == expected


@pytest.mark.parametrize("url", ["http://h/x/1", "iscsi:///x/1", "iscsi://h/x/one",
                                 "iscsi://h/x/1/2", "iscsi://u:pw42@h:99999/x/1"])
def test_bad_probe_urls_are_one_line_errors_without_secrets(url: str) -> None:
    with pytest.raises(IscsiUrlError) as info:
        parse_iscsi_url(url, partial=True)
    assert "\n" not in str(info.value) and "pw42" not in str(info.value)


def test_probe_chap_needs_user_and_secret_together() -> None:
    args = argparse.Namespace(chap_user="u", chap_secret=None, mutual_user=None,
                              mutual_secret=None)
    with pytest.raises(ProbeError, match="both"):
        _chap(parse_iscsi_url("iscsi://h/x/1"), args)
    args.chap_secret = "s"
    assert _chap(parse_iscsi_url("iscsi://h/x/1"), args).user == "u"


def test_send_targets_answer_groups_portals_under_names() -> None:
    found = parse_send_targets([
        ("TargetName", "iqn.a"), ("TargetAddress", "10.0.0.1:3260,1"),
        ("TargetAddress", "[fe80::1]:3261,2"), ("TargetName", "iqn.b"),
    ])
    assert [t.name for t in found] == ["iqn.a", "iqn.b"]
    assert found[0].portals == (Portal("10.0.0.1", 3260, 1), Portal("fe80::1", 3261, 2))
    assert found[1].portals == ()
    assert str(found[0].portals[1]) == "[fe80::1]:3261,2"
    with pytest.raises(ProtocolError):
        parse_send_targets([("TargetAddress", "10.0.0.1:3260,1")])
    with pytest.raises(ProtocolError):
        parse_send_targets([("TargetName", "x"), ("TargetAddress", "h:port,1")])


def test_serial_number_arithmetic_wraps() -> None:
    assert serial_lt(1, 2) and not serial_lt(2, 1) and not serial_lt(5, 5)
    assert serial_lt(0xFFFFFFFF, 0)  # wraps: 2^32-1 precedes 0
    assert not serial_lt(0, 0xFFFFFFFF)


def test_random_isid_has_the_random_format() -> None:
    isids = {random_isid() for _ in range(50)}
    assert len(isids) == 50
    assert all(isid >> 46 == 0b10 and isid < 1 << 48 for isid in isids)
