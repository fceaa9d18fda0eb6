"""How the lab wires HA devices: which replica listens, which dials, and through which link.

For every device with two replicas, the higher-priority replica (priority 1) is
the *listener*: its node accepts the device's sync and heartbeat channels on its
addresses on the sync and heartbeat networks, on ports chosen for it (the
*backend* ports). The other replica *dials* them, but never directly: it dials
the fault proxy's link ``<network>/<listener>/<alias>`` (``sync/SWS-Store1/HA1``),
which forwards to the backend port. So cutting or black-holing ``sync`` (the
network) or ``SWS-Store1`` (the host) breaks the device's sync channel exactly as
a switch or cable would, and the nemesis needs no knowledge of HA internals.

The node config gets one ``[[ha_device]]`` table per replica (the reference
target's HA format: alias, target, lun, priority and partner priority, listen or
partner addresses, strategy, ALUA groups).

A node-majority device needs its third vote: the inventory's witness host (role
``witness``) runs a witness process (``harness.lab.witness_daemon``) on its
address on a network it shares with the replicas, preferring one that carries
neither sync nor heartbeat (a public network: the witness must not fail with
the very links it arbitrates). Each replica's node reaches it through its own
proxy link ``<network>/<witness>/<node>`` (``public/SWS-Witness/SWS-Store2``), so
a test can cut one node off the witness, or the witness off everyone (select
its host), and ``witness = "ADDRESS:PORT"`` in the node's table names that link.

``node_supports_ha()`` says whether
the installed reference target reads those tables yet; until it does, the lab
serves every replica as a plain LUN and leaves the sync and heartbeat links
pointing at nothing (connections are refused), ready to be re-pointed.
"""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SplitbrainError
from harness.lab.inventory import FailoverStrategy, HaDevice, Inventory, NetworkRole

#: the lab's HA timers (seconds): a sync link silent this long is lost (an ORDER not
#: acknowledged this long too), and a live partner answers a heartbeat within this.
#: Tighter than a real site's, so a failover costs about half a second (bench/RESULTS.md)
LAB_TIMEOUTS = {"sync_timeout": 0.5, "heartbeat_timeout": 0.25}


class HaWiringError(SplitbrainError):
    """An HA device of a lab inventory cannot be wired in the lab."""


@dataclass(frozen=True)
class HaPair:
    """One HA device's two replicas and the channels between them."""

    alias: str
    listener: str  # host of the priority-1 replica
    dialer: str
    listener_priority: int
    dialer_priority: int
    sync_network: str
    heartbeat_network: str | None
    sync_port: int  # the listener's backend ports
    heartbeat_port: int | None
    strategy: str
    witness: str | None = None  # host of the witness (node-majority)


@dataclass(frozen=True)
class WitnessPlan:
    """Where one witness host's process listens and which storage nodes ask it."""

    host: str
    network: str
    address: str
    port: int  # the witness process's own port (the proxy links forward to it)
    clients: tuple[str, ...]  # storage hosts whose replicas ask this witness

    def link(self, client: str) -> str:
        return link_name(self.network, self.host, client)


def node_supports_ha() -> bool:
    """Whether the reference target's node configuration accepts ``[[ha_device]]`` tables."""
    from harness.target.config import ConfigError, parse_config

    probe = {
        "node": {"name": "probe", "data_dir": "/nonexistent"},
        "portal": [{"address": "127.0.0.1", "port": 0}],
        "ha_device": [],
    }
    try:
        parse_config(probe, source="probe", env={})
    except ConfigError as exc:
        return "ha_device" not in str(exc)
    return True


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(address: str, rng: random.Random | None = None) -> int:
    """A free port on ``address`` *below* the kernel's ephemeral range.

    The node binds it later; meanwhile the proxy and everyone else bind port 0, and
    the kernel never hands out a port outside its ephemeral range, so nobody can
    take this one in between (a port-0 probe would be released into that very pool).
    """
    rng = rng or random.SystemRandom()
    low, _ = _ephemeral_range()
    for _ in range(200):
        port = rng.randrange(10000, max(10001, low))
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
            try:
                s.bind((address, port))
            except OSError:
                continue
            return port
    raise HaWiringError(
        f"no free port below the ephemeral range on {address}; free some ports or widen the range"
    )


def _shared(inventory: Inventory, device: HaDevice, role: NetworkRole) -> str | None:
    hosts = [inventory.host(r.host) for r in device.replicas]
    for name, net in inventory.networks.items():
        if net.has_role(role) and all(name in h.addresses for h in hosts):
            return name
    return None


def plan_pairs(
    inventory: Inventory,
    port_for: Callable[[str, int], int] | None = None,
    *,
    witnesses: bool = False,
) -> list[HaPair]:
    """The HA pairs of a lab inventory, with backend ports allocated for the listeners.

    ``port_for(address, n)`` picks the listener's ``n``-th port on ``address`` (default:
    a free port on this machine; the netns lab, where every host has its own port space,
    uses fixed ones). ``witnesses``: whether the backend runs witness processes, which
    node-majority devices need.
    """
    port_for = port_for or (lambda address, n: free_port(address))
    pairs = []
    for device in inventory.devices.values():
        if len(device.replicas) != 2:
            continue  # one replica: a plain LUN; three or more: not a pair
        if device.strategy is FailoverStrategy.NODE_MAJORITY and not witnesses:
            raise HaWiringError(
                f"{inventory.path}: devices.{device.alias} uses node-majority, "
                "but this lab backend runs no witness process; use the loopback "
                'backend or strategy = "heartbeat"'
            )
        if device.strategy is FailoverStrategy.NODE_MAJORITY and device.witness is None:
            raise HaWiringError(
                f"{inventory.path}: devices.{device.alias}: a node-majority pair needs a "
                'witness; add witness = "HOST" (a host with the witness role)'
            )
        first, second = sorted(device.replicas, key=lambda r: r.priority)
        sync = _shared(inventory, device, NetworkRole.SYNC)
        heartbeat = _shared(inventory, device, NetworkRole.HEARTBEAT)
        if sync is None:
            raise HaWiringError(
                f"{inventory.path}: devices.{device.alias}: replicas share no sync network"
            )
        listener = inventory.host(first.host)
        pairs.append(
            HaPair(
                device.alias,
                first.host,
                second.host,
                first.priority,
                second.priority,
                sync,
                heartbeat,
                port_for(str(listener.addresses[sync]), 2 * len(pairs)),
                port_for(str(listener.addresses[heartbeat]), 2 * len(pairs) + 1)
                if heartbeat
                else None,
                device.strategy.value,
                device.witness if device.strategy is FailoverStrategy.NODE_MAJORITY else None,
            )
        )
    return pairs


