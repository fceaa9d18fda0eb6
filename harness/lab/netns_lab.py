"""The netns lab backend: the inventory's topology as real, separated networks (root, Linux).

The topology, built from ``harness.lab.netns`` primitives:

- one network namespace per host (``sb-<run>-<host>``), whatever its role, so a
  cluster node is a place the initiator can run from;
- one Linux bridge per network, all in a *switch* namespace (``sb-<run>-switch``),
  so nothing is created in the machine's own namespace;
- a veth per (host, network): ``eth<i>`` in the host (``i`` is the network's index
  in the inventory) with the host's address and the network's prefix, its peer a
  port of that network's bridge.

Networks are separated the way the seed separates them: a host reaches a network
only if it has an address on it, and no namespace routes between its interfaces,
so the heartbeat network cannot be reached from the iSCSI or public networks.
Storage nodes are reference target processes started inside their host's
namespace (``ip netns exec``), with portals on port ``site.iscsi_port`` of each
of the host's iSCSI addresses; every namespace has its own port space.

Link faults here are kernel faults, not proxy states (``harness.faults.netns_link``):
nftables drop rules tagged with the fault id in the host's ``table inet
splitbrain`` (a black hole), or the interface set down. ``down`` sweeps the run's
prefix: namespaces, bridges, veths, rules and every process inside them.

HA devices are wired as in the loopback lab (``harness.lab.ha_wiring``), except
that the partner dials the listener directly over the sync and heartbeat
bridges (ports 3261, 3262, ... in the listener's namespace): the links
``sync/<host>/<alias>`` are the listener's interfaces, broken in the kernel.
The nodes' management APIs listen inside their namespaces; ``ha_states`` asks
them from there, and ``up`` waits until every replica is Synchronized.

An initiator runs from a host's namespace too: ``sockets(host)`` is a socket
factory (``harness.initiator.connection.SocketFactory``) whose sockets live in
the host's namespace, bound to the host's own address on the portal's network,
so a cluster node's iSCSI connections obey the same separation as its traffic.

Lab addresses must not be loopback addresses (127/8 is martian on a veth); the
netns inventory (``lab-netns.toml``) uses documentation ranges that exist only
inside the lab's namespaces.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import SplitbrainError
from harness.lab import netns
from harness.lab.backend import (
    TOKEN_ENV,
    LabError,
    NodeLab,
    abandon_bring_up,
    inventory_summary,
    link_purpose,
    node_config,
)
from harness.lab.ha_wiring import (
    HaPair,
    ha_device_tables,
    ha_links,
    node_supports_ha,
    plan_pairs,
)
from harness.lab.inventory import Inventory, NetworkRole
from harness.lab.node_process import (
    NodeProcess,
    NodeProcessError,
    process_start_ticks,
)
from harness.lab.state import LabRecord, LinkRecord

# run inside a node's namespace: print [[alias, state], ...] from its management API
_HA_QUERY = """
import json, sys
from pathlib import Path
from harness.target.management import ManagementClient
ready = json.loads(Path(sys.argv[1]).read_text())
client = ManagementClient(ready["management"], Path(sys.argv[2]).read_text().strip())
print(json.dumps([[r["alias"], r["state"]] for r in client.request("GET", "/v1/ha") or []]))
"""
HA_BASE_PORT = 3261  # the listener's sync/heartbeat ports: 3261, 3262 for the first device...


@dataclass(frozen=True)
class HostSockets:
    """Sockets made inside one lab host's namespace (a ``SocketFactory``).

    ``host_sockets(portal, port)`` gives an unconnected TCP socket in the host's
    namespace, bound to the host's own address on the network that contains
    ``portal`` (as a Windows initiator binds a path to an initiator IP); a portal
    on no network of the host gets an unbound socket, whose connect then fails the
    way the host's would (network unreachable): the lab has no routes between
    networks. Portals must be IP addresses: the lab has no name service.
    """

    host: str
    namespace: netns.Namespace
    interfaces: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...]

    def source_for(self, portal: str) -> str | None:
        """The host's address on ``portal``'s network, or None if it has none."""
        address = self._address(portal)
        return next(
            (str(i.ip) for i in self.interfaces if address in i.network), None
        )

    def _address(self, portal: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        try:
            return ipaddress.ip_address(portal)
        except ValueError:
            raise LabError(
                f"portal {portal!r} is not an IP address; the netns lab has no name service, "
                f"so connect from {self.host} to one of the lab's addresses"
            ) from None

    def __call__(self, portal: str, port: int) -> socket.socket:
        address = self._address(portal)
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = self.namespace.socket(family)
        source = self.source_for(portal)
        if source is not None:
            try:
                sock.bind((source, 0))
            except OSError:
                sock.close()
                raise
        return sock


def interface_name(inventory: Inventory, network: str) -> str:
    """``eth<i>``: the host-side interface of ``network`` (its index in the inventory)."""
    return f"eth{list(inventory.networks).index(network)}"


class NetnsLab(NodeLab):
    """Brings a namespace lab up and down (root only)."""

    def up(self, inventory: Inventory, *, owner_pid: int | None = None) -> LabRecord:
        """Build and start the lab; ``owner_pid``: the lab dies with that process."""
        netns.require_root()
        netns.require_tools(nft=True)
        for host in inventory.hosts.values():
            for net, address in host.addresses.items():
                if address.is_loopback:
                    raise LabError(
                        f"{inventory.path}: hosts.{host.name}.addresses.{net} is a "
                        f"loopback address ({address}), which cannot travel on a veth;"
                        " use a netns inventory such as lab-netns.toml"
                    )
        if self.state.exists():
            self.down()
        self.state.create()
        run = netns.new_run_id()
        record = LabRecord(str(Path(inventory.path).resolve()), "netns", inventory.site.name)
        record.extra = {"run": run, "prefix": f"{netns.PREFIX}{run}-", "namespaces": {}}
        if owner_pid is not None:
            record.extra["owner"] = {
                "pid": owner_pid,
                "start_ticks": process_start_ticks(owner_pid),
            }
        self.state.save(record)
        try:
            self._build(inventory, record, run)
            self.state.save(record)
            token_file = self.state.root / "token"
            token_file.write_text(secrets.token_urlsafe(24))
            token_file.chmod(0o600)
            pairs = (
                plan_pairs(inventory, lambda address, n: HA_BASE_PORT + n)
                if (node_supports_ha() if self.ha is None else self.ha)
                else []
            )
            self._ha_links(inventory, record, pairs)
            for host in inventory.hosts_with_role("storage"):
                direct = {n: link.listen[1] for n, link in record.links.items()}
                ha = ha_device_tables(inventory, host.name, pairs, direct)
                record.nodes[host.name] = self._start_node(
                    inventory, host.name, record, token_file, ha
                )
                self.state.save(record)
            if pairs and self.wait_sync:
                self.wait_synchronized([p.alias for p in pairs])
        except (SplitbrainError, OSError) as exc:
            raise abandon_bring_up(self, record, exc, "the netns lab") from None
        return record

    def _build(self, inventory: Inventory, record: LabRecord, run: str) -> None:
        switch = netns.add_namespace(netns.namespace_name(run, "switch"))
        record.extra["namespaces"]["switch"] = switch.name
        for h, host in enumerate(inventory.hosts.values()):
            ns = netns.add_namespace(netns.namespace_name(run, host.name))
            record.extra["namespaces"][host.name] = ns.name
            for net_name, address in sorted(host.addresses.items()):
                network = inventory.network(net_name)
                i = list(inventory.networks).index(net_name)
                ifname = interface_name(inventory, net_name)
                netns.attach(
                    ns, ifname, switch, f"br{i}", f"h{h}n{i}", f"{address}/{network.cidr.prefixlen}"
                )
                purpose = link_purpose(network.roles)
                if purpose is None or not host.has_role("storage"):
                    continue
                port = inventory.site.iscsi_port if purpose == "portal" else 0
                name = f"{net_name}/{host.name}"
                record.links[name] = LinkRecord(
                    name,
                    net_name,
                    host.name,
                    tuple(sorted(r.value for r in network.roles)),
                    (str(address), port),
                    (str(address), port),
                    purpose,
                )
        record.extra["interfaces"] = {n: interface_name(inventory, n) for n in inventory.networks}

    def _start_node(
        self,
        inventory: Inventory,
        host_name: str,
        record: LabRecord,
        token_file: Path,
        ha: list[str],
    ) -> NodeProcess:
        host = inventory.host(host_name)
        home = self.state.node_dir(host.name)
        home.mkdir(parents=True, exist_ok=True)
        config = home / "node.toml"
        ports = {
            str(a): inventory.site.iscsi_port
            for n, a in host.addresses.items()
            if inventory.network(n).has_role(NetworkRole.ISCSI)
        }
        config.write_text(
            node_config(inventory, host, home / "data", ports, extra=ha), encoding="utf-8"
        )
        namespace = record.extra["namespaces"][host.name]
        node = NodeProcess(
            host=host.name,
            argv=(
                "ip",
                "netns",
                "exec",
                namespace,
                *self.node_command(config, home / "ready.json"),
            ),
            cwd=str(home),
            log=str(self.state.root / "logs" / f"{host.name}.log"),
            ready_file=str(home / "ready.json"),
            env_files={TOKEN_ENV: str(token_file)},
        )
        try:
            return node.start()
        except NodeProcessError as exc:
            raise LabError(
                f"storage node {host.name} did not start in {namespace}: {exc}"
            ) from None

    @staticmethod
    def _ha_links(inventory: Inventory, record: LabRecord, pairs: list[HaPair]) -> None:
        """Per-device sync/heartbeat links into each listener (direct: no proxy here)."""
        if not pairs:
            return
        for name in [n for n, link in record.links.items() if link.purpose != "portal"]:
            del record.links[name]
        for ha in ha_links(inventory, pairs):
            roles = tuple(sorted(r.value for r in inventory.network(ha.network).roles))
            endpoint = (ha.address, ha.port)
            record.links[ha.name] = LinkRecord(ha.name, ha.network, ha.listener, roles, endpoint,
                                               endpoint, ha.purpose)

    def ha_states(self) -> dict[str, dict[str, str]]:
        """``{alias: {host: state}}``, asking each node's API from inside its namespace."""
        record = self.state.load()
        states: dict[str, dict[str, str]] = {}
        for host, node in record.nodes.items():
            if not node.alive:
                continue
            result = self.namespace(host).run_argv(
                [sys.executable, "-c", _HA_QUERY, node.ready_file, str(self.state.root / "token")],
                check=False,
                timeout=20,
            )
            if result.exit_status != 0:
                continue
            for alias, state in json.loads(result.stdout or "[]"):
                states.setdefault(alias, {})[host] = state
        return states

    def namespace(self, host: str) -> netns.Namespace:
        names = self.state.load().extra.get("namespaces", {})
        if host not in names:
            raise LabError(f"netns lab at {self.state.root} has no namespace for {host!r}")
        return netns.Namespace(names[host])

    def sockets(self, host: str) -> HostSockets:
        """A socket factory for connections made from ``host`` (e.g. a cluster node's
        initiator): sockets in its namespace, bound to its address on each network."""
        from harness.lab.inventory import load

        namespace = self.namespace(host)
        inventory = load(self.record().inventory)
        entry = inventory.host(host)
        interfaces = tuple(
            ipaddress.ip_interface(f"{address}/{inventory.network(net).cidr.prefixlen}")
            for net, address in sorted(entry.addresses.items())
        )
        return HostSockets(host, namespace, interfaces)

    def down(self) -> list[str]:
        """Stop the nodes, sweep the run's namespaces (with their links, rules and
        processes) and remove the state directory."""
        if not self.state.root.exists():
            return []
        stopped: list[str] = []
        record = self.leftover_record()
        if record is not None:
            for node in record.nodes.values():
                if node.alive:
                    node.stop()
                    stopped.append(f"{node.host} (pid {node.pid})")
            prefix = record.extra.get("prefix")
            if prefix:
                report = netns.sweep(prefix)
                stopped += [f"namespace {n}" for n in report.namespaces]
        shutil.rmtree(self.state.root)
        return stopped

    def status(self) -> dict[str, Any]:
        """The same shape as the loopback lab's status; links have no proxy here."""
        from harness.lab.inventory import load

        record = self.state.load()
        return {
            "state_dir": str(self.state.root),
            "site": record.site,
            "backend": "netns",
            "inventory": record.inventory,
            "namespaces": record.extra.get("namespaces", {}),
            "proxy": {"pid": None, "alive": False},
            "nodes": {
                h: {
                    "state": "frozen" if n.frozen else ("running" if n.alive else "down"),
                    "pid": n.pid,
                    "sessions": [],
                }
                for h, n in record.nodes.items()
            },
            "links": {n: link.to_json() | {"proxy": None} for n, link in record.links.items()},
            **inventory_summary(load(record.inventory)),
        }
