"""The inventory model: the shipped inventories load, and every mistake is reported
with its file, line (or key path) and a hint."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from harness.lab.inventory import (
    FailoverStrategy,
    HostRole,
    InventoryError,
    NetworkRole,
    Purpose,
    load,
    loads,
    parse_size,
)

INVENTORIES = Path(__file__).parents[3] / "fixtures" / "inventories"

BASE = textwrap.dedent("""\
    [site]
    name = "t"
    destructive = true

    [networks.public]
    roles = ["public"]
    cidr = "192.0.2.0/24"

    [networks.iscsi]
    roles = ["iscsi", "heartbeat"]
    cidr = "198.51.100.0/24"

    [networks.sync]
    role = "sync"
    cidr = "203.0.113.0/24"

    [hosts.Store1]
    roles = ["storage"]
    addresses = { public = "192.0.2.11", iscsi = "198.51.100.11", sync = "203.0.113.11" }
    access = { user = "admin", password = "${T_PASSWORD}" }

    [hosts.Store2]
    roles = ["storage"]
    addresses = { public = "192.0.2.12", iscsi = "198.51.100.12", sync = "203.0.113.12" }

    [hosts.Node1]
    roles = ["cluster-node"]
    addresses = { public = "192.0.2.21", iscsi = "198.51.100.21" }

    [devices.HA1]
    purpose = "quorum"
    size = "1GiB"

    [[devices.HA1.replicas]]
    host = "Store1"
    target = "iqn.2008-08.com.example:store1-ha1"

    [[devices.HA1.replicas]]
    host = "Store2"
    target = "iqn.2008-08.com.example:store2-ha1partner"

    [budgets.default]
    path_failover_s = 20
    """)


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not in text")


def fails(text: str) -> InventoryError:
    with pytest.raises(InventoryError) as info:
        loads(text, "site.toml")
    return info.value


def test_base_loads_with_typed_model() -> None:
    inv = loads(BASE, "site.toml")
    assert inv.site.destructive is True
    assert inv.network("iscsi").roles == {NetworkRole.ISCSI, NetworkRole.HEARTBEAT}
    assert inv.host("Store1").address("iscsi") == ipaddress.ip_address("198.51.100.11")
    assert inv.host("Store1").access is not None
    assert inv.host("Store1").access.host == "192.0.2.11"  # defaults to the public address
    dev = inv.device("HA1")
    assert dev.size == 1 << 30 and dev.lun == 0 and dev.strategy is FailoverStrategy.HEARTBEAT
    assert [r.priority for r in dev.replicas] == [1, 2] and dev.primary.host == "Store1"
    assert [h.name for h in inv.hosts_with_role(HostRole.STORAGE)] == ["Store1", "Store2"]
    assert inv.budget("default").seconds("path_failover_s") == 20.0


@pytest.mark.parametrize("name", ["example-site.toml", "lab.toml"])
def test_shipped_inventories_load(name: str) -> None:
    inv = load(INVENTORIES / name)
    assert {"SWS-DC", "SWS-Store1", "SWS-Store2", "Demo1", "Demo2"} <= set(inv.hosts)
    assert {d.purpose for d in inv.devices.values()} == {Purpose.QUORUM, Purpose.VM_STORAGE}
    assert "default" in inv.budgets


def test_lab_budgets_include_counts() -> None:
    limits = load(INVENTORIES / "lab.toml").budget().limits
    assert limits["caller_errors_max"] == 0 and limits["stalled_ops_max"] == 256


def test_seed_has_three_separated_networks_in_documentation_ranges() -> None:
    inv = load(INVENTORIES / "example-site.toml")
    docs = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
    assert sorted(n.cidr for n in inv.networks.values()) == sorted(docs)
    assert inv.site.destructive is False and inv.lab is None


def test_lab_maps_onto_loopback_with_two_paths_per_node() -> None:
    inv = load(INVENTORIES / "lab.toml")
    assert inv.site.destructive is True and inv.lab is not None and inv.lab.backend == "loopback"
    assert all(n.cidr.subnet_of(ipaddress.ip_network("127.0.0.0/8")) for n in inv.networks.values())
    assert len(inv.networks_with_role("iscsi")) == 2
    assert inv.networks_with_role("sync") and inv.networks_with_role("heartbeat")
    for host in inv.hosts_with_role("cluster-node"):
        assert sum(inv.network(n).has_role("iscsi") for n in host.addresses) == 2


# (what to change, text of the line the error must point at, words the message must hold)
MISTAKES = [
    pytest.param(
        ('cidr = "198.51.100.0/24"', 'cidr = "198.51.100.0/33"'),
        'cidr = "198.51.100.0/33"',
        ["networks.iscsi.cidr", "bad CIDR"],
        id="bad-cidr",
    ),
    pytest.param(
        ('cidr = "198.51.100.0/24"', 'cidr = "198.51.100.7/24"'),
        'cidr = "198.51.100.7/24"',
        ["host bits set"],
        id="cidr-host-bits",
    ),
    pytest.param(
        ('iscsi = "198.51.100.11"', 'iscsi = "198.51.101.11"'),
        "198.51.101.11",
        ["hosts.Store1.addresses.iscsi", "outside network 'iscsi'"],
        id="address-outside-network",
    ),
    pytest.param(
        ('addresses = { public = "192.0.2.21", iscsi = "198.51.100.21" }', "addresses = {}"),
        "addresses = {}",
        ["is on no network"],
        id="host-on-no-network",
    ),
    pytest.param(
        ('host = "Store2"', 'host = "Node1"'),
        'host = "Node1"',
        ["devices.HA1.replicas[1].host", "not a storage host", 'add "storage"'],
        id="replica-on-non-storage-host",
    ),
    pytest.param(
        ('host = "Store2"', 'host = "Stor2"'),
        'host = "Stor2"',
        ["unknown host 'Stor2'", "did you mean 'Store2'"],
        id="replica-unknown-host",
    ),
    pytest.param(
        ('purpose = "quorum"', 'purpos = "quorum"'),
        "purpos =",
        ["unknown key 'purpos'", "did you mean 'purpose'"],
        id="unknown-key",
    ),
    pytest.param(
        ("destructive = true", "destructiv = true"),
        "destructiv",
        ["unknown key 'destructiv'", "did you mean 'destructive'"],
        id="unknown-site-key",
    ),
    pytest.param(
        ("[hosts.Node1]", "[hosts.STORE1]"),
        "[hosts.STORE1]",
        ["duplicate host name 'STORE1'"],
        id="duplicate-host-name",
    ),
    pytest.param(
        ('iscsi = "198.51.100.21"', 'iscsi = "198.51.100.11"'),
        'iscsi = "198.51.100.11" }',
        ["already used by host 'Store1'"],
        id="duplicate-address",
    ),
    pytest.param(
        ('size = "1GiB"', 'size = "1 gigabyte"'), "1 gigabyte", ["bad size", "1GiB"], id="bad-size"
    ),
    pytest.param(
        ('size = "1GiB"', 'size = "1000B"'), "1000B", ["multiple of 512"], id="size-not-blocks"
    ),
    pytest.param(
        ('password = "${T_PASSWORD}"', 'password = "hunter2"'),
        "hunter2",
        ["${ENV} references"],
        id="inline-secret",
    ),
    pytest.param(
        ('public = "192.0.2.12"', 'publik = "192.0.2.12"'),
        "publik",
        ["unknown network 'publik'", "did you mean 'public'"],
        id="unknown-network",
    ),
    pytest.param(
        ('roles = ["cluster-node"]', 'roles = ["cluster_node"]'),
        "cluster_node",
        ["unknown value 'cluster_node'", "did you mean 'cluster-node'"],
        id="bad-host-role",
    ),
    pytest.param(
        ('target = "iqn.2008-08.com.example:store2-ha1partner"', 'target = "HA1Partner"'),
        "HA1Partner",
        ["bad iSCSI target name"],
        id="bad-target-name",
    ),
    pytest.param(
        ("path_failover_s = 20", "path_failover = 20"),
        "path_failover =",
        ["does not say its unit", "path_failover_s"],
        id="budget-without-unit",
    ),
    pytest.param(
        ("path_failover_s = 20", "path_failover_s = -1"),
        "path_failover_s = -1",
        ["positive number of seconds"],
        id="negative-budget",
    ),
    pytest.param(
        ("path_failover_s = 20", "path_failover_s = 20\ncaller_errors_max = 0.5"),
        "caller_errors_max = 0.5",
        ["must be an integer from 0"],
        id="count-budget-not-an-integer",
    ),
    pytest.param(
        ("[budgets.default]", "[budgets.nightly]"),
        "[budgets",
        ["'default'"],
        id="no-default-budget",
    ),
    pytest.param(
        ('role = "sync"', 'role = "sync"\nroles = ["sync"]'),
        "[networks.sync]",
        ["exactly one of 'role' or 'roles'"],
        id="role-and-roles",
    ),
    pytest.param(
        ('cidr = "203.0.113.0/24"', 'cidr = "198.51.100.128/25"'),
        "198.51.100.128/25",
        ["overlaps network 'iscsi'"],
        id="overlapping-networks",
    ),
    pytest.param(
        (', sync = "203.0.113.12"', ""),
        "[[devices.HA1.replicas]]",
        ["share no sync network"],
        id="replicas-without-sync",
    ),
    pytest.param(
        ('name = "t"', 'name = "t"\nname = "u"'),
        'name = "u"',
        ["not valid TOML"],
        id="toml-duplicate-key",
    ),
]


@pytest.mark.parametrize(("change", "at", "words"), MISTAKES)
def test_mistake_is_reported_at_its_line(
    change: tuple[str, str], at: str, words: list[str]
) -> None:
    old, new = change
    assert old in BASE
    text = BASE.replace(old, new, 1)
    err = fails(text)
    message = str(err)
    assert message.startswith(f"site.toml:{line_of(text, at)}:"), message
    for word in words:
        assert word in message, message
    assert "(" in message and message.endswith(")"), f"no fix hint in: {message}"
    assert "\n" not in message


def test_missing_secret_variable_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    inv = loads(BASE, "site.toml")  # loading never resolves secrets
    access = inv.host("Store1").access
    assert access is not None and access.password is not None
    monkeypatch.delenv("T_PASSWORD", raising=False)
    with pytest.raises(InventoryError, match=r"\$\{T_PASSWORD\} is not set.*export T_PASSWORD"):
        access.password.resolve()
    monkeypatch.setenv("T_PASSWORD", "s3cret")
    assert access.password.resolve() == "s3cret"
    assert "s3cret" not in repr(access)


def test_missing_section_and_file() -> None:
    err = fails(BASE.replace('[site]\nname = "t"\ndestructive = true\n', ""))
    assert "missing required key 'site'" in str(err)
    with pytest.raises(InventoryError, match="inventory file not found"):
        load("/nonexistent/site.toml")


def test_lookups_of_unknown_names_suggest() -> None:
    inv = loads(BASE, "site.toml")
    with pytest.raises(InventoryError, match="did you mean 'Store1'"):
        inv.host("Stor1")
    with pytest.raises(InventoryError, match="did you mean 'path_failover_s'"):
        inv.budget().seconds("path_failover")
    with pytest.raises(InventoryError, match="no budget profile 'strict'"):
        inv.budget("strict")


def test_node_majority_needs_a_majority() -> None:
    err = fails(BASE.replace('size = "1GiB"', 'size = "1GiB"\nstrategy = "node-majority"'))
    assert "no majority" in str(err) and "witness" in str(err)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1GiB", 1 << 30),
        ("512MiB", 512 << 20),
        ("10GB", 10 * 10**9),
        ("4096", 4096),
        ("1.5KiB", 1536),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GiB", "1 parsec", "-1GiB", "0.3B"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)