def _witness_network(inventory: Inventory, witness: str, clients: list[str]) -> str:
    hosts = [inventory.host(h) for h in (witness, *clients)]
    shared = [
        net
        for name, net in sorted(inventory.networks.items())
        if all(name in h.addresses for h in hosts)
    ]
    if not shared:
        raise HaWiringError(
            f"{inventory.path}: witness host {witness} shares no network with "
            f"{', '.join(clients)}; give it an address on their public network"
        )
    arbitrated = (NetworkRole.SYNC, NetworkRole.HEARTBEAT)
    apart = [n for n in shared if not any(n.has_role(r) for r in arbitrated)]
    return (apart or shared)[0].name


def plan_witnesses(
    inventory: Inventory,
    pairs: list[HaPair],
    port_for: Callable[[str], int] | None = None,
) -> dict[str, WitnessPlan]:
    """The witness processes the pairs need, by witness host (ports allocated)."""
    port_for = port_for or free_port
    clients: dict[str, list[str]] = {}
    for pair in pairs:
        if pair.witness is not None:
            for host in (pair.listener, pair.dialer):
                if host not in clients.setdefault(pair.witness, []):
                    clients[pair.witness].append(host)
    plans = {}
    for witness, hosts in clients.items():
        network = _witness_network(inventory, witness, hosts)
        address = str(inventory.host(witness).addresses[network])
        plans[witness] = WitnessPlan(witness, network, address, port_for(address), tuple(hosts))
    return plans


def link_name(network: str, host: str, alias: str) -> str:
    return f"{network}/{host}/{alias}"


def ha_device_tables(
    inventory: Inventory,
    host: str,
    pairs: list[HaPair],
    proxy_ports: dict[str, int],
    witnesses: dict[str, WitnessPlan] | None = None,
) -> list[str]:
    """The ``[[ha_device]]`` TOML lines of ``host``'s node (``proxy_ports``: link -> port;
    ``witnesses``: the plan of each witness host a node-majority pair names)."""
    lines: list[str] = []
    for pair in pairs:
        if host not in (pair.listener, pair.dialer):
            continue
        device = inventory.device(pair.alias)
        replica = device.replica_on(host)
        listens = host == pair.listener
        listener = inventory.host(pair.listener)
        mine, theirs = (
            (pair.listener_priority, pair.dialer_priority)
            if listens
            else (pair.dialer_priority, pair.listener_priority)
        )
        table = {
            "alias": pair.alias,
            "target": replica.target,
            "lun": device.lun,
            "priority": mine,
            "partner_priority": theirs,
            "partner": pair.dialer if listens else pair.listener,
            "strategy": pair.strategy,
            "initial_sync": "none",
            "group": mine,
            "partner_group": theirs,
            **LAB_TIMEOUTS,
        }
        defects = device.defects_of(host)
        if defects:  # the defect zoo: a deliberately broken replica
            table["defects"] = list(defects)
        channels = [
            ("sync", pair.sync_network, pair.sync_port),
            ("heartbeat", pair.heartbeat_network, pair.heartbeat_port),
        ]
        for channel, network, port in channels:
            if network is None or port is None:
                continue
            address = str(listener.addresses[network])
            if listens:
                table[f"{channel}_listen"] = f"{address}:{port}"
            else:  # dial through the proxy's link into the listener
                table[f"partner_{channel}"] = (
                    f"{address}:{proxy_ports[link_name(network, pair.listener, pair.alias)]}"
                )
        if pair.witness is not None:  # asked through this node's own link to the witness
            plan = (witnesses or {}).get(pair.witness)
            if plan is None:
                raise HaWiringError(f"HA device {pair.alias}: witness {pair.witness} is not wired")
            table["witness"] = f"{plan.address}:{proxy_ports[plan.link(host)]}"
        lines.append("[[ha_device]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
        lines.append("")
    return lines


@dataclass(frozen=True)
class HaLink:
    """One device's sync or heartbeat link into its listener: what a backend wires."""

    name: str
    purpose: str
    network: str
    listener: str
    address: str
    port: int


def ha_links(inventory: Inventory, pairs: list[HaPair]) -> list[HaLink]:
    """The sync and heartbeat link of every pair that has that network and port."""
    links = []
    for pair in pairs:
        listener = inventory.host(pair.listener)
        for purpose, net, port in (
            ("sync", pair.sync_network, pair.sync_port),
            ("heartbeat", pair.heartbeat_network, pair.heartbeat_port),
        ):
            if net is not None and port is not None:
                links.append(HaLink(link_name(net, pair.listener, pair.alias), purpose, net,
                                    pair.listener, str(listener.addresses[net]), port))
    return links
