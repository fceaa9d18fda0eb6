"""The inventory's model: frozen values for a site, its networks, hosts and HA devices.

What each value means is ``harness.lab.inventory``'s docstring (the model as a
user meets it) and docs/inventory.md (every key). Here are the dataclasses and
enums, the checks a value makes of itself (an address inside its network, a
secret reference), and the constants the schema checks against.

This module is the model only; ``harness.lab.inventory`` is its public face
(``load(path)``, and these names), ``harness.lab.inventory_schema`` builds the
model from the TOML. docs/inventory.md is the reference of every key.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from harness.lab.toml_source import InventoryError, did_you_mean
from harness.redact import remember_secret

if TYPE_CHECKING:
    from harness.initiator.mpio.timers import MpioTimers


__all__ = [
    "LAB_BACKENDS",
    "MPIO_POLICIES",
    "POWER_KINDS",
    "SECRET_REFERENCE",
    "STORAGE_KINDS",
    "TARGET_NAME",
    "Access",
    "BudgetProfile",
    "FailoverStrategy",
    "HaDevice",
    "Host",
    "HostRole",
    "IPAddress",
    "IPNetwork",
    "Inventory",
    "InventoryError",
    "LabSettings",
    "MpioSettings",
    "Network",
    "NetworkRole",
    "PowerControl",
    "Purpose",
    "Replica",
    "Secret",
    "Site",
    "StorageSettings",
    "parse_size",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class NetworkRole(StrEnum):
    PUBLIC = "public"
    HEARTBEAT = "heartbeat"
    ISCSI = "iscsi"
    SYNC = "sync"


class HostRole(StrEnum):
    STORAGE = "storage"
    CLUSTER_NODE = "cluster-node"
    DOMAIN_CONTROLLER = "domain-controller"
    WITNESS = "witness"


class Purpose(StrEnum):
    QUORUM = "quorum"
    VM_STORAGE = "vm-storage"


class FailoverStrategy(StrEnum):
    HEARTBEAT = "heartbeat"
    NODE_MAJORITY = "node-majority"


MPIO_POLICIES = (
    "failover-only",
    "round-robin",
    "round-robin-with-subset",
    "least-queue-depth",
    "weighted-paths",
    "least-blocks",
)
LAB_BACKENDS = ("loopback", "netns")
#: how replica states are read and which service the storage faults act on
STORAGE_KINDS = ("bundled", "starwind", "drbd", "lio", "tgt")
POWER_KINDS = ("redfish", "ipmi")
SECRET_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
TARGET_NAME = re.compile(
    r"^(iqn\.\d{4}-\d{2}\.[a-z0-9][a-z0-9.-]*(:[^\s]+)?|eui\.[0-9A-F]{16}|naa\.[0-9A-F]{16,32})$"
)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "PB": 10**15,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
    "PIB": 2**50,
}


@dataclass(frozen=True)
class Secret:
    """A reference to a secret in the environment, resolved only when needed."""

    variable: str
    where: str

    def resolve(self) -> str:
        value = os.environ.get(self.variable)
        if value is None:
            raise InventoryError(
                self.where,
                f"secret variable ${{{self.variable}}} is not set",
                f"export {self.variable}=... before running",
            )
        remember_secret(value)  # every redactor of this process masks it from now on
        return value

    def __repr__(self) -> str:
        return f"Secret(${{{self.variable}}})"


@dataclass(frozen=True)
class Site:
    name: str
    destructive: bool
    description: str
    iscsi_port: int
    vms: tuple[str, ...] = ()  # the site's virtual machines (never written, moved only)
    fault_ttl_s: float = 600.0  # a real host heals a fault by itself after this long


@dataclass(frozen=True)
class Network:
    name: str
    roles: frozenset[NetworkRole]
    cidr: IPNetwork
    description: str

    def has_role(self, role: NetworkRole | str) -> bool:
        return NetworkRole(role) in self.roles


@dataclass(frozen=True)
class Access:
    """How the harness reaches a host: ssh, with secrets as ``${ENV}`` references."""

    user: str
    host: str
    port: int
    os: str
    key: str | Secret | None
    password: Secret | None
    passphrase: Secret | None
    sudo: bool = False  # commands are sent as ``sudo -n -- ...``
    known_hosts: str | None = None  # pinned host keys; default ~/.ssh/known_hosts
    trust_on_first_use: bool = False  # accept an unknown host key (never a changed one)
    tunnel_iscsi: bool = False  # the harness's initiator connects from this host, over ssh

    def key_path(self) -> str | None:
        return self.key.resolve() if isinstance(self.key, Secret) else self.key


@dataclass(frozen=True)
class PowerControl:
    """Out-of-band power of a host (BMC): Redfish or IPMI, secrets as ``${ENV}``."""

    kind: str
    address: str
    user: str
    password: Secret
    system: str | None = None  # the Redfish system id (default: the only one)


@dataclass(frozen=True)
class Host:
    name: str
    roles: frozenset[HostRole]
    addresses: Mapping[str, IPAddress]
    access: Access | None
    #: network -> interface (Linux) or adapter (Windows) name on that network
    interfaces: Mapping[str, str] = field(default_factory=dict)
    power: PowerControl | None = None
    #: daemons a cluster node needs running (Validate Required Services); empty: its OS's
    #: defaults (Windows ClusSvc, MSiSCSI; Linux iscsid, multipathd)
    services: tuple[str, ...] = ()

    def interface(self, network: str) -> str:
        try:
            return self.interfaces[network]
        except KeyError:
            raise InventoryError(
                f"host {self.name}",
                f"has no interface name for network {network!r}",
                f"add interfaces = {{ {network} = \"NAME\" }} to [hosts.{self.name}]",
            ) from None

    def has_role(self, role: HostRole | str) -> bool:
        return HostRole(role) in self.roles

    def address(self, network: str) -> IPAddress:
        try:
            return self.addresses[network]
        except KeyError:
            raise InventoryError(
                f"host {self.name}",
                f"has no address on network {network!r}",
                did_you_mean(network, self.addresses),
            ) from None


@dataclass(frozen=True)
class Replica:
    host: str
    target: str
    priority: int
    #: defect modes of this replica only (harness.target.defects; the defect zoo)
    defects: tuple[str, ...] = ()


@dataclass(frozen=True)
class HaDevice:
    alias: str
    purpose: Purpose
    size: int
    lun: int
    strategy: FailoverStrategy
    replicas: tuple[Replica, ...]
    witness: str | None
    #: defect modes of every replica of the device (harness.target.defects)
    defects: tuple[str, ...] = ()
    #: the harness may write, reserve and break this device (a dedicated test LUN)
    test: bool = False
    #: cluster node -> its disk for this device (``/dev/mapper/mpatha``, ``PhysicalDrive3``)
    disks: Mapping[str, str] = field(default_factory=dict)
    #: the device's name on the storage (StarWind device, DRBD resource, LIO backstore)
    storage_name: str | None = None

    def defects_of(self, host: str) -> tuple[str, ...]:
        """The defect modes the replica on ``host`` runs with: the device's and its own."""
        own = self.replica_on(host).defects
        return tuple(sorted(set(self.defects) | set(own)))

    def replica_on(self, host: str) -> Replica:
        for r in self.replicas:
            if r.host == host:
                return r
        raise InventoryError(
            f"device {self.alias}",
            f"has no replica on host {host!r}",
            did_you_mean(host, [r.host for r in self.replicas]),
        )

    @property
    def primary(self) -> Replica:
        return min(self.replicas, key=lambda r: r.priority)


