"""Capturing real iSCSI conversations on loopback for the dissection tests.

``capture_conversation(port, commands)`` sniffs TCP traffic to and from ``port``
on ``lo`` (a kernel BPF filter on the port) while each command runs to
completion, then waits (tenacity, with a deadline) until every connection it saw
has been closed by its client, so no PDU is still in the sniffer's buffer when
the capture is returned. Linux hands a packet sniffed on ``lo`` to the socket
twice (outgoing and incoming); the copies are dropped here.

``dissect(packets, port)`` runs a capture through scapy's TCPSession with the
harness layers and returns every PDU with its connection, direction and bytes.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import tenacity
from scapy.config import conf
from scapy.layers.inet import IP, TCP
from scapy.packet import Packet
from scapy.sendrecv import AsyncSniffer, sniff
from scapy.sessions import TCPSession

from harness.iscsi import layers
from harness.iscsi.keys import decode_keys

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
CAPTURE_BUFFER = 64 << 20


class CaptureIncomplete(Exception):
    pass


def unique_packets(packets: Sequence[Packet]) -> list[Packet]:
    """``packets`` without the second copy loopback delivers of each IP packet."""
    seen: set[bytes] = set()
    kept = []
    for packet in packets:
        key = bytes(packet[IP])
        if key not in seen:
            seen.add(key)
            kept.append(packet)
    return kept


def _closed_by_clients(packets: Sequence[Packet], port: int) -> None:
    """Every connection has been closed by its client: the client only exits after
    its last PDU exchange, and the sniffer sees packets in order, so everything
    before the client's FIN is in the capture."""
    opened: set[int] = set()
    closed: set[int] = set()
    for packet in packets:
        tcp = packet[TCP]
        if tcp.dport == port and tcp.flags.S and not tcp.flags.A:
            opened.add(tcp.sport)
        if tcp.dport == port and (tcp.flags.F or tcp.flags.R):
            closed.add(tcp.sport)
    open_ones = opened - closed
    if not opened or open_ones:
        seen = [f"{p[TCP].sport}>{p[TCP].dport}:{p[TCP].flags}" for p in packets
                if {p[TCP].sport, p[TCP].dport} & open_ones]
        raise CaptureIncomplete(
            f"{len(opened)} connections seen, still open: {sorted(open_ones)} ({seen[-6:]})")


def capture_conversation(port: int, commands: Sequence[Sequence[str]], *,
                         timeout: float = 30.0) -> tuple[list[Packet], list[str]]:
    """Packets to/from ``port`` while ``commands`` run; returns (packets, outputs)."""
    packets: list[Packet] = []
    started = threading.Event()
    listener = conf.L2listen(iface="lo", filter=f"tcp port {port}")
    # A packet socket drops what does not fit its buffer while the Python thread
    # is busy or starved; a big buffer (root may force it) keeps the capture whole.
    listener.ins.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, CAPTURE_BUFFER)
    sniffer = AsyncSniffer(opened_socket=listener, store=False, prn=packets.append,
                           started_callback=started.set)
    sniffer.start()
    outputs: list[str] = []
    try:
        if not started.wait(timeout):
            raise CaptureIncomplete(f"sniffer on lo did not start within {timeout} s")
        for command in commands:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                    check=False)
            if result.returncode != 0:
                raise CaptureIncomplete(
                    f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
            outputs.append(result.stdout)
        tenacity.Retrying(
            stop=tenacity.stop_after_delay(timeout),
            wait=tenacity.wait_fixed(0.05),
            retry=tenacity.retry_if_exception_type(CaptureIncomplete),
            reraise=True,
        )(lambda: _closed_by_clients(list(packets), port))
    finally:
        if sniffer.running:
            sniffer.stop()
        listener.close()
    return unique_packets(packets), outputs


@dataclass
class CapturedPdu:
    """One PDU of a capture: which connection, which way, the layer and its bytes."""

    connection: int  # the initiator's TCP port
    from_initiator: bool
    layer: layers.ISCSI
    raw: bytes

    @property
    def keys(self) -> dict[str, str]:
        return dict(decode_keys(bytes(self.layer.data or b"")))


def tcp_streams(packets: Sequence[Packet], port: int) -> dict[tuple[int, bool], bytes]:
    """The payload byte stream of each (initiator port, from initiator) direction,
    in sequence order, retransmitted bytes counted once."""
    streams: dict[tuple[int, bool], bytearray] = {}
    next_seq: dict[tuple[int, bool], int] = {}
    for packet in packets:
        tcp = packet[TCP]
        key = (tcp.sport, True) if tcp.dport == port else (tcp.dport, False)
        payload = bytes(tcp.payload)
        if tcp.flags.S:
            next_seq[key] = tcp.seq + 1
            continue
        if not payload or key not in next_seq:
            continue
        skip = next_seq[key] - tcp.seq
        if skip < len(payload):
            streams.setdefault(key, bytearray()).extend(payload[max(skip, 0):])
            next_seq[key] = tcp.seq + len(payload)
    return {key: bytes(value) for key, value in streams.items()}


def dissect(packets: Sequence[Packet], port: int) -> tuple[list[CapturedPdu], dict[bool, int]]:
    """The PDUs of every connection to ``port`` in capture order, each with its exact
    bytes cut from the TCP stream, and the stream bytes per direction (True: from
    the initiator)."""
    layers.bind_port(port)
    streams = tcp_streams(packets, port)
    offsets = dict.fromkeys(streams, 0)
    pdus = []
    for packet in sniff(offline=list(packets), session=TCPSession):
        if TCP not in packet:
            continue
        from_initiator = packet[TCP].dport == port
        connection = packet[TCP].sport if from_initiator else packet[TCP].dport
        key = (connection, from_initiator)
        for layer in layers.iter_pdus(packet):
            start = offsets[key]
            length = layer.pdu_length(streams[key][start:])
            assert length is not None, f"stream {key} ends inside a PDU header"
            offsets[key] = start + length
            pdus.append(CapturedPdu(connection, from_initiator, layer,
                                    streams[key][start : start + length]))
    payload_bytes = {True: 0, False: 0}
    for (_, from_initiator), stream in streams.items():
        payload_bytes[from_initiator] += len(stream)
    return pdus, payload_bytes
