"""A crafted pcap of a two-path run, one path cut, beside the history of the same run.

``build(tmp_path)`` writes both (I/O every 10 ms over paths A and B; A cut at 1 s,
healed at 2 s; B carries on from 1.3 s); ``Wire`` crafts the iSCSI packets.
"""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.packet import Raw
from scapy.utils import wrpcap

from harness.iscsi.layers import (
    ISCSIDataIn,
    ISCSINopIn,
    ISCSINopOut,
    ISCSIScsiCommand,
    ISCSIScsiResponse,
)
from harness.workload.history import History, HistoryHeader, load_history

WALL, START = 1_700_000_000.0, 5_000_000_000
MS = 1_000_000
PATHS = {"A": ("127.0.0.2", 40001), "B": ("127.0.0.3", 40002)}
LABEL = {k: f"{ip}:3260/iqn.2026-11.test:disk/0" for k, (ip, _) in PATHS.items()}


class Wire:
    def __init__(self):
        self.packets = []
        self.seq = {}
        self.itt = 0

    def send(self, path, t_ns, pdu, *, to_target):
        ip, iport = PATHS[path]
        src, dst = ("127.0.0.1", ip) if to_target else (ip, "127.0.0.1")
        sport, dport = (iport, 3260) if to_target else (3260, iport)
        payload = bytes(pdu)
        seq = self.seq.get((src, sport), 1000)
        self.seq[(src, sport)] = seq + len(payload)
        pkt = IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="PA", seq=seq) / Raw(
            payload)
        pkt.time = WALL + (t_ns - START) / 1e9
        self.packets.append(pkt)

    def command(self, path, sent_ns, done_ns=None, *, read=False):
        self.itt += 1
        cdb = bytes([0x88 if read else 0x8A]) + bytes(15)
        self.send(path, sent_ns, ISCSIScsiCommand(initiator_task_tag=self.itt, read=int(read),
                                                  write=int(not read), cdb=cdb), to_target=True)
        if done_ns is None:
            return
        if read:
            self.send(path, done_ns, ISCSIDataIn(initiator_task_tag=self.itt, status_present=1,
                                                 data=bytes(512)), to_target=False)
        else:
            self.send(path, done_ns, ISCSIScsiResponse(initiator_task_tag=self.itt),
                      to_target=False)


def build(tmp_path, *, history_skew_ns=0):
    """I/O every 10 ms over A and B; A cut at 1 s, healed at 2 s; B carries on from 1.3 s."""
    wire = Wire()
    header = HistoryHeader(seed=1, generation=1, block_size=4096, logical_block_size=512,
                           num_blocks=64, device="mpio", initial="zero", start_ns=START,
                           wall_clock=WALL)
    hist_path = tmp_path / "h.jsonl"
    with History(hist_path, header) as h:
        def io(path, t, latency=2 * MS, outcome="ok", read=False):
            oid = h.invoke(0, "read" if read else "write", 0, 8, writer=0, seq=t,
                           time_ns=START + t)
            done = START + t + latency
            wire.command(path, START + t, done if outcome == "ok" else None, read=read)
            h.complete(oid, outcome, invoke_ns=START + t, path=LABEL[path],
                       time_ns=done + 100_000 + history_skew_ns)

        for i in range(100):
            io("A" if i % 2 else "B", i * 10 * MS, read=i % 3 == 0)
        h.fault_start("cut A", time_ns=START + 1000 * MS, paths=[LABEL["A"]])
        io("A", 1000 * MS, latency=400 * MS, outcome="info")
        wire.send("A", START + 1050 * MS, ISCSINopOut(initiator_task_tag=900), to_target=True)
        for t in range(1300, 2000, 10):
            io("B", t * MS)
        h.fault_stop("cut A", time_ns=START + 2000 * MS)
        wire.itt += 1  # path recovery: TEST UNIT READY on A completes before any data does
        wire.send("A", START + 2050 * MS, ISCSIScsiCommand(initiator_task_tag=wire.itt,
                                                           cdb=bytes(16)), to_target=True)
        wire.send("A", START + 2051 * MS, ISCSIScsiResponse(initiator_task_tag=wire.itt),
                  to_target=False)
        for t in range(2000, 2500, 10):
            io("A" if t >= 2150 and t % 20 else "B", t * MS)
        wire.send("B", START + 2400 * MS, ISCSINopOut(initiator_task_tag=901), to_target=True)
        wire.send("B", START + 2401 * MS, ISCSINopIn(initiator_task_tag=901), to_target=False)
    pcap = tmp_path / "run.pcap"
    wrpcap(str(pcap), wire.packets)
    return pcap, load_history(hist_path)
