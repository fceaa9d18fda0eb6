"""PcapRecorder: every PDU a session sends and receives, written to a pcap file.

The initiator talks through an ordinary TCP socket, so there is nothing to sniff
without privileges; instead the session hands the recorder the exact bytes of
each PDU as it goes out or comes in, with the wall-clock time (nanosecond pcap).
The recorder wraps them in synthesised Ethernet/IP/TCP frames between the real
socket addresses, with consistent sequence and acknowledgement numbers, a
three-way handshake at the start and a FIN at the end, so Wireshark's iSCSI
dissector and the harness's scapy layers (``harness.iscsi.layers``) reassemble
and dissect the stream as if it had been captured on the wire. PDUs larger than
one IP datagram are split into several TCP segments.

With ``keep_records`` the recorder also keeps, per PDU, the direction,
timestamp, raw bytes and the decoded PDU the session acted on, so a test can
compare the dissection of the file with what the initiator believes it sent and
received.
"""

from __future__ import annotations

import ipaddress
import itertools
import secrets
import struct
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from harness.errors import SplitbrainError
from harness.iscsi.pdu import Pdu

PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
MAX_SEGMENT = 65000  # TCP payload per synthesised frame (fits an IPv4 datagram)

_INITIATOR_MAC = bytes.fromhex("020000000001")
_TARGET_MAC = bytes.fromhex("020000000002")

_SYN, _ACK, _PSH, _FIN = 0x02, 0x10, 0x08, 0x01


class RecorderError(SplitbrainError):
    """The pcap file cannot be written."""


@dataclass(frozen=True)
class RecordedPdu:
    """One PDU as the session sent (``sent``) or received it."""

    sent: bool
    timestamp_ns: int
    raw: bytes
    pdu: Pdu | None


def _checksum(data: bytes) -> bytes:
    """The Internet checksum (RFC 1071) of ``data``, as the 2 bytes to store."""
    if len(data) & 1:
        data += b"\x00"
    total = sum(array("H", data))  # native order; storing natively keeps it correct
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return struct.pack("=H", ~total & 0xFFFF)


class TcpStream:
    """The frames of one TCP connection (initiator side first)."""

    def __init__(self, recorder: PcapRecorder, local: tuple[str, int],
                 remote: tuple[str, int]) -> None:
        self._recorder = recorder
        self.local = local
        self.remote = remote
        local_ip = ipaddress.ip_address(local[0])
        remote_ip = ipaddress.ip_address(remote[0])
        if local_ip.version != remote_ip.version:  # e.g. ::ffff:127.0.0.1 vs 127.0.0.1
            local_ip = ipaddress.ip_address(getattr(local_ip, "ipv4_mapped", None) or local_ip)
            remote_ip = ipaddress.ip_address(getattr(remote_ip, "ipv4_mapped", None)
                                             or remote_ip)
        self._v6 = remote_ip.version == 6
        self._ip = (local_ip.packed, remote_ip.packed)
        self._seq = [secrets.randbits(32), secrets.randbits(32)]  # initiator, target
        self._ip_id = itertools.count(secrets.randbits(16))
        self.closed = False
        now = time.time_ns()
        self._frame(0, _SYN, b"", now, syn=True)
        self._frame(1, _SYN | _ACK, b"", now, syn=True)
        self._frame(0, _ACK, b"", now)

    def sent(self, raw: bytes, pdu: Pdu | None = None) -> None:
        self._pdu(0, raw, pdu)

    def received(self, raw: bytes, pdu: Pdu | None = None) -> None:
        self._pdu(1, raw, pdu)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        now = time.time_ns()
        self._frame(0, _FIN | _ACK, b"", now, fin=True)
        self._frame(1, _FIN | _ACK, b"", now, fin=True)
        self._frame(0, _ACK, b"", now)

    def _pdu(self, side: int, raw: bytes, pdu: Pdu | None) -> None:
        if self.closed:
            return
        now = time.time_ns()
        if self._recorder.keep_records:
            self._recorder.records.append(RecordedPdu(side == 0, now, bytes(raw), pdu))
        for start in range(0, len(raw), MAX_SEGMENT):
            self._frame(side, _PSH | _ACK, raw[start : start + MAX_SEGMENT], now)

    def _frame(self, side: int, flags: int, payload: bytes, ts_ns: int, *,
               syn: bool = False, fin: bool = False) -> None:
        src_ip, dst_ip = self._ip if side == 0 else self._ip[::-1]
        sport, dport = (self.local[1], self.remote[1]) if side == 0 else (
            self.remote[1], self.local[1])
        seq = self._seq[side]
        ack = self._seq[1 - side] if flags & _ACK else 0
        tcp_len = 20 + len(payload)
        header = struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
        if self._v6:
            pseudo = src_ip + dst_ip + struct.pack(">I3xB", tcp_len, 6)
        else:
            pseudo = src_ip + dst_ip + struct.pack(">xBH", 6, tcp_len)
        tcp = header[:16] + _checksum(pseudo + header + payload) + header[18:]
        if self._v6:
            ip = struct.pack(">IHBB", 0x60000000, tcp_len, 6, 64) + src_ip + dst_ip
            ethertype = 0x86DD
        else:
            ip_header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + tcp_len,
                                    next(self._ip_id) & 0xFFFF, 0x4000, 64, 6, 0, src_ip, dst_ip)
            ip = ip_header[:10] + _checksum(ip_header) + ip_header[12:]
            ethertype = 0x0800
        macs = (_TARGET_MAC + _INITIATOR_MAC) if side == 0 else (_INITIATOR_MAC + _TARGET_MAC)
        frame = macs + struct.pack(">H", ethertype) + ip + tcp + payload
        self._recorder._write(ts_ns, frame)
        self._seq[side] = (seq + len(payload) + (1 if syn or fin else 0)) & 0xFFFFFFFF


class PcapRecorder:
    """A pcap file (nanosecond timestamps, Ethernet link type) of one or more sessions."""

    def __init__(self, path: str | Path, *, keep_records: bool = False) -> None:
        self.path = Path(path)
        self.keep_records = keep_records
        self.records: list[RecordedPdu] = []
        """Every PDU with its decoded form, when ``keep_records`` (memory grows with the
        traffic, so it is off unless a test wants to compare)."""
        self._streams: list[TcpStream] = []
        try:
            self._file: BinaryIO | None = self.path.open("wb")
            self._file.write(struct.pack("=IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, SNAPLEN,
                                         LINKTYPE_ETHERNET))
        except OSError as exc:
            raise RecorderError(f"cannot write pcap {self.path}: {exc.strerror}; choose a "
                                "writable path") from None

    def stream(self, local: tuple[str, int], remote: tuple[str, int]) -> TcpStream:
        """Start recording a new TCP connection from ``local`` to ``remote``."""
        stream = TcpStream(self, local, remote)
        self._streams.append(stream)
        return stream

    def _write(self, ts_ns: int, frame: bytes) -> None:
        if self._file is None:
            return
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        length = len(frame)
        self._file.write(struct.pack("=IIII", sec, nsec, min(length, SNAPLEN), length))
        self._file.write(frame[:SNAPLEN])

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Close every stream still open (FIN frames) and the file."""
        for stream in self._streams:
            stream.close()
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> PcapRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

