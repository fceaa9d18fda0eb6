"""A real-site black hole against a real Linux host (OpenSSH in a namespace): tagged nft rules
appear, traffic to the range is dropped, and the journal heals exactly that fault's rules."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.faults import FaultJournal, RemoteBlackHole, RemoteFaults, heal_journal
from harness.lab.inventory import load
from harness.remote.linux import LinuxHost

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test


@pytest.fixture
def site(sshd_host: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RemoteFaults:
    address = ipaddress.ip_address(sshd_host.address)
    mgmt = ipaddress.ip_network(f"{address}/30", strict=False)
    inventory = tmp_path / "site.toml"
    inventory.write_text(
        textwrap.dedent(f"""
        [site]
        name = "sshd"
        destructive = true
        [networks.mgmt]
        roles = ["public"]
        cidr = "{mgmt}"
        [networks.sync]
        roles = ["sync"]
        cidr = "203.0.113.0/24"
        [hosts.Store1]
        roles = ["storage"]
        addresses = {{ mgmt = "{address}", sync = "203.0.113.11" }}
        access = {{ user = "root", key = "{sshd_host.client_key}" }}
    """)
    )

    def opener(inventory_path: str, host: str) -> LinuxHost:
        assert host == "Store1" and inventory_path == str(inventory)
        return LinuxHost(
            sshd_host.target(), retry=sshd_host.fast_retry(), sock_factory=sshd_host.sock_factory
        )

    monkeypatch.setattr(RemoteBlackHole, "opener", staticmethod(opener))
    return RemoteFaults(load(inventory), journal=FaultJournal(tmp_path / "faults.jsonl"), ttl_s=300)


def rules(sshd_host: Any) -> dict[str, int]:
    with LinuxHost(
        sshd_host.target(), retry=sshd_host.fast_retry(), sock_factory=sshd_host.sock_factory
    ) as host:
        return host.faults()


def test_black_hole_on_a_real_host_heals_by_tag(site: RemoteFaults, sshd_host: Any) -> None:
    with site.blackhole("sync") as fault:
        assert rules(sshd_host).get(fault.id, 0) >= 2  # input and output chains
    assert fault.id not in rules(sshd_host)


def test_journal_heals_a_black_hole_left_by_a_dead_run(site: RemoteFaults, sshd_host: Any) -> None:
    fault = site.blackhole("Store1")  # every network but the one it is managed through
    assert fault.targets == [("Store1", "203.0.113.0/24")]
    fault.inject()
    assert fault.id in rules(sshd_host)
    outcomes = heal_journal(site.journal)
    assert [(o.id, o.healed) for o in outcomes] == [(fault.id, True)]
    assert fault.id not in rules(sshd_host)


def test_management_network_is_never_black_holed(site: RemoteFaults) -> None:
    from harness.faults import FaultError

    with pytest.raises(FaultError, match="cut the harness off"):
        site.blackhole("mgmt/Store1")
