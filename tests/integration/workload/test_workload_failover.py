"""A real failover under the workload: MPIO over two proxied paths to the reference
target, one path cut mid-run and healed, the iSCSI traffic captured on loopback.
Nothing acknowledged is lost, reads stay fresh, the history and the capture both
measure the failover on the surviving path and the heal on both paths."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from harness.checks.integrity import check_image
from harness.checks.packet_timing import compare_with_history, read_pdus, wire_timing
from harness.checks.register import check_reads
from harness.checks.timing import measure
from harness.initiator.mpio.timers import MpioTimers
from harness.iscsi.names import parse_iscsi_url
from harness.lab.proxy import PASS, FaultProxy, LinkSpec, LinkState
from harness.report.timeline import plot_timeline
from harness.workload.generator import WorkloadSpec
from harness.workload.history import History, HistoryHeader, load_history
from harness.workload.iscsi_device import mirror_path_events, open_iscsi_device
from harness.workload.writers import Workload

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

TIMERS = MpioTimers(noop_out_interval_s=0.5, noop_out_timeout_s=1.0, link_down_time_s=0.2,
                    replacement_timeout_s=None, retry_interval_s=0.05,
                    delay_between_reconnect_s=0.2, pdo_remove_period_s=5.0,
                    disk_timeout_s=5.0, login_timeout_s=5.0)


def test_cut_path_under_load(reference_target, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("capturing loopback traffic needs root (scapy AsyncSniffer on lo)")
    from scapy.layers.l2 import Ether
    from scapy.sendrecv import AsyncSniffer
    from scapy.utils import wrpcap

    hist_path = tmp_path / "h.jsonl"
    pcap = tmp_path / "run.pcap"

    async def body():
        proxy = FaultProxy([LinkSpec(f"p{i}", "127.0.0.1", 0, host, port)
                            for i, (host, port) in enumerate(reference_target.portals)])
        await proxy.start()
        ports = [proxy.link(f"p{i}").port for i in range(2)]
        sniffer = AsyncSniffer(iface="lo", filter=" or ".join(f"tcp port {p}" for p in ports),
                               store=True)
        sniffer.start()
        urls = [parse_iscsi_url(f"iscsi://127.0.0.1:{p}/{reference_target.iqn}/"
                                f"{reference_target.lun}") for p in ports]
        labels = [str(u).removeprefix("iscsi://") for u in urls]
        try:
            dev = await open_iscsi_device(urls, timers=TIMERS)
            header = HistoryHeader(seed=5, generation=0xFA11, block_size=4096,
                                   logical_block_size=dev.block_size, num_blocks=dev.num_blocks,
                                   device="mpio via proxy", initial="zero",
                                   start_ns=time.monotonic_ns(), wall_clock=time.time())
            with History(hist_path, header) as history:
                unsubscribe = mirror_path_events(dev, history)
                spec = WorkloadSpec(seed=5, writers=2, queue_depth=2, duration=7.0,
                                    read_ratio=0.3, rate=250, region_length=4 << 20)
                workload = Workload(dev, spec, history)
                task = asyncio.create_task(workload.run())
                await asyncio.sleep(1.5)
                history.fault_start("cut p0", paths=[labels[0]])
                proxy.set_state(["p0"], LinkState(mode="cut"))
                await asyncio.sleep(2.0)
                proxy.set_state(["p0"], PASS)
                history.fault_stop("cut p0")
                result = await task
                unsubscribe()
            await dev.close()
        finally:
            packets = sniffer.stop()
            await proxy.close()
        frames = []
        for pkt in packets:  # lo frames carry an all-zero Ethernet header
            frame = pkt if isinstance(pkt, Ether) else Ether(bytes(pkt))
            frame.time = pkt.time
            frames.append(frame)
        wrpcap(str(pcap), frames)
        return result, ports, labels

    result, ports, labels = asyncio.run(asyncio.wait_for(body(), 120))
    assert result.ops > 500 and result.fail == 0
    history = load_history(hist_path)
    assert check_image(history, reference_target.image).valid
    assert check_reads(history).valid
    assert any(e.path == labels[0] and e.state == "failed" for e in history.paths)

    report = measure(history)
    (fault,) = report.faults
    assert fault.failover_s is not None and fault.failover_path == labels[1]
    assert set(fault.heal_per_path_s) == set(labels)
    assert fault.heal_to_all_paths_s is not None

    wire = wire_timing(read_pdus(pcap, ports=ports), history)
    (wf,) = wire.faults
    assert wire.paths == sorted(f"127.0.0.1:{p}" for p in ports)
    assert wf.failed_paths == [f"127.0.0.1:{ports[0]}"]
    assert wf.failover_path == f"127.0.0.1:{ports[1]}"
    assert wf.heal_to_all_paths_s is not None
    comparison = compare_with_history(wire, report, tolerance_s=0.005)
    print("wire vs history:", comparison.stats["comparison"])
    assert plot_timeline(history, tmp_path / "timeline")[0].stat().st_size > 0
