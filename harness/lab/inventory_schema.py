"""Turns a parsed inventory TOML into the frozen model, checking every key.

Each section has a builder that knows its allowed keys (an unknown key gets a
"did you mean"), the type of each value, and the cross-references it must
satisfy (an address inside its network, a replica on a storage host, ...).
Every mistake raises ``InventoryError`` at the line of the offending key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness.lab import inventory_real_site as real_site
from harness.lab.inventory_model import (
    LAB_BACKENDS,
    MPIO_POLICIES,
    SECRET_REFERENCE,
    TARGET_NAME,
    Access,
    BudgetProfile,
    ClusterSettings,
    FailoverStrategy,
    HaDevice,
    Host,
    HostRole,
    Inventory,
    IPAddress,
    LabSettings,
    MpioSettings,
    Network,
    NetworkRole,
    Purpose,
    Replica,
    Secret,
    Site,
    parse_size,
)
from harness.lab.toml_source import KeyPath, TomlSource, did_you_mean

_TOP = ("site", "networks", "hosts", "devices", "budgets", "mpio", "lab", "storage", "cluster")


class _Reader:
    """Typed access to one TOML source, raising ``InventoryError`` at the key's line."""

    def __init__(self, source: TomlSource) -> None:
        self.source = source

    def fail(self, path: KeyPath, what: str, hint: str = "") -> Exception:
        return self.source.error(path, what, hint)

    def table(
        self,
        value: object,
        path: KeyPath,
        *,
        allowed: Iterable[str] = (),
        required: Iterable[str] = (),
        free: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(
                path,
                f"must be a table, got {type(value).__name__}",
                f"write it as [{'.'.join(map(str, path))}]",
            )
        allowed = tuple(allowed)
        if not free:
            for key in value:
                if key not in allowed:
                    raise self.fail(
                        (*path, key), f"unknown key {key!r}", did_you_mean(key, allowed)
                    )
        for key in required:
            if key not in value:
                raise self.fail(
                    path, f"missing required key {key!r}", f"add {key} = ... to this table"
                )
        return value

    def string(self, value: object, path: KeyPath) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"must be a non-empty string, got {value!r}", 'quote it: "..."')
        return value

    def boolean(self, value: object, path: KeyPath) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"must be true or false, got {value!r}", "write true or false")
        return value

    def integer(self, value: object, path: KeyPath, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(
                path,
                f"must be an integer from {lo} to {hi}, got {value!r}",
                "write a plain integer",
            )
        return value

    def seconds(self, value: object, path: KeyPath) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.fail(
                path,
                f"must be a positive number of seconds, got {value!r}",
                "for example 20 or 0.5",
            )
        return float(value)

    def choice(self, value: object, path: KeyPath, choices: Iterable[str]) -> str:
        choices = tuple(choices)
        text = self.string(value, path)
        if text not in choices:
            raise self.fail(path, f"unknown value {text!r}", did_you_mean(text, choices))
        return text

    def roles(self, value: object, path: KeyPath, enum: type) -> frozenset[Any]:
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values:
            raise self.fail(
                path,
                "must be a non-empty list of roles",
                "expected some of: " + ", ".join(e.value for e in enum),
            )
        out = []
        for i, item in enumerate(values):
            out.append(
                enum(
                    self.choice(
                        item, (*path, i) if len(values) > 1 else path, [e.value for e in enum]
                    )
                )
            )
        return frozenset(out)

    def secret(self, value: object, path: KeyPath) -> Secret:
        text = self.string(value, path)
        m = SECRET_REFERENCE.match(text)
        if not m:
            raise self.fail(
                path,
                "secrets may only be ${ENV} references, not inline values",
                'write "${MY_VARIABLE}" and export MY_VARIABLE',
            )
        return Secret(m.group(1), self.source.where(path))

    def unique_name(self, name: str, seen: dict[str, str], path: KeyPath, kind: str) -> None:
        folded = name.casefold()
        if folded in seen:
            raise self.fail(
                path,
                f"duplicate {kind} name {name!r} (same as {seen[folded]!r};"
                " names are compared case-insensitively)",
                "rename one of them",
            )
        seen[folded] = name


def build(source: TomlSource) -> Inventory:
    r = _Reader(source)
    top = r.table(source.data, (), allowed=_TOP, required=("site", "networks", "hosts"))
    site = _site(r, top["site"])
    networks = _networks(r, top["networks"])
    hosts = _hosts(r, top["hosts"], networks)
    devices = _devices(r, top.get("devices", {}), hosts, networks)
    budgets = _budgets(r, top.get("budgets", {}))
    mpio = _mpio(r, top.get("mpio", {}))
    lab = _lab(r, top["lab"], source.path) if "lab" in top else None
    storage = real_site.storage(r, top.get("storage", {}))
    cluster = _cluster(r, top.get("cluster", {}))
    for alias, device in devices.items():
        for node in device.disks:
            if node not in hosts or not hosts[node].has_role(HostRole.CLUSTER_NODE):
                raise r.fail(("devices", alias, "disks", node),
                             f"{node!r} is not a cluster node of this inventory",
                             did_you_mean(node, [h for h in hosts
                                                 if hosts[h].has_role(HostRole.CLUSTER_NODE)]))
    return Inventory(
        source.path,
        site,
        MappingProxyType(networks),
        MappingProxyType(hosts),
        MappingProxyType(devices),
        MappingProxyType(budgets),
        mpio,
        lab,
        storage,
        cluster,
    )


def _site(r: _Reader, value: object) -> Site:
    t = r.table(
        value,
        ("site",),
        allowed=("name", "destructive", "description", "iscsi_port", "vms", "fault_ttl_s"),
        required=("name",),
    )
    vms = t.get("vms", [])
    if not isinstance(vms, list):
        raise r.fail(("site", "vms"), "must be a list of VM names", 'write vms = ["vm1"]')
    return Site(
        name=r.string(t["name"], ("site", "name")),
        destructive=r.boolean(t.get("destructive", False), ("site", "destructive")),
        description=str(t.get("description", "")),
        iscsi_port=r.integer(t.get("iscsi_port", 3260), ("site", "iscsi_port"), 1, 65535),
        vms=tuple(r.string(v, ("site", "vms", i)) for i, v in enumerate(vms)),
        fault_ttl_s=r.seconds(t.get("fault_ttl_s", 600.0), ("site", "fault_ttl_s")),
    )


def _networks(r: _Reader, value: object) -> dict[str, Network]:
    t = r.table(value, ("networks",), free=True)
    if not t:
        raise r.fail(("networks",), "no networks defined", "add a [networks.NAME] table")
    out: dict[str, Network] = {}
    seen: dict[str, str] = {}
    for name, body in t.items():
        path: KeyPath = ("networks", name)
        r.unique_name(name, seen, path, "network")
        n = r.table(
            body, path, allowed=("role", "roles", "cidr", "description"), required=("cidr",)
        )
        if ("role" in n) == ("roles" in n):
            raise r.fail(
                path,
                "needs exactly one of 'role' or 'roles'",
                'write roles = ["iscsi", "heartbeat"]',
            )
        key = "role" if "role" in n else "roles"
        roles = r.roles(n[key], (*path, key), NetworkRole)
        cidr_text = r.string(n["cidr"], (*path, "cidr"))
        try:
            cidr = ipaddress.ip_network(cidr_text, strict=True)
        except ValueError as exc:
            raise r.fail(
                (*path, "cidr"),
                f"bad CIDR {cidr_text!r}: {exc}",
                "write the network address and prefix, e.g. 198.51.100.0/24",
            ) from None
        for other in out.values():
            if other.cidr.version == cidr.version and other.cidr.overlaps(cidr):
                raise r.fail(
                    (*path, "cidr"),
                    f"{cidr} overlaps network {other.name!r} ({other.cidr})",
                    "give every network its own address range",
                )
        out[name] = Network(name, roles, cidr, str(n.get("description", "")))
    return out


_ACCESS_KEYS = ("user", "host", "port", "os", "key", "password", "passphrase", "sudo",
                "known_hosts", "trust_on_first_use", "tunnel_iscsi")


def _hosts(r: _Reader, value: object, networks: dict[str, Network]) -> dict[str, Host]:
    t = r.table(value, ("hosts",), free=True)
    if not t:
        raise r.fail(("hosts",), "no hosts defined", "add a [hosts.NAME] table")
    out: dict[str, Host] = {}
    seen: dict[str, str] = {}
    taken: dict[tuple[str, IPAddress], str] = {}
    for name, body in t.items():
        path: KeyPath = ("hosts", name)
        r.unique_name(name, seen, path, "host")
        h = r.table(
            body,
            path,
            allowed=("role", "roles", "addresses", "access", "description", "interfaces",
                     "power", "services"),
            required=("addresses",),
        )
        if ("role" in h) == ("roles" in h):
            raise r.fail(
                path, "needs exactly one of 'role' or 'roles'", 'write roles = ["storage"]'
            )
        key = "role" if "role" in h else "roles"
        roles = r.roles(h[key], (*path, key), HostRole)
        addr_table = r.table(h["addresses"], (*path, "addresses"), free=True)
        if not addr_table:
            raise r.fail(
                (*path, "addresses"),
                f"host {name!r} is on no network",
                'give it an address on at least one network: addresses = { NET = "IP" }',
            )
        addresses: dict[str, IPAddress] = {}
        for net_name, raw in addr_table.items():
            apath: KeyPath = (*path, "addresses", net_name)
            if net_name not in networks:
                raise r.fail(
                    apath, f"unknown network {net_name!r}", did_you_mean(net_name, networks)
                )
            text = r.string(raw, apath)
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                raise r.fail(
                    apath, f"bad IP address {text!r}", "write e.g. 198.51.100.11"
                ) from None
            cidr = networks[net_name].cidr
            if address not in cidr:
                raise r.fail(
                    apath,
                    f"address {address} is outside network {net_name!r} ({cidr})",
                    f"pick an address inside {cidr} or fix the network's cidr",
                )
            if address in (cidr.network_address, cidr.broadcast_address) and cidr.num_addresses > 2:
                raise r.fail(
                    apath,
                    f"address {address} is the network or broadcast address of {cidr}",
                    "pick a host address",
                )
            if (net_name, address) in taken:
                raise r.fail(
                    apath,
                    f"address {address} is already used by host {taken[net_name, address]!r}",
                    "give every host its own address",
                )
            taken[net_name, address] = name
            addresses[net_name] = address
        access = (
            _access(r, h["access"], (*path, "access"), addresses, networks)
            if "access" in h
            else None
        )
        interfaces: dict[str, str] = {}
        for net_name, raw in r.table(h.get("interfaces", {}), (*path, "interfaces"),
                                     free=True).items():
            if net_name not in addresses:
                raise r.fail((*path, "interfaces", net_name),
                             f"host {name!r} has no address on network {net_name!r}",
                             did_you_mean(net_name, addresses))
            interfaces[net_name] = r.string(raw, (*path, "interfaces", net_name))
        power = real_site.power(r, h["power"], (*path, "power")) if "power" in h else None
        services = h.get("services", [])
        if not isinstance(services, list) or (not services and "services" in h):
            raise r.fail((*path, "services"), "expected a non-empty list of service names",
                         'write services = ["iscsid", "multipathd"]')
        out[name] = Host(name, roles, MappingProxyType(addresses), access,
                         MappingProxyType(interfaces), power,
                         tuple(r.string(v, (*path, "services", i))
                               for i, v in enumerate(services)))
    return out


def _access(
    r: _Reader,
    value: object,
    path: KeyPath,
    addresses: dict[str, IPAddress],
    networks: dict[str, Network],
) -> Access:
    a = r.table(value, path, allowed=_ACCESS_KEYS, required=("user",))
    if "host" in a:
        host = r.string(a["host"], (*path, "host"))
    else:
        public = [n for n in addresses if networks[n].has_role(NetworkRole.PUBLIC)]
        if not public:
            raise r.fail(
                path,
                "no 'host' given and the host has no address on a public network",
                'add host = "ADDRESS" to this table',
            )
        host = str(addresses[public[0]])
    key: str | Secret | None = None
    if "key" in a:
        text = r.string(a["key"], (*path, "key"))
        key = r.secret(text, (*path, "key")) if text.startswith("$") else text
    return Access(
        user=r.string(a["user"], (*path, "user")),
        host=host,
        port=r.integer(a.get("port", 22), (*path, "port"), 1, 65535),
        os=r.choice(a.get("os", "linux"), (*path, "os"), ("linux", "windows")),
        key=key,
        password=r.secret(a["password"], (*path, "password")) if "password" in a else None,
        passphrase=r.secret(a["passphrase"], (*path, "passphrase")) if "passphrase" in a else None,
        sudo=r.boolean(a.get("sudo", False), (*path, "sudo")),
        known_hosts=(real_site.file_path(r, a["known_hosts"], (*path, "known_hosts"))
                     if "known_hosts" in a
                     else None),
        trust_on_first_use=r.boolean(a.get("trust_on_first_use", False),
                                     (*path, "trust_on_first_use")),
        tunnel_iscsi=r.boolean(a.get("tunnel_iscsi", False), (*path, "tunnel_iscsi")),
    )


def _devices(
    r: _Reader, value: object, hosts: dict[str, Host], networks: dict[str, Network]
) -> dict[str, HaDevice]:
    t = r.table(value, ("devices",), free=True)
    out: dict[str, HaDevice] = {}
    seen: dict[str, str] = {}
    targets: dict[tuple[str, int], str] = {}
    for alias, body in t.items():
        path: KeyPath = ("devices", alias)
        r.unique_name(alias, seen, path, "device")
        d = r.table(
            body,
            path,
            allowed=("purpose", "size", "lun", "strategy", "replicas", "witness", "description",
                     "defects", "test", "disks", "storage_name"),
            required=("purpose", "size", "replicas"),
        )
        size = _size(r, d["size"], (*path, "size"))
        strategy = FailoverStrategy(
            r.choice(
                d.get("strategy", "heartbeat"),
                (*path, "strategy"),
                [s.value for s in FailoverStrategy],
            )
        )
        replicas = _replicas(r, d["replicas"], (*path, "replicas"), hosts)
        lun = r.integer(d.get("lun", 0), (*path, "lun"), 0, 16383)
        for i, rep in enumerate(replicas):
            if (rep.target, lun) in targets:
                raise r.fail(
                    (*path, "replicas", i, "target"),
                    f"target {rep.target} LUN {lun} is already device {targets[rep.target, lun]!r}",
                    "use another target name or LUN",
                )
            targets[rep.target, lun] = alias
        witness = None
        if "witness" in d:
            witness = r.string(d["witness"], (*path, "witness"))
            if witness not in hosts:
                raise r.fail(
                    (*path, "witness"), f"unknown host {witness!r}", did_you_mean(witness, hosts)
                )
            if not hosts[witness].has_role(HostRole.WITNESS):
                raise r.fail(
                    (*path, "witness"),
                    f"host {witness!r} does not have the witness role",
                    'add "witness" to its roles',
                )
        if (
            strategy is FailoverStrategy.NODE_MAJORITY
            and witness is None
            and len(replicas) % 2 == 0
        ):
            raise r.fail(
                (*path, "strategy"),
                f"node-majority with {len(replicas)} replicas and no witness has no majority",
                'add witness = "HOST" or use strategy = "heartbeat"',
            )
        defects = _defect_names(r, d.get("defects", []), (*path, "defects"))
        if len(replicas) > 1:
            _check_links(r, path, strategy, replicas, hosts, networks)
        elif defects or any(rep.defects for rep in replicas):
            raise r.fail(
                (*path, "defects"),
                "defect modes need an HA device with two replicas",
                "add a second replica or remove defects",
            )
        out[alias] = HaDevice(
            alias,
            Purpose(r.choice(d["purpose"], (*path, "purpose"), [p.value for p in Purpose])),
            size,
            lun,
            strategy,
            tuple(replicas),
            witness,
            defects,
            test=r.boolean(d.get("test", False), (*path, "test")),
            disks=MappingProxyType({
                node: r.string(disk, (*path, "disks", node))
                for node, disk in r.table(d.get("disks", {}), (*path, "disks"), free=True).items()
            }),
            storage_name=(r.string(d["storage_name"], (*path, "storage_name"))
                          if "storage_name" in d else None),
        )
    return out


def _defect_names(r: _Reader, value: object, path: KeyPath) -> tuple[str, ...]:
    """Defect modes named in the inventory (the defect zoo switches them on)."""
    from harness.target.defects import Defect

    if not isinstance(value, list):
        raise r.fail(path, "expected a list of defect names", 'write defects = ["name"]')
    names = [r.string(v, (*path, i)) for i, v in enumerate(value)]
    known = sorted(d.value for d in Defect)
    for i, name in enumerate(names):
        if name not in known:
            raise r.fail((*path, i), f"unknown defect mode {name!r}",
                         did_you_mean(name, known))
    return tuple(sorted(set(names)))


def _size(r: _Reader, value: object, path: KeyPath) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        text = r.string(value, path)
        try:
            size = parse_size(text)
        except ValueError:
            raise r.fail(
                path, f"bad size {text!r}", 'write a number and unit, e.g. "1GiB", "512MiB", "10GB"'
            ) from None
    if size <= 0 or size % 512:
        raise r.fail(
            path,
            f"size {size} bytes is not a positive multiple of 512",
            "round it to whole 512-byte blocks",
        )
    return size


def _replicas(r: _Reader, value: object, path: KeyPath, hosts: dict[str, Host]) -> list[Replica]:
    if not isinstance(value, list) or not value:
        raise r.fail(
            path, "must list at least one replica", "add [[devices.ALIAS.replicas]] tables"
        )
    out: list[Replica] = []
    for i, body in enumerate(value):
        p: KeyPath = (*path, i)
        rep = r.table(
            body, p, allowed=("host", "target", "priority", "defects"), required=("host", "target")
        )
        host = r.string(rep["host"], (*p, "host"))
        if host not in hosts:
            raise r.fail((*p, "host"), f"unknown host {host!r}", did_you_mean(host, hosts))
        if not hosts[host].has_role(HostRole.STORAGE):
            raise r.fail(
                (*p, "host"),
                f"host {host!r} is not a storage host",
                f'add "storage" to the roles of {host} or pick a storage host',
            )
        target = r.string(rep["target"], (*p, "target"))
        if not TARGET_NAME.match(target):
            raise r.fail(
                (*p, "target"),
                f"bad iSCSI target name {target!r}",
                "use iqn.YYYY-MM.reversed.domain:name in lower case",
            )
        priority = r.integer(rep.get("priority", i + 1), (*p, "priority"), 1, 255)
        for other in out:
            if other.host == host:
                raise r.fail(
                    (*p, "host"),
                    f"a second replica on host {host!r}",
                    "each replica needs its own storage host",
                )
            if other.priority == priority:
                raise r.fail(
                    (*p, "priority"),
                    f"priority {priority} is already used by {other.host}",
                    "give every replica a distinct priority (1 is the highest)",
                )
            if other.target == target:
                raise r.fail(
                    (*p, "target"),
                    f"target name {target} is already used by {other.host}",
                    "each replica has its own target name (e.g. ...:ha1 and ...:ha1partner)",
                )
        defects = _defect_names(r, rep.get("defects", []), (*p, "defects"))
        out.append(Replica(host, target, priority, defects))
    return out


def _check_links(
    r: _Reader,
    path: KeyPath,
    strategy: FailoverStrategy,
    replicas: list[Replica],
    hosts: dict[str, Host],
    networks: dict[str, Network],
) -> None:
    def shared(role: NetworkRole) -> bool:
        return any(
            net.has_role(role) and all(name in hosts[rep.host].addresses for rep in replicas)
            for name, net in networks.items()
        )

    for role in (NetworkRole.SYNC, NetworkRole.ISCSI):
        if not shared(role):
            raise r.fail(
                (*path, "replicas"),
                f"the replicas' hosts share no {role.value} network",
                f"give every replica host an address on a network with role {role.value!r}",
            )
    if strategy is FailoverStrategy.HEARTBEAT and not shared(NetworkRole.HEARTBEAT):
        raise r.fail(
            (*path, "strategy"),
            "heartbeat strategy but the replicas share no heartbeat network",
            'add "heartbeat" to the roles of a network every replica host is on',
        )


def _budgets(r: _Reader, value: object) -> dict[str, BudgetProfile]:
    t = r.table(value, ("budgets",), free=True)
    out: dict[str, BudgetProfile] = {}
    for profile, body in t.items():
        path: KeyPath = ("budgets", profile)
        b = r.table(body, path, free=True)
        limits: dict[str, float] = {}
        for name, raw in b.items():
            if name.endswith("_max"):
                limits[name] = float(r.integer(raw, (*path, name), 0, 2**31 - 1))
            elif name.endswith("_s"):
                limits[name] = r.seconds(raw, (*path, name))
            else:
                raise r.fail(
                    (*path, name),
                    f"budget {name!r} does not say its unit",
                    f"name it {name}_s (seconds) or {name}_max (a count)",
                )
        out[profile] = BudgetProfile(profile, MappingProxyType(limits))
    if out and "default" not in out:
        raise r.fail(
            ("budgets",),
            "budget profiles exist but none is named 'default'",
            "add [budgets.default]; --budget-profile picks the others",
        )
    return out


def _mpio(r: _Reader, value: object) -> MpioSettings:
    fields = MpioSettings.__dataclass_fields__
    t = r.table(value, ("mpio",), allowed=fields)
    values: dict[str, Any] = {}
    convert: dict[str, Callable[[object, KeyPath], Any]] = {
        "policy": lambda v, p: r.choice(v, p, MPIO_POLICIES),
        "path_verify": r.boolean,
        "retry_count": lambda v, p: r.integer(v, p, 0, 1000),
    }
    for key, raw in t.items():
        values[key] = convert.get(key, r.seconds)(raw, ("mpio", key))
    return MpioSettings(**values)


def _cluster(r: _Reader, value: object) -> ClusterSettings:
    t = r.table(value, ("cluster",), allowed=ClusterSettings.__dataclass_fields__)
    values: dict[str, Any] = {}
    if "same_subnet_delay_s" in t:
        values["same_subnet_delay_s"] = r.seconds(t["same_subnet_delay_s"],
                                                  ("cluster", "same_subnet_delay_s"))
    for key, lo, hi in (("same_subnet_threshold", 1, 120), ("live_migration_pass_limit", 1, 100)):
        if key in t:
            values[key] = r.integer(t[key], ("cluster", key), lo, hi)
    return ClusterSettings(**values)


def _lab(r: _Reader, value: object, inventory_path: Path) -> LabSettings:
    t = r.table(value, ("lab",), allowed=("backend", "state_dir"))
    state_dir = None
    if "state_dir" in t:
        state_dir = Path(r.string(t["state_dir"], ("lab", "state_dir"))).expanduser()
        if not state_dir.is_absolute():
            state_dir = inventory_path.parent / state_dir
    return LabSettings(
        r.choice(t.get("backend", "loopback"), ("lab", "backend"), LAB_BACKENDS), state_dir
    )