@dataclass(frozen=True)
class BudgetProfile:
    """Named limits: seconds for names ending ``_s`` (``path_failover_s = 20``), counts
    for names ending ``_max`` (``caller_errors_max = 0``)."""

    name: str
    limits: Mapping[str, float]

    def seconds(self, name: str) -> float:
        try:
            return self.limits[name]
        except KeyError:
            raise InventoryError(
                f"budgets.{self.name}", f"no budget named {name!r}", did_you_mean(name, self.limits)
            ) from None


@dataclass(frozen=True)
class MpioSettings:
    policy: str = "round-robin"
    path_verify: bool = False
    path_verification_period_s: float = 30.0
    pdo_remove_period_s: float = 20.0
    retry_count: int = 3
    retry_interval_s: float = 1.0
    path_recovery_interval_s: float = 40.0
    link_down_time_s: float = 15.0
    disk_timeout_s: float = 60.0
    noop_interval_s: float = 5.0
    noop_timeout_s: float = 5.0

    def timers(self) -> MpioTimers:
        """These settings as the initiator's ``MpioTimers``."""
        from harness.initiator.mpio.timers import MpioTimers

        return MpioTimers(
            path_verify_enabled=self.path_verify,
            path_verification_period_s=self.path_verification_period_s,
            noop_out_interval_s=self.noop_interval_s,
            noop_out_timeout_s=self.noop_timeout_s,
            disk_timeout_s=self.disk_timeout_s,
            link_down_time_s=self.link_down_time_s,
            retry_count=self.retry_count,
            retry_interval_s=self.retry_interval_s,
            path_recovery_interval_s=self.path_recovery_interval_s,
            pdo_remove_period_s=self.pdo_remove_period_s,
        )


