"""The loopback lab backend: the site of an inventory, on this machine, without root.

The topology, from the inventory:

- every *storage host* is a reference target node process (``python -m
  harness.target serve``) whose portals bind that host's addresses on its iSCSI
  networks (127.x in lab.toml, port chosen by the kernel). Each HA device with a
  replica on the host is a target there (the replica's target name, alias
  ``HA1`` for the primary and ``HA1Partner`` for the others, as the seed's wizard
  names them) with one LUN on a sparse image, and every replica of a device shows
  the same serial and NAA identity;
- every *link* that leads to a storage host (one per network the host is on,
  except public-only networks) is a listener of the fault proxy daemon on that
  host's address, named ``<network>/<host>``: ``iscsi1/SWS-Store1`` forwards to
  the node's portal on iscsi1; ``sync/SWS-Store1`` and ``heartbeat/SWS-Store1``
  are the ways into the node's sync and heartbeat endpoints. Until the node
  publishes those endpoints (the HA layer's ``sync`` / ``heartbeat`` entries in
  its ready record) such a link points at nothing, and connecting to it is
  refused; ``LoopbackLab.retarget`` re-points a link once they exist;
- a *witness* host named by a node-majority device runs the witness process
  (``harness.lab.witness_daemon``, a lab node like the storage nodes, so process
  faults apply to it); each replica's node asks it through its own proxy link
  ``<network>/<witness>/<node>`` (``harness.lab.ha_wiring``);
- cluster nodes and the domain controller run no process of the lab: the
  harness's initiators act for the cluster nodes, binding their addresses. A
  cluster node with an address on a heartbeat network gets a link
  ``heartbeat/<node>`` (purpose ``cluster-heartbeat``) that points at nothing
  until ``harness.cluster`` starts that node and retargets it, so the
  nemesis can cut the cluster's heartbeat like any other link.

Everything lives in the lab's state directory (``harness.lab.state``), so
``lab down`` and ``lab status`` work from any process, and ``lab down`` leaves
no process and no file behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

from harness.errors import SplitbrainError
from harness.lab.backend import (
    TOKEN_ENV,
    LabError,
    NodeCommand,
    NodeLab,
    abandon_bring_up,
    inventory_summary,
    link_purpose,
    node_config,
    reference_target_command,
)
from harness.lab.ha_wiring import (
    HaPair,
    WitnessPlan,
    ha_device_tables,
    ha_links,
    node_supports_ha,
    plan_pairs,
    plan_witnesses,
)
from harness.lab.inventory import Host, Inventory, Network, NetworkRole
from harness.lab.node_process import (
    NodeProcess,
    NodeProcessError,
    process_start_ticks,
)
from harness.lab.proxy import ProxyControl, ProxyError
from harness.lab.proxy_daemon import write_private_json
from harness.lab.state import LabRecord, LinkRecord, default_state_dir

PROXY = "fault-proxy"


class LoopbackLab(NodeLab):
    """Brings the lab of an inventory up and down on loopback; reads its state."""

    @classmethod
    def for_inventory(
        cls,
        inventory: Inventory,
        state_dir: Path | None = None,
        *,
        node_command: NodeCommand = reference_target_command,
    ) -> LoopbackLab:
        lab = inventory.lab
        root = state_dir or (lab.state_dir if lab and lab.state_dir else None)
        return cls(root or default_state_dir(inventory.site.name), node_command=node_command)

    # -- up ----------------------------------------------------------------------------------

    def up(self, inventory: Inventory, *, owner_pid: int | None = None) -> LabRecord:
        """Start the lab; ``owner_pid``: the lab dies with that process (a test session)."""
        if inventory.lab is not None and inventory.lab.backend != "loopback":
            raise LabError(
                f"{inventory.path}: lab.backend is {inventory.lab.backend!r}; "
                "this is the loopback backend"
            )
        if not inventory.hosts_with_role("storage"):
            raise LabError(f"{inventory.path}: no storage host; a lab needs at least one")
        if self.state.exists():
            if self.running():
                raise LabError(
                    f"a lab is already up at {self.state.root}; run `splitbrain lab down` first"
                )
            self.down()  # the leftovers of a crashed lab
        self.state.create()
        token_file = self.state.root / "token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24))
        record = LabRecord(str(Path(inventory.path).resolve()), "loopback", inventory.site.name)
        if owner_pid is not None:
            record.extra["owner"] = {
                "pid": owner_pid,
                "start_ticks": process_start_ticks(owner_pid),
            }
        try:
            wire_ha = node_supports_ha() if self.ha is None else self.ha
            pairs = plan_pairs(inventory, witnesses=True) if wire_ha else []
            witnesses = plan_witnesses(inventory, pairs)
            self._start_proxy(inventory, record, pairs, witnesses)
            self.state.save(record)
            for plan in witnesses.values():
                record.extra.setdefault("witnesses", {})[plan.host] = f"{plan.address}:{plan.port}"
                record.nodes[plan.host] = self._start_witness(plan)
                self.state.save(record)
            ports = {name: link.listen[1] for name, link in record.links.items()}
            for host in inventory.hosts_with_role("storage"):
                ha = ha_device_tables(inventory, host.name, pairs, ports, witnesses)
                record.nodes[host.name] = self._start_node(inventory, host, token_file, ha)
                self.state.save(record)
            self._point_portals(record)
            self.state.save(record)
            if pairs and self.wait_sync:
                self.wait_synchronized([p.alias for p in pairs])
        except (SplitbrainError, OSError) as exc:
            raise abandon_bring_up(self, record, exc, f"the lab in {self.state.root}") from None
        return record

    def _start_node(
        self, inventory: Inventory, host: Host, token_file: Path, ha: list[str]
    ) -> NodeProcess:
        home = self.state.node_dir(host.name)
        home.mkdir(parents=True, exist_ok=True)
        config = home / "node.toml"
        data = home / "data"
        config.write_text(node_config(inventory, host, data, extra=ha), encoding="utf-8")
        node = NodeProcess(
            host=host.name,
            argv=self.node_command(config, home / "ready.json"),
            cwd=str(home),
            log=str(self.state.root / "logs" / f"{host.name}.log"),
            ready_file=str(home / "ready.json"),
            env_files={TOKEN_ENV: str(token_file)},
        )
        try:
            running = node.start()
        except NodeProcessError as exc:
            raise LabError(f"storage node {host.name} did not start: {exc}") from None
        # pin the ports the kernel chose, so a restart (a fault's heal) listens there again
        ready = running.ready() or {}
        ports = {p["address"]: int(p["port"]) for p in ready.get("portals", [])}
        management = str(ready.get("management") or "http://127.0.0.1:0").split("//", 1)[-1]
        pinned = node_config(inventory, host, data, ports, management.rstrip("/"), ha)
        config.write_text(pinned, encoding="utf-8")
        return running

    def _start_witness(self, plan: WitnessPlan) -> NodeProcess:
        from harness.lab.witness_daemon import WitnessDaemonError, start_witness

        try:
            return start_witness(
                plan, self.state.node_dir(plan.host), self.state.root / "logs" / f"{plan.host}.log"
            )
        except WitnessDaemonError as exc:
            raise LabError(str(exc)) from None

    def _start_proxy(
        self,
        inventory: Inventory,
        record: LabRecord,
        pairs: list[HaPair],
        witnesses: dict[str, WitnessPlan] | None = None,
    ) -> None:
        """Start the proxy with every link; portals point at their nodes once those run."""
        links: dict[str, LinkRecord] = {}

        def add(
            name: str, net: Network, host: str, address: str, upstream_port: int, purpose: str
        ) -> None:
            roles = tuple(sorted(r.value for r in net.roles))
            links[name] = LinkRecord(
                name, net.name, host, roles, (address, 0), (address, upstream_port), purpose
            )

        for host in inventory.hosts_with_role("storage"):
            for net_name, address in sorted(host.addresses.items()):
                net = inventory.network(net_name)
                purpose = link_purpose(net.roles)
                if purpose == "portal" or (purpose and not pairs):
                    add(f"{net_name}/{host.name}", net, host.name, str(address), 0, purpose)
        for host in inventory.hosts_with_role("cluster-node"):
            # the cluster's own heartbeat: points at nothing until the cluster node runs
            for net_name, address in sorted(host.addresses.items()):
                net = inventory.network(net_name)
                if NetworkRole.HEARTBEAT in net.roles:
                    add(f"{net_name}/{host.name}", net, host.name, str(address), 0,
                        "cluster-heartbeat")
        for ha in ha_links(inventory, pairs):
            add(ha.name, inventory.network(ha.network), ha.listener, ha.address, ha.port,
                ha.purpose)
        for plan in (witnesses or {}).values():
            for client in plan.clients:
                net = inventory.network(plan.network)
                add(plan.link(client), net, plan.host, plan.address, plan.port, "witness")
        specs = [
            {
                "name": n,
                "listen_host": link.listen[0],
                "listen_port": 0,
                "upstream_host": link.upstream[0],
                "upstream_port": link.upstream[1],
            }
            for n, link in links.items()
        ]
        links_file = self.state.root / "proxy-links.json"
        write_private_json(links_file, specs)
        proxy = NodeProcess(
            host=PROXY,
            argv=(
                sys.executable,
                "-m",
                "harness.lab.proxy_daemon",
                "--links",
                str(links_file),
                "--endpoint",
                str(self.state.endpoint_file),
            ),
            cwd=str(self.state.root),
            log=str(self.state.root / "logs" / "proxy.log"),
            ready_file=str(self.state.endpoint_file),
        )
        try:
            record.proxy = proxy.start()
        except NodeProcessError as exc:
            raise LabError(f"the fault proxy did not start: {exc}") from None
        ports = (record.proxy.ready() or {}).get("links", {})
        record.links = {
            n: dataclasses.replace(link, listen=(link.listen[0], int(ports[n]["port"])))
            for n, link in links.items()
        }

    def _point_portals(self, record: LabRecord) -> None:
        """Point each portal link at the port its node's portal listens on."""
        control = self.proxy()
        for name, link in record.links.items():
            if link.purpose != "portal":
                continue
            ready = record.nodes[link.host].ready() or {}
            port = next(
                (
                    int(p["port"])
                    for p in ready.get("portals", [])
                    if p["address"] == link.listen[0]
                ),
                0,
            )
            if not port:
                raise LabError(
                    f"node {link.host} serves no portal on {link.listen[0]}; "
                    f"see {record.nodes[link.host].log}"
                )
            control.set_upstream(name, link.upstream[0], port)
            record.links[name] = dataclasses.replace(link, upstream=(link.upstream[0], port))

    # -- running lab -------------------------------------------------------------------------

    def proxy(self) -> ProxyControl:
        endpoint = self.state.endpoint()
        if endpoint is None:
            raise LabError(f"no fault proxy endpoint in {self.state.root}; is the lab up?")
        return ProxyControl.from_endpoint(endpoint)

    def retarget(self, link: str, host: str, port: int) -> None:
        """Point a link at a new upstream (e.g. a node's sync listener once HA created it)."""
        with self.state.locked():
            record = self.state.load()
            if link not in record.links:
                raise LabError(f"no lab link {link!r}; links: {', '.join(record.links)}")
            self.proxy().set_upstream(link, host, port)
            old = record.links[link]
            record.links[link] = LinkRecord(
                old.name, old.network, old.host, old.roles, old.listen, (host, port), old.purpose
            )
            self.state.save(record)

    def token(self) -> str:
        return (self.state.root / "token").read_text().strip()

    def management_url(self, host: str) -> str:
        node = self.record().nodes.get(host)
        ready = node.ready() if node and node.alive else None
        if not ready:
            raise LabError(f"lab node {host} is not running")
        if not ready.get("management"):
            raise LabError(f"lab node {host} publishes no management API in {node.ready_file}")
        return str(ready["management"])

    # -- down --------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop every process of the lab and remove its state directory; return what stopped."""
        if not self.state.root.exists():
            return []
        stopped: list[str] = []
        record = self.leftover_record()
        if record is not None:
            processes = [*record.nodes.values(), *([record.proxy] if record.proxy else [])]
            for process in processes:
                if process.alive:
                    process.stop()  # SIGCONT (a frozen node), SIGTERM, SIGKILL at the deadline
                    stopped.append(f"{process.host} (pid {process.pid})")
            survivors = [p.host for p in processes if p.alive]
            if survivors:
                raise LabError(
                    f"lab processes {survivors} survived SIGKILL; state kept in {self.state.root}"
                )
        shutil.rmtree(self.state.root)
        with contextlib.suppress(OSError):
            if self.state.root.parent.name.startswith("splitbrain-"):
                self.state.root.parent.rmdir()  # only if no other lab lives there
        return stopped

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Hosts, links, devices and sessions of the running lab (JSON-ready)."""
        from harness.lab.inventory import load

        record = self.record()
        inventory = load(record.inventory)
        try:
            links = self.proxy().status()
        except (LabError, ProxyError) as exc:
            links = {"error": str(exc)}
        nodes: dict[str, Any] = {}
        for host, node in record.nodes.items():
            state = "frozen" if node.frozen else ("running" if node.alive else "down")
            nodes[host] = {"state": state, "pid": node.pid, "sessions": [], "devices": []}
            if host in record.extra.get("witnesses", {}):
                nodes[host] = {
                    "state": state,
                    "pid": node.pid,
                    "role": "witness",
                    "listen": record.extra["witnesses"][host],
                }
            elif state == "running":
                nodes[host] |= self._node_status(host)
        return {
            "state_dir": str(self.state.root),
            "site": record.site,
            "inventory": record.inventory,
            "nodes": nodes,
            "proxy": {
                "pid": record.proxy.pid if record.proxy else None,
                "alive": bool(record.proxy and record.proxy.alive),
            },
            "links": {
                n: link.to_json() | {"proxy": links.get(n) if isinstance(links, dict) else None}
                for n, link in record.links.items()
            },
            **inventory_summary(inventory),
        }

    def _node_status(self, host: str) -> dict[str, Any]:
        from harness.target.management import ManagementClient

        try:
            client = ManagementClient(self.management_url(host), self.token(), timeout=5.0)
            return {
                "sessions": client.sessions(),
                "devices": client.targets(),
                "replicas": self._replicas(client),
            }
        except SplitbrainError as exc:
            return {"error": str(exc)}

    @staticmethod
    def _replicas(client: Any) -> Any:
        """The node's HA replicas (state, partner state, links, resync); None without HA."""
        try:
            return client.request("GET", "/v1/ha")
        except SplitbrainError:
            return None

    def ha_states(self) -> dict[str, dict[str, str]]:
        """``{alias: {host: state}}`` of every HA replica on the running nodes."""
        from harness.target.management import ManagementClient

        states: dict[str, dict[str, str]] = {}
        record = self.record()
        for host, node in record.nodes.items():
            if not node.alive or host in record.extra.get("witnesses", {}):
                continue
            client = ManagementClient(self.management_url(host), self.token(), timeout=5.0)
            for replica in self._replicas(client) or []:
                states.setdefault(replica["alias"], {})[host] = replica["state"]
        return states
