"""The real-host fault catalogue against a real Linux host (OpenSSH in a namespace):
each fault takes effect and is verified, heals (also from the journal alone), and a
fault that changes nothing is a failed injection; devices not marked test are safe."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from harness.faults import FaultJournal, FaultNotEffective, RemoteFaults, heal_journal
from harness.faults.fault import FaultError
from harness.faults.nemesis import FaultSpec
from harness.faults.remote_catalogue import RemoteHostFault
from harness.lab.inventory import load
from harness.remote.linux import LinuxHost

pytestmark = [pytest.mark.slow, pytest.mark.needs_root]


def inventory_text(sshd_host: Any, client: str, *, test: bool = True) -> str:
    address = ipaddress.ip_address(sshd_host.address)
    mgmt = ipaddress.ip_network(f"{address}/30", strict=False)
    return textwrap.dedent(f"""
        [site]
        name = "sshd"
        destructive = true
        [networks.mgmt]
        roles = ["public"]
        cidr = "{mgmt}"
        [networks.sync]
        roles = ["sync"]
        cidr = "203.0.113.0/24"
        [networks.iscsi]
        roles = ["iscsi", "heartbeat"]
        cidr = "198.51.100.0/24"
        [hosts.Store1]
        roles = ["storage"]
        addresses = {{ mgmt = "{address}", sync = "203.0.113.11", iscsi = "198.51.100.11" }}
        interfaces = {{ sync = "sbsync0" }}
        access = {{ user = "root", key = "{sshd_host.client_key}" }}
        [hosts.Store2]
        roles = ["storage"]
        addresses = {{ sync = "203.0.113.12", iscsi = "198.51.100.12" }}
        [storage]
        kind = "bundled"
        process = "sbstorage"
        [devices.HA1]
        purpose = "quorum"
        size = "1GiB"
        test = {str(test).lower()}
        [[devices.HA1.replicas]]
        host = "Store1"
        target = "iqn.2020-01.test:store1-ha1"
        [[devices.HA1.replicas]]
        host = "Store2"
        target = "iqn.2020-01.test:store2-ha1"
    """)


@pytest.fixture
def site(sshd_host: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RemoteFaults:
    inventory = tmp_path / "site.toml"
    inventory.write_text(inventory_text(sshd_host, sshd_host.pair.client_address))

    def opener(inventory_path: str, host: str) -> LinuxHost:
        assert host == "Store1" and inventory_path == str(inventory)
        return sshd_host.linux_host()

    monkeypatch.setattr(RemoteHostFault, "opener", staticmethod(opener))
    return RemoteFaults(load(inventory), journal=FaultJournal(tmp_path / "faults.jsonl"),
                        ttl_s=300)


@pytest.fixture
def storage_process(sshd_host: Any, tmp_path: Path):
    """A 'storage service' in the host namespace: a supervisor that restarts sbstorage."""
    binary = tmp_path / "sbstorage"
    shutil.copy("/bin/sleep", binary)
    supervisor = sshd_host.pair.host.popen(
        ["sh", "-c", f'while :; do "{binary}" 300; done'], start_new_session=True)
    deadline = time.monotonic() + 10
    while not _pids("sbstorage") and time.monotonic() < deadline:
        time.sleep(0.05)
    yield binary
    subprocess.run(["kill", "-s", "CONT", *map(str, _pids("sbstorage"))], check=False)
    supervisor.kill()
    supervisor.wait()
    subprocess.run(["pkill", "-KILL", "-x", "-s", str(supervisor.pid), "sbstorage"], check=False)


def _pids(name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_freeze_is_verified_and_healed_from_the_journal(site, storage_process):
    fault = site.freeze("primary")
    assert fault.host == "Store1"
    fault.inject()
    assert {_state(p) for p in _pids("sbstorage")} - {"Z"} == {"T"}  # zombies: long dead
    # its own verification on the host is the chaos run's evidence that it took effect
    assert fault.proof is not None and "is stopped (SIGSTOP), sockets open" in fault.proof
    outcomes = heal_journal(site.journal)
    assert [(o.id, o.healed) for o in outcomes] == [(fault.id, True)]
    assert "T" not in {_state(p) for p in _pids("sbstorage")}


def test_kill_is_verified_and_heal_waits_for_the_process_again(site, storage_process):
    before = set(_pids("sbstorage"))
    with site.kill("Store1") as fault:
        assert not before & set(_pids("sbstorage"))
        assert fault.proof is not None and "process of Store1 is gone" in fault.proof
    assert _pids("sbstorage")


def test_adapter_down_and_up(site, sshd_host):
    ns = sshd_host.pair.host
    ns.run_argv(["ip", "link", "add", "sbsync0", "type", "veth", "peer", "name", "sbsync1"])
    ns.run_argv(["ip", "link", "set", "sbsync0", "up"])
    with site.adapter_down("sync/Store1"):
        assert not ns.link_is_up("sbsync0")
    assert ns.link_is_up("sbsync0")


def test_pair_black_hole_per_port(site, sshd_host):
    fault = site.pair_blackhole("Store1~Store2", port=3260)
    assert (fault.details["peer"], fault.details["port"]) == ("203.0.113.12", 3260)
    with fault:
        assert {r.tag for r in sshd_host.pair.host.nft.rules()} == {fault.id}
    assert sshd_host.pair.host.nft.rules() == []


def test_a_path_drop_that_drops_nothing_is_a_failed_injection(site, sshd_host, monkeypatch):
    import harness.faults.remote_catalogue as catalogue

    monkeypatch.setattr(catalogue, "VERIFY_S", 1.0)
    site.inventory = load(Path(site.inventory.path))
    fault = site.pair_blackhole("Store1~Store2", port=3260)
    fault.details["require_drops"] = True  # nothing talks to 203.0.113.12: no packet dropped
    with pytest.raises(FaultNotEffective, match="failed injection"):
        fault.inject()
    assert sshd_host.pair.host.nft.rules() == []  # healed at once
    assert not fault.active


@pytest.mark.parametrize("reset", [False, True])
def test_path_drop_with_traffic_counts_dropped_packets(site, sshd_host, monkeypatch, tmp_path,
                                                       reset):
    """The client namespace plays the portal: the host keeps connecting to it."""
    pair = sshd_host.pair
    listener = pair.client.listen_tcp(pair.client_address)
    port = listener.getsockname()[1]
    connect = ("import socket, time\nwhile True:\n    try:\n"
               f"        socket.create_connection(('{pair.client_address}', {port}), 0.5).close()\n"
               "    except OSError:\n        pass\n    time.sleep(0.2)\n")
    pinger = pair.host.popen(["python3", "-c", connect], start_new_session=True)
    try:
        from harness.faults.remote_catalogue import RemotePathDrop

        fault = RemotePathDrop(inventory=site.inventory.path, host="Store1", label="p",
                               peer=pair.client_address, port=port, require_drops=True,
                               journal=site.journal, ttl_s=300, reset=reset)
        with fault:
            assert fault.dropped() > 0
            assert (fault.proof is not None) is reset  # only a cut shows the session down
            if reset:  # a cut: the connection is refused at once, not left to time out
                probe = ("import socket\ntry:\n    socket.create_connection("
                         f"('{pair.client_address}', {port}), 5)\n"
                         "except ConnectionRefusedError:\n    print('refused')\n")
                out = pair.host.run_argv(["python3", "-c", probe], check=False)
                assert out.stdout.strip() == "refused", out.stderr[-300:]
    finally:
        pinger.kill()
        pinger.wait()
        listener.close()


def test_a_cut_that_leaves_a_connection_established_is_a_failed_injection(
        site, sshd_host, monkeypatch):
    """A path cut must bring the node's sessions to the portal down: an established
    connection that no rule reset (it sent nothing while the fault was verified) is still
    a session up, so the cut changed nothing for it."""
    import harness.faults.remote_catalogue as catalogue
    from harness.faults.remote_catalogue import RemotePathDrop

    monkeypatch.setattr(catalogue, "VERIFY_S", 1.0)
    pair = sshd_host.pair
    listener = pair.client.listen_tcp(pair.client_address)
    port = listener.getsockname()[1]
    idle = pair.host.popen(["python3", "-c", "import socket, time\n"
                            f"s = socket.create_connection(('{pair.client_address}', {port}))\n"
                            "time.sleep(60)\n"], start_new_session=True)
    for attempt in Retrying(stop=stop_after_delay(20), wait=wait_fixed(0.1), reraise=True):
        with attempt:  # the idle session is up before the cut
            assert pair.host.run_argv(["ss", "-H", "-t", "-n", "state", "established", "dst",
                                       pair.client_address, "dport", "=", f":{port}"]
                                      ).stdout.strip()
    busy = pair.host.popen(["python3", "-c", "import socket, time\nwhile True:\n    try:\n"
                            f"        socket.create_connection(('{pair.client_address}', "
                            f"{port}), 0.5).close()\n    except OSError:\n        pass\n"
                            "    time.sleep(0.1)\n"], start_new_session=True)
    try:
        fault = RemotePathDrop(inventory=site.inventory.path, host="Store1", label="p",
                               peer=pair.client_address, port=port, require_drops=True,
                               journal=site.journal, ttl_s=300, reset=True)
        with pytest.raises(FaultNotEffective, match="still established"):
            fault.inject()
        assert not fault.active and sshd_host.pair.host.nft.rules() == []
    finally:
        for proc in (idle, busy):
            proc.kill()
            proc.wait()
        listener.close()


def test_faults_refuse_hosts_that_hold_devices_not_marked_test(sshd_host, tmp_path):
    inventory = tmp_path / "prod.toml"
    inventory.write_text(inventory_text(sshd_host, "x", test=False))
    faults = RemoteFaults(load(inventory), journal=FaultJournal(tmp_path / "j.jsonl"))
    for build in (lambda: faults.kill("Store1"), lambda: faults.freeze("Store1"),
                  lambda: faults.adapter_down("sync/Store1"),
                  lambda: faults.pair_blackhole("Store1~Store2")):
        with pytest.raises(FaultError, match="would also break HA1, not marked as test devices"):
            build()
    with pytest.raises(FaultError, match="marks no test device"):
        faults.freeze("primary")
    assert faults.catalogue() == [FaultSpec.of("blackhole", "sync"),
                                  FaultSpec.of("blackhole", "iscsi")]