@dataclass(frozen=True)
class StorageSettings:
    """What the storage is (``kind``), how to manage it, and its service on each host."""

    kind: str = "bundled"
    user: Secret | None = None
    password: Secret | None = None
    port: int | None = None  # management port (StarWind: 3261)
    service: str | None = None  # the unit (Linux) or service (Windows) faults stop
    process: str | None = None  # the process name faults kill or freeze
    ready_file: str | None = None  # bundled: the node's ready file on each storage host
    token_file: str | None = None  # bundled: the management token file on each storage host
    python: str = "python3"  # the interpreter the shipped scripts run with on the hosts
    logs: tuple[str, ...] = ()  # log files of the storage service, collected as evidence


@dataclass(frozen=True)
class ClusterSettings:
    """The failover cluster's own settings (``[cluster]``): heartbeat and live migration.

    Defaults after Windows (reference notes 1.7 and 4.1): SameSubnetDelay 1 s,
    SameSubnetThreshold 5 (WS2012), and Hyper-V's 5 pre-copy passes."""

    same_subnet_delay_s: float = 1.0
    same_subnet_threshold: int = 5
    live_migration_pass_limit: int = 5


@dataclass(frozen=True)
class LabSettings:
    backend: str = "loopback"
    state_dir: Path | None = None


@dataclass(frozen=True)
class Inventory:
    path: Path
    site: Site
    networks: Mapping[str, Network]
    hosts: Mapping[str, Host]
    devices: Mapping[str, HaDevice]
    budgets: Mapping[str, BudgetProfile]
    mpio: MpioSettings
    lab: LabSettings | None
    storage: StorageSettings = field(default_factory=StorageSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise InventoryError(
                str(self.path), f"no host named {name!r}", did_you_mean(name, self.hosts)
            ) from None

    def network(self, name: str) -> Network:
        try:
            return self.networks[name]
        except KeyError:
            raise InventoryError(
                str(self.path), f"no network named {name!r}", did_you_mean(name, self.networks)
            ) from None

    def device(self, alias: str) -> HaDevice:
        try:
            return self.devices[alias]
        except KeyError:
            raise InventoryError(
                str(self.path), f"no HA device named {alias!r}", did_you_mean(alias, self.devices)
            ) from None

    def budget(self, profile: str = "default") -> BudgetProfile:
        try:
            return self.budgets[profile]
        except KeyError:
            raise InventoryError(
                str(self.path),
                f"no budget profile {profile!r}",
                did_you_mean(profile, self.budgets),
            ) from None

    def networks_with_role(self, role: NetworkRole | str) -> list[Network]:
        return [n for n in self.networks.values() if n.has_role(role)]

    def hosts_with_role(self, role: HostRole | str) -> list[Host]:
        return [h for h in self.hosts.values() if h.has_role(role)]

    @property
    def is_lab(self) -> bool:
        return self.lab is not None

    @property
    def test_devices(self) -> list[HaDevice]:
        """The devices marked ``test = true``: the only ones the harness may write or break."""
        return [d for d in self.devices.values() if d.test]


def parse_size(text: str) -> int:
    """``"1GiB"`` -> 1073741824; raises ``ValueError`` with the accepted forms."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"bad size {text!r}")
    unit = (m.group(2) or "B").upper()
    value = float(m.group(1)) * _UNITS[unit]
    if value != int(value):
        raise ValueError(f"size {text!r} is not a whole number of bytes")
    return int(value)
