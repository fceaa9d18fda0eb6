"""Encode/decode cost of one iSCSI PDU: the fast codec against the scapy layers.

For the hot PDUs of a 4 KiB workload (SCSI Command READ(10), Data-In 4 KiB with
status, Data-Out 4 KiB, SCSI Response, R2T), with and without CRC32C digests,
prints microseconds per PDU and PDUs per second for ``codec.encode``,
``codec.decode`` and ``codec.read_pdu`` (from an asyncio stream fed 64 PDUs at a
time, as one large socket read would), and for scapy's
``bytes(layer)`` and ``ISCSI(raw)``. Best of ``--repeat`` runs.

    .venv/bin/python bench/wire_codec.py [--count 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from harness.iscsi import codec, layers

READ10 = bytes.fromhex("28000000100000000800")


def hot_pdus() -> dict[str, codec.Pdu]:
    lun = codec.lun_to_wire(1)
    return {
        "SCSI Command READ(10)": codec.ScsiCommand(
            read=True, lun=lun, initiator_task_tag=0x1234, expected_data_transfer_length=4096,
            cmd_sn=77, exp_stat_sn=66, cdb=READ10),
        "Data-In 4 KiB + status": codec.DataIn(
            status_present=True, lun=lun, initiator_task_tag=0x1234, stat_sn=66,
            exp_cmd_sn=78, max_cmd_sn=110, data=bytes(range(256)) * 16),
        "Data-Out 4 KiB": codec.DataOut(
            lun=lun, initiator_task_tag=0x1234, target_transfer_tag=9, exp_stat_sn=66,
            data=bytes(range(256)) * 16),
        "SCSI Response": codec.ScsiResponse(
            initiator_task_tag=0x1234, stat_sn=66, exp_cmd_sn=78, max_cmd_sn=110),
        "R2T": codec.R2T(lun=lun, initiator_task_tag=0x1234, target_transfer_tag=9, stat_sn=66,
                         exp_cmd_sn=78, max_cmd_sn=110, desired_data_transfer_length=65536),
    }


def per_call_us(function: Callable[[], object], count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.monotonic_ns()
        for _ in range(count):
            function()
        best = min(best, (time.monotonic_ns() - start) / 1e3 / count)
    return best


def read_pdu_us(wire: bytes, digests: bool, count: int, repeat: int) -> float:
    batch = 64  # PDUs per feed, like one large socket read
    chunk = wire * batch

    async def run() -> float:
        best = float("inf")
        for _ in range(repeat):
            reader = asyncio.StreamReader(limit=len(chunk) + 1)
            start = time.monotonic_ns()
            for _ in range(count // batch):
                reader.feed_data(chunk)
                for _ in range(batch):
                    await codec.read_pdu(reader, header_digest=digests, data_digest=digests,
                                         max_data_segment_length=1 << 20)
            best = min(best, (time.monotonic_ns() - start) / 1e3 / (count // batch * batch))
        return best

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scapy_count = max(1, args.count // 20)
    print("| PDU | digests | codec encode us | codec decode us | codec read_pdu us "
          "| scapy build us | scapy dissect us | decode speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for name, pdu in hot_pdus().items():
        for digests in (False, True):
            wire = codec.encode(pdu, header_digest=digests, data_digest=digests)
            layer = layers.ISCSI(wire, with_header_digest=digests, with_data_digest=digests)
            assert bytes(layer) == wire
            encode = per_call_us(
                lambda p=pdu, d=digests: codec.encode(p, header_digest=d, data_digest=d),
                args.count, args.repeat)
            decode = per_call_us(
                lambda w=wire, d=digests: codec.decode(w, header_digest=d, data_digest=d),
                args.count, args.repeat)
            stream = read_pdu_us(wire, digests, args.count, args.repeat)
            build = per_call_us(lambda lay=layer: bytes(lay.copy()), scapy_count, args.repeat)
            dissect = per_call_us(
                lambda w=wire, d=digests: layers.ISCSI(w, with_header_digest=d,
                                                       with_data_digest=d),
                scapy_count, args.repeat)
            print(f"| {name} | {'CRC32C' if digests else 'none'} | {encode:.2f} | {decode:.2f} "
                  f"| {stream:.2f} | {build:.0f} | {dissect:.0f} | {dissect / decode:.0f}x |")


if __name__ == "__main__":
    main()
