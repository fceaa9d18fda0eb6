"""The cluster in the netns lab: nodes in their own namespaces, heartbeats on the heartbeat
bridge, and a live-migrated VM announced by a real gratuitous ARP seen from another host."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.sut import SystemUnderTest
from harness.cluster.lab_cluster import LabCluster, VmSpec
from harness.cluster.membership import HeartbeatSettings
from harness.lab.inventory import load
from harness.lab.netns_lab import NetnsLab

pytestmark = [pytest.mark.needs_root, pytest.mark.slow]

INVENTORY = Path(__file__).parents[3] / "fixtures" / "inventories" / "lab-netns.toml"
SNIFF = """
import json, sys
from scapy.layers.l2 import ARP
from scapy.sendrecv import sniff
ip, timeout, iface = sys.argv[1], float(sys.argv[2]), sys.argv[3]
def is_announce(p):
    return ARP in p and p[ARP].psrc == ip and p[ARP].op == 2
got = sniff(iface=iface, filter="arp", stop_filter=is_announce, timeout=timeout,
            started_callback=lambda: print("ready", flush=True))
print(json.dumps([{"op": p[ARP].op, "hwsrc": p[ARP].hwsrc, "psrc": p[ARP].psrc,
                   "dst": p.dst} for p in got if is_announce(p)]), flush=True)
"""


@pytest.fixture(scope="module")
def netns_sut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemUnderTest]:
    if os.geteuid() != 0:
        pytest.skip("the netns lab needs root (network namespaces)")
    for program, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(program) is None:
            pytest.skip(f"needs the Debian package {package} ({program})")
    inventory = load(INVENTORY)
    lab = NetnsLab(tmp_path_factory.mktemp("netns-cluster") / "lab")
    lab.up(inventory)
    try:
        yield SystemUnderTest(inventory, lab)
    finally:
        lab.down()


@pytest.fixture
def netns_cluster(netns_sut: SystemUnderTest, tmp_path: Path) -> Iterator[LabCluster]:
    cluster = LabCluster(netns_sut, tmp_path / "cluster", heartbeat=HeartbeatSettings(0.2, 5))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_a_live_migrated_vm_is_announced_by_gratuitous_arp(netns_cluster: LabCluster) -> None:
    """1. vm-n runs on Demo1 (in Demo1's namespace) with its workload.
    2. A sniffer in the domain controller's namespace listens on the public bridge.
    3. vm-n live-migrates to Demo2; Demo2 announces it: ARP is-at from the VM's MAC.
    4. The VM's disk holds every acknowledged write."""
    cluster = netns_cluster
    cluster.add_vm(VmSpec("vm-n", workload={"writers": 2, "queue_depth": 2, "rate": 200.0}),
                   "Demo1")
    config = cluster.vms["vm-n"]["config"]
    lab = cluster.sut.lab
    iface = lab.record().extra["interfaces"]["public"]
    sniffer = lab.namespace("SWS-DC").popen(
        [sys.executable, "-c", SNIFF, config["address"], "60", iface],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert sniffer.stdout is not None and sniffer.stdout.readline().strip() == "ready"
        report = cluster.move("vm-n", "Demo2", "live")
        seen = json.loads(sniffer.stdout.readline())
    finally:
        sniffer.kill()
        sniffer.wait(10)
    assert report.announce.startswith("gratuitous ARP sent")
    assert seen and seen[0]["hwsrc"] == config["mac"] and seen[0]["dst"] == "ff:ff:ff:ff:ff:ff"
    assert cluster.owner("vm-n") == "Demo2"
    assert {n.name: n.state for n in cluster.nodes()} == {"Demo1": "Up", "Demo2": "Up"}
    cluster.stop_vm("vm-n")
    verdict = cluster.check_vm("vm-n", errors_allowed=False)
    assert verdict.valid, [p.message for p in verdict.problems][:10]


def test_a_node_whose_heartbeat_interface_goes_down_stops_its_roles(
        netns_cluster: LabCluster) -> None:
    """1. vm-p runs on Demo2; Demo1 owns the witness.
    2. Demo2's interface on the heartbeat bridge goes down (its iSCSI interfaces stay up).
    3. Demo1 fences Demo2 on the witness and the CSV and restarts vm-p; Demo2, fenced, stops
       vm-p and its cluster service.
    4. vm-p's disk holds every write it acknowledged, on either node."""
    cluster = netns_cluster
    assert {n.name: n.witness_owner for n in cluster.nodes()}["Demo1"] is True
    cluster.add_vm(VmSpec("vm-p", workload={"writers": 2, "queue_depth": 2, "rate": 200.0}),
                   "Demo2")
    cluster.wait(lambda: cluster.vm_status("vm-p")["ops"]["ops"] > 30, "vm-p to write")
    lab = cluster.sut.lab
    demo2 = lab.namespace("Demo2")
    iface = lab.record().extra["interfaces"]["heartbeat"]
    demo2.set_link(iface, up=False)
    try:
        cluster.wait(lambda: cluster.owner("vm-p") == "Demo1", "vm-p to restart on Demo1", 60)
        assert {n.name: n.state for n in cluster.nodes()} == {"Demo1": "Up", "Demo2": "Down"}
        cluster.wait(lambda: cluster.vm_status("vm-p")["ops"]["ops"] > 10, "vm-p to write")
        cluster.stop_vm("vm-p")
    finally:
        demo2.set_link(iface, up=True)
    verdict = cluster.check_vm("vm-p", handed_over=set())
    assert verdict.valid, [p.message for p in verdict.problems][:10]
