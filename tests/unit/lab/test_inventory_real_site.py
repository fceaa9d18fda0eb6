"""Real-site keys of the inventory: storage kind and credentials, test devices and
their disks, sudo, known_hosts, interfaces, VM names and out-of-band power."""

from __future__ import annotations

import pytest

from harness.lab.inventory import InventoryError, loads
from harness.remote.ssh import SshTarget
from tests.unit.lab.test_inventory import BASE

REAL = BASE + """
[storage]
kind = "starwind"
user = "${SW_USER}"
password = "${SW_PASSWORD}"
port = 3261
service = "StarWindService"
process = "StarWindService"
"""


def test_storage_defaults_to_the_bundled_target() -> None:
    inv = loads(BASE)
    assert inv.storage.kind == "bundled"
    assert inv.test_devices == []
    assert inv.site.vms == ()
    assert inv.site.fault_ttl_s == 600.0
    assert loads(BASE.replace("destructive = true", "destructive = true\nfault_ttl_s = 90"))\
        .site.fault_ttl_s == 90.0


def test_starwind_storage_with_env_credentials() -> None:
    inv = loads(REAL)
    assert inv.storage.kind == "starwind"
    assert inv.storage.user.variable == "SW_USER"
    assert inv.storage.password.variable == "SW_PASSWORD"
    assert (inv.storage.port, inv.storage.service) == (3261, "StarWindService")


@pytest.mark.parametrize("bad, words", [
    ('[storage]\nkind = "starwind"\n', "StarWind needs its management credentials"),
    ('[storage]\nkind = "starwind"\nuser = "root"\npassword = "starwind"\n',
     "secrets may only be ${ENV} references"),
    ('[storage]\nkind = "netapp"\n', "unknown value 'netapp'"),
])
def test_storage_mistakes(bad: str, words: str) -> None:
    with pytest.raises(InventoryError, match=words.replace("$", r"\$").replace("{", r"\{")
                       .replace("}", r"\}")):
        loads(BASE + bad)


def test_test_device_with_disks_per_cluster_node() -> None:
    text = BASE.replace('[devices.HA1]\npurpose = "quorum"',
                        '[devices.HA1]\npurpose = "quorum"\ntest = true\n'
                        'storage_name = "HAImage1"\ndisks = { Node1 = "/dev/mapper/mpatha" }')
    inv = loads(text)
    dev = inv.device("HA1")
    assert dev.test and dev.disks == {"Node1": "/dev/mapper/mpatha"}
    assert dev.storage_name == "HAImage1"
    assert inv.test_devices == [dev]
    with pytest.raises(InventoryError, match="'Store1' is not a cluster node"):
        loads(text.replace("Node1 = ", "Store1 = "))


def test_access_sudo_known_hosts_and_strict_host_keys(tmp_path) -> None:
    text = BASE.replace('access = { user = "admin", password = "${T_PASSWORD}" }',
                        'access = { user = "admin", password = "${T_PASSWORD}", sudo = true, '
                        'known_hosts = "kh" }')
    inv = loads(text, tmp_path / "site.toml")
    access = inv.host("Store1").access
    assert access.sudo and access.known_hosts == str(tmp_path / "kh")
    target = SshTarget.from_inventory(inv.host("Store1"))
    assert target.sudo and target.known_hosts == str(tmp_path / "kh")
    # no known_hosts and no trust_on_first_use: ~/.ssh/known_hosts, strictly
    plain = SshTarget.from_inventory(loads(BASE).host("Store1"))
    assert plain.strict_host_keys and plain.known_hosts is None
    tofu = loads(BASE.replace('password = "${T_PASSWORD}" }',
                              'password = "${T_PASSWORD}", trust_on_first_use = true }'))
    assert not SshTarget.from_inventory(tofu.host("Store1")).strict_host_keys


def test_interfaces_vms_and_power() -> None:
    text = BASE.replace(
        'addresses = { public = "192.0.2.12", iscsi = "198.51.100.12", sync = "203.0.113.12" }',
        'addresses = { public = "192.0.2.12", iscsi = "198.51.100.12", sync = "203.0.113.12" }\n'
        'interfaces = { sync = "SYNC 1" }\n'
        'power = { kind = "redfish", address = "https://bmc2", user = "op", '
        'password = "${BMC_PASSWORD}" }',
    ).replace('destructive = true', 'destructive = true\nvms = ["vm1", "vm2"]')
    inv = loads(text)
    host = inv.host("Store2")
    assert host.interface("sync") == "SYNC 1"
    assert host.power.kind == "redfish" and host.power.password.variable == "BMC_PASSWORD"
    assert inv.site.vms == ("vm1", "vm2")
    with pytest.raises(InventoryError, match="no interface name for network 'iscsi'"):
        host.interface("iscsi")
    with pytest.raises(InventoryError, match="has no address on network 'heartbeat'"):
        loads(text.replace('{ sync = "SYNC 1" }', '{ heartbeat = "x" }'))
    with pytest.raises(InventoryError, match="must be an https:// URL"):
        loads(text.replace("https://bmc2", "bmc2"))
    with pytest.raises(InventoryError, match=r"\$\{ENV\}"):
        loads(text.replace('"${BMC_PASSWORD}"', '"hunter2"'))
