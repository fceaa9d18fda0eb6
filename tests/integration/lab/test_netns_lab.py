"""The netns lab: a namespace per host and a bridge per network; the heartbeat network is
unreachable from the others; black holes are tagged nftables rules that heal exactly; down
leaves no namespace, process, rule or file behind."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.faults import FaultJournal, heal_journal
from harness.faults.lab_faults import LabFaults
from harness.lab import netns
from harness.lab.inventory import Inventory, load
from harness.lab.netns_lab import NetnsLab
from tests.integration.lab.conftest import standin_command

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

INVENTORY = Path(__file__).parents[3] / "fixtures" / "inventories" / "lab-netns.toml"


@pytest.fixture
def netns_inventory() -> Inventory:
    if os.geteuid() != 0:
        pytest.skip("the netns lab needs root")
    for program, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(program) is None:
            pytest.skip(f"needs the Debian package {package} ({program})")
    return load(INVENTORY)


@pytest.fixture
def netns_lab(tmp_path: Path, netns_inventory: Inventory) -> Iterator[NetnsLab]:
    lab = NetnsLab(tmp_path / "lab", node_command=standin_command, ha=True, wait_sync=False)
    lab.up(netns_inventory)
    try:
        yield lab
    finally:
        lab.down()


def echoes(lab: NetnsLab, source: str, address: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with lab.namespace(source).connect_tcp(address, port, timeout) as s:
            s.sendall(b"ping")
            return s.recv(4) == b"ping"
    except OSError:
        return False


def test_up_and_down_leave_nothing_behind(tmp_path: Path, netns_inventory: Inventory) -> None:
    lab = NetnsLab(tmp_path / "lab", node_command=standin_command, ha=True, wait_sync=False)
    record = lab.up(netns_inventory)
    prefix = record.extra["prefix"]
    try:
        assert len(netns.list_namespaces(prefix)) == 1 + len(netns_inventory.hosts)
        assert all(node.alive for node in record.nodes.values())
        assert set(record.links) == {
            f"{n}/{h}" for n in ("iscsi1", "iscsi2") for h in ("SWS-Store1", "SWS-Store2")
        } | {f"{n}/SWS-Store1/{a}" for n in ("sync", "heartbeat") for a in ("HA1", "HA2")}
    finally:
        stopped = lab.down()
    assert netns.list_namespaces(prefix) == []
    assert not any(node.alive for node in record.nodes.values())
    assert any(s.startswith("SWS-Store1") for s in stopped)
    assert not (tmp_path / "lab").exists()


def test_heartbeat_network_is_unreachable_from_the_others(netns_lab: NetnsLab) -> None:
    store1 = netns_lab.namespace("SWS-Store1")
    listener = store1.listen_tcp("10.99.4.11")  # Store1's heartbeat address
    port = listener.getsockname()[1]
    try:
        with netns_lab.namespace("SWS-Store2").connect_tcp("10.99.4.11", port, 3.0):
            pass  # the partner, on the heartbeat network, gets through
        with netns_lab.namespace("Demo1").connect_tcp("10.99.4.11", port, 3.0):
            pass  # so does a cluster node: the cluster's heartbeats share the private network
        with pytest.raises(OSError):  # a host that is only on the public network does not
            netns_lab.namespace("SWS-DC").connect_tcp("10.99.4.11", port, 1.0)
    finally:
        listener.close()
    assert echoes(netns_lab, "Demo1", "198.51.100.11", 3260)  # iSCSI is reachable


def test_blackhole_is_tagged_rules_that_heal_exactly(netns_lab: NetnsLab) -> None:
    faults = LabFaults(netns_lab.state.root)
    table = netns_lab.namespace("SWS-Store1").nft
    with faults.blackhole("iscsi1/SWS-Store1") as fault:
        assert {r.tag for r in table.rules()} == {fault.id}
        assert not echoes(netns_lab, "Demo1", "198.51.100.11", 3260, timeout=0.5)
        assert echoes(netns_lab, "Demo1", "203.0.113.11", 3260)  # the iscsi2 path still works
    assert table.rules() == []
    assert echoes(netns_lab, "Demo1", "198.51.100.11", 3260)


def test_interface_down_and_journal_heal(netns_lab: NetnsLab) -> None:
    faults = LabFaults(netns_lab.state.root)
    faults.down("iscsi2/SWS-Store2").inject()
    assert not netns_lab.namespace("SWS-Store2").link_is_up("eth2")
    assert not echoes(netns_lab, "Demo2", "203.0.113.12", 3260, timeout=0.5)
    outcomes = heal_journal(FaultJournal(netns_lab.state.journal_file))
    assert [o.healed for o in outcomes] == [True]
    assert netns_lab.namespace("SWS-Store2").link_is_up("eth2")
    assert echoes(netns_lab, "Demo2", "203.0.113.12", 3260)


def test_modes_only_the_proxy_has_are_refused(netns_lab: NetnsLab) -> None:
    with pytest.raises(Exception, match="needs the loopback lab"):
        LabFaults(netns_lab.state.root).delay("sync", 50)


def test_sync_blackhole_silences_the_ha_channel_only(netns_lab: NetnsLab) -> None:
    sync = netns_lab.state.load().links["sync/SWS-Store1/HA1"]
    heartbeat = netns_lab.state.load().links["heartbeat/SWS-Store1/HA1"]
    assert echoes(netns_lab, "SWS-Store2", *sync.listen)  # the partner reaches the listener
    with LabFaults(netns_lab.state.root).blackhole("sync"):
        assert not echoes(netns_lab, "SWS-Store2", *sync.listen, timeout=0.5)
        assert echoes(netns_lab, "SWS-Store2", *heartbeat.listen)
    assert echoes(netns_lab, "SWS-Store2", *sync.listen)


def test_reference_target_pair_synchronizes_across_the_sync_bridge(
    tmp_path: Path, netns_inventory: Inventory
) -> None:
    lab = NetnsLab(tmp_path / "lab")  # the real reference target, HA wired by the lab
    try:
        lab.up(netns_inventory)  # returns once every replica is Synchronized
        states = lab.ha_states()
        if not states:
            pytest.skip("the reference target serves no HA replicas here")
        assert states == {
            a: {"SWS-Store1": "Synchronized", "SWS-Store2": "Synchronized"} for a in ("HA1", "HA2")
        }
    finally:
        lab.down()
