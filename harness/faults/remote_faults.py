"""Faults on a real site: network black holes on real hosts, through ``harness.remote``.

What ``sut.faults`` is when the inventory describes real machines. A black hole
on host H for network N drops, silently and in both directions, every packet
between H and N's address range: on Linux as rules in ``table inet splitbrain``
commented with the fault id, on Windows as firewall rules in the ``splitbrain``
group named after it (both from the remote drivers). Nothing else on the host
is touched, and heal removes exactly that fault's rules and reads back that none
is left.

Three guards keep a real site safe:

- every fault carries a TTL (default 10 minutes): the host arms its own timer
  that removes the rules even if the harness dies (the drivers' dead man's
  switch), on top of the journal that ``splitbrain heal`` replays;
- a black hole that would cut the harness off from a host (its ssh address is in
  the network's range) is refused before anything is changed;
- the journal names the inventory file and the hosts, so ``splitbrain heal`` can
  reconnect with the inventory's access settings and secrets (``${ENV}``).

Selectors read like the lab's: ``sync/SWS-Store1`` (one host's side of a
network), ``sync`` (every storage host on it), ``role:iscsi``, or a host name
(every network of that host it is not managed through).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from harness.errors import SplitbrainError
from harness.faults.fault import Fault, FaultError, HealError
from harness.faults.journal import FaultJournal
from harness.faults.nemesis import FaultSpec
from harness.lab.inventory import HostRole, Inventory
from harness.lab.toml_source import did_you_mean

DEFAULT_TTL_S = 600.0


def open_inventory_host(inventory: str, host: str) -> Any:
    """The remote driver of ``host`` (its connection kept for this process)."""
    from harness.faults.remote_catalogue import open_inventory_host as kept

    return kept(inventory, host)


class RemoteBlackHole(Fault):
    """Drop all traffic between each (host, network range) pair, tagged with the fault id."""

    kind = "remote-blackhole"
    #: how a host is reached from a journal record; tests point it at a test sshd
    opener: ClassVar[Any] = staticmethod(open_inventory_host)

    def __init__(
        self,
        inventory: str | Path,
        targets: list[tuple[str, str]],
        *,
        label: str,
        ttl_s: float = DEFAULT_TTL_S,
        journal: FaultJournal | None = None,
    ) -> None:
        if not targets:
            raise FaultError(f"black hole {label} selects no host")
        super().__init__(
            label,
            {"action": "blackhole", "targets": [f"{h}:{c}" for h, c in targets], "ttl_s": ttl_s},
            journal=journal,
        )
        self.inventory, self.targets, self.ttl_s = str(inventory), targets, ttl_s

    def apply(self) -> None:
        for host, cidr in self.targets:
            try:
                with type(self).opener(self.inventory, host) as remote:
                    if hasattr(remote, "black_hole"):
                        remote.black_hole(self.id, peer=cidr, ttl_s=self.ttl_s)
                    else:
                        remote.block(self.id, peer=cidr, ttl_s=self.ttl_s)
            except SplitbrainError as exc:
                raise FaultError(f"cannot black-hole {cidr} on {host}: {exc}") from None

    def effect(self) -> str | None:
        """The black hole's effect as its hosts count it: every host's rules dropped packets
        (Linux nft counters; None while one has dropped nothing, or on Windows)."""
        if not self.active:
            return None
        counts = []
        for host in dict.fromkeys(h for h, _ in self.targets):
            try:
                with type(self).opener(self.inventory, host) as remote:
                    if not hasattr(remote, "nft"):
                        return None
                    n = sum(r.packets for r in remote.nft.rules(self.id))
            except SplitbrainError:
                return None
            if not n:
                return None
            counts.append(f"{n} on {host}")
        return (f"packets of {', '.join(f'{h} with {c}' for h, c in self.targets)} dropped by "
                f"the fault's rules ({', '.join(counts)})")

    def undo_record(self) -> dict[str, Any]:
        return {
            "inventory": self.inventory,
            "targets": [list(t) for t in self.targets],
            "tag": self.id,
        }

    @classmethod
    def heal_from(cls, undo: dict[str, Any]) -> None:
        tag = undo["tag"]
        for host in dict.fromkeys(h for h, _ in undo["targets"]):
            try:
                with cls.opener(undo["inventory"], host) as remote:
                    remote.heal(tag)
                    left = (
                        (tag in remote.faults())
                        if hasattr(remote, "faults")
                        else bool(remote.firewall_rules(tag))
                    )
            except SplitbrainError as exc:
                raise HealError(f"cannot heal black hole {tag} on {host}: {exc}") from None
            if left:
                raise HealError(f"rules of fault {tag} are still on {host} after heal")


#: the storage service and process a kind runs as, when the inventory does not say
SERVICE_DEFAULTS: dict[str, tuple[str | None, str | None]] = {
    "starwind": ("StarWindService", "StarWindService"),
    "tgt": ("tgt", "tgtd"),
    "lio": ("target", None),
    "drbd": (None, None),
    "bundled": (None, None),
}


class RemoteFaults:
    """The fault injector of a real site: black holes, storage service stop, kill and
    freeze, adapter down, one MPIO path down, host-pair black holes (see
    ``harness.faults.remote_catalogue``)."""

    #: the nemesis actions ``build`` maps onto real hosts; every other one (flap, oneway,
    #: delay, disk-*, power-loss) only the lab's proxies, disks and nodes inject
    ACTIONS: ClassVar[tuple[str, ...]] = ("blackhole", "cut", "stop", "kill", "restart",
                                          "freeze", "adapter-down", "path-drop",
                                          "pair-blackhole")

    def __init__(
        self,
        inventory: Inventory,
        *,
        journal: FaultJournal | None = None,
        ttl_s: float = DEFAULT_TTL_S,
    ) -> None:
        self.inventory = inventory
        self.journal = journal if journal is not None else FaultJournal()
        self.ttl_s = ttl_s

    def pairs(self, selector: str) -> list[tuple[str, str]]:
        """(host, network) pairs a selector designates; refuses to cut off management."""
        inv = self.inventory
        if "/" in selector:
            net, host = selector.split("/", 2)[:2]  # net/host or net/host/alias (a link)
            found = [(inv.host(host).name, inv.network(net).name)]
            if net not in inv.host(host).addresses:
                raise FaultError(f"host {host} is not on network {net}")
        elif selector.startswith("role:"):
            found = [
                (h.name, n.name)
                for n in inv.networks_with_role(selector[5:])
                for h in inv.hosts_with_role(HostRole.STORAGE)
                if n.name in h.addresses
            ]
        elif selector in inv.networks:
            found = [
                (h.name, selector)
                for h in inv.hosts_with_role(HostRole.STORAGE)
                if selector in h.addresses
            ]
        elif selector in inv.hosts:
            found = [
                (selector, n)
                for n in inv.hosts[selector].addresses
                if not self._manages(selector, n)
            ]
        else:
            words = [*inv.networks, *inv.hosts]
            raise FaultError(
                f"no host or network matches {selector!r} ({did_you_mean(selector, words)})"
            )
        for host, net in found:
            if self._manages(host, net):
                raise FaultError(
                    f"black-holing {net} on {host} would cut the harness off from "
                    f"it (its ssh address is in {inv.network(net).cidr}); "
                    "pick another network or reach the host another way"
                )
        if not found:
            raise FaultError(f"{selector!r} selects no storage host")
        return found

    def _manages(self, host: str, network: str) -> bool:
        import ipaddress

        access = self.inventory.host(host).access
        if access is None:
            return False
        try:
            return ipaddress.ip_address(access.host) in self.inventory.network(network).cidr
        except ValueError:
            return False  # a DNS name: the inventory's addresses cannot tell

    def blackhole(self, selector: str) -> RemoteBlackHole:
        targets = [(h, str(self.inventory.network(n).cidr)) for h, n in self.pairs(selector)]
        return RemoteBlackHole(
            self.inventory.path, targets, label=selector, ttl_s=self.ttl_s, journal=self.journal
        )

    # -- the catalogue on real hosts ---------------------------------------------------

    def storage_host(self, selector: str) -> str:
        """A storage host by name, or ``primary``/``secondary`` (``primary:HA1``) of a
        device (default: the first test device)."""
        inv = self.inventory
        role, _, alias = selector.partition(":")
        if role in ("primary", "secondary"):
            devices = [inv.device(alias)] if alias else inv.test_devices
            if not devices:
                raise FaultError(f"{selector!r}: {inv.path} marks no test device (test = true)")
            ranked = sorted(devices[0].replicas, key=lambda r: r.priority)
            return (ranked[0] if role == "primary" else ranked[-1]).host
        host = inv.host(selector)
        if not host.has_role(HostRole.STORAGE):
            raise FaultError(f"{selector} is not a storage host")
        return host.name

    def require_only_test_devices(self, host: str, what: str) -> None:
        """Refuse a fault on storage ``host`` that would also break a device not marked test."""
        inv = self.inventory
        held = [d for d in inv.devices.values() if any(r.host == host for r in d.replicas)]
        if not held:
            raise FaultError(f"refused: {what} on {host} breaks no device of the inventory")
        others = [d.alias for d in held if not d.test]
        if others:
            raise FaultError(
                f"refused: {what} on {host} would also break {', '.join(others)}, not marked "
                "as test devices (test = true); only a site whose every device there is a "
                "test device may be broken this way")

    def _service_and_process(self) -> tuple[str | None, str | None]:
        storage = self.inventory.storage
        default_service, default_process = SERVICE_DEFAULTS.get(storage.kind, (None, None))
        return storage.service or default_service, storage.process or default_process

    def _common(self, spec_ttl: float | None) -> dict[str, Any]:
        return {"inventory": self.inventory.path, "journal": self.journal,
                "ttl_s": spec_ttl or self.ttl_s}

    def stop(self, selector: str, ttl_s: float | None = None) -> Fault:
        from harness.faults.remote_catalogue import RemoteServiceStop

        host = self.storage_host(selector)
        service, _ = self._service_and_process()
        if not service:
            raise FaultError("stopping the storage service needs [storage] service = \"UNIT\"")
        self.require_only_test_devices(host, f"stopping {service}")
        return RemoteServiceStop(host=host, label=f"{selector}", service=service,
                                 **self._common(ttl_s))

    def _process_fault(self, cls: Any, selector: str, ttl_s: float | None) -> Fault:
        host = self.storage_host(selector)
        service, process = self._service_and_process()
        process = process.replace("{host}", host) if process else process
        if not process:
            raise FaultError(f"{cls.action} needs the storage process: add [storage] process")
        self.require_only_test_devices(host, f"{cls.action} of {process}")
        return cls(host=host, label=selector, process=process, service=service,
                   **self._common(ttl_s))

    def kill(self, selector: str, ttl_s: float | None = None) -> Fault:
        from harness.faults.remote_catalogue import RemoteProcessKill

        return self._process_fault(RemoteProcessKill, selector, ttl_s)

    def freeze(self, selector: str, ttl_s: float | None = None) -> Fault:
        from harness.faults.remote_catalogue import RemoteFreeze

        return self._process_fault(RemoteFreeze, selector, ttl_s)

    def adapter_down(self, selector: str, ttl_s: float | None = None) -> Fault:
        """``sync/Store1``: Store1's adapter on network sync (a host alone: its sync network)."""
        from harness.faults.remote_catalogue import RemoteAdapterDown

        inv = self.inventory
        net, _, name = selector.rpartition("/")
        host = inv.host(self.storage_host(name) if not inv.hosts.get(name) else name)
        if not net:
            syncs = [n.name for n in inv.networks_with_role("sync") if n.name in host.addresses]
            if not syncs:
                raise FaultError(f"{host.name} is on no sync network; say which: NET/{host.name}")
            net = syncs[0]
        if self._manages(host.name, net):
            raise FaultError(f"taking {net} down on {host.name} would cut the harness off from it")
        self.require_only_test_devices(host.name, f"taking the {net} adapter down")
        return RemoteAdapterDown(host=host.name, label=f"{net}/{host.name}",
                                 interface=host.interface(net), network=net,
                                 **self._common(ttl_s))

    def path_drop(self, selector: str, ttl_s: float | None = None, reset: bool = False) -> Fault:
        """``Node1->iscsi/Store1``: the node's path to Store1's portal on network iscsi
        (silently dropped; with ``reset``, cut: its TCP is answered with resets)."""
        from harness.faults.remote_catalogue import RemotePathDrop

        inv = self.inventory
        node, arrow, rest = selector.partition("->")
        net, _, storage = rest.partition("/")
        if not arrow or not storage:
            raise FaultError(f"path {selector!r} is not NODE->NETWORK/STORAGE_HOST")
        if not inv.host(node).has_role(HostRole.CLUSTER_NODE):
            raise FaultError(f"{node} is not a cluster node")
        if self._manages(node, net):
            raise FaultError(f"dropping {net} on {node} would cut the harness off from it")
        self.require_only_test_devices(storage, f"dropping the path from {node}")
        portal = str(inv.host(storage).address(net))
        return RemotePathDrop(host=node, label=selector, peer=portal,
                              port=inv.site.iscsi_port, require_drops=True, reset=reset,
                              **self._common(ttl_s))

    def pair_blackhole(self, selector: str, network: str | None = None, port: int | None = None,
                       ttl_s: float | None = None) -> Fault:
        """``Store1~Store2``: Store1 drops all traffic with Store2's address on ``network``
        (default: their shared sync network), only on ``port`` when given."""
        from harness.faults.remote_catalogue import RemotePeerBlock

        inv = self.inventory
        a, sep, b = selector.partition("~")
        if not sep:
            raise FaultError(f"host pair {selector!r} is not HOST~HOST")
        ha, hb = inv.host(a), inv.host(b)
        shared = [n for n in ha.addresses if n in hb.addresses]
        if network is None:
            syncs = [n for n in shared if inv.network(n).has_role("sync")]
            if not syncs:
                raise FaultError(f"{a} and {b} share no sync network; pass network=")
            network = syncs[0]
        if network not in shared:
            raise FaultError(f"{a} and {b} do not share network {network}")
        if self._manages(a, network):
            raise FaultError(f"black-holing {network} on {a} would cut the harness off from it")
        self.require_only_test_devices(a, f"black-holing {b}")
        return RemotePeerBlock(host=a, label=f"{selector}@{network}" + (f":{port}" if port
                                                                        else ""),
                               peer=str(hb.address(network)), port=port,
                               **self._common(ttl_s))

    def _link(self, selector: str) -> tuple[str, str] | None:
        """(network, host) of a lab-style link selector ``net/host[/alias]``, else None."""
        parts = selector.split("/")
        if len(parts) in (2, 3) and parts[0] in self.inventory.networks \
                and parts[1] in self.inventory.hosts:
            return parts[0], parts[1]
        return None

    def paths_to(self, network: str, storage: str, ttl_s: float | None = None,
                 reset: bool = False) -> Fault:
        """Every cluster node's path to ``storage``'s portal on ``network``, dropped."""
        from harness.faults.fault import CompositeFault

        nodes = [n.name for n in self.inventory.hosts_with_role(HostRole.CLUSTER_NODE)
                 if network in n.addresses]
        if not nodes:
            raise FaultError(f"no cluster node is on {network}: no path to {storage} to drop")
        parts = [self.path_drop(f"{n}->{network}/{storage}", ttl_s=ttl_s, reset=reset)
                 for n in nodes]
        return parts[0] if len(parts) == 1 else CompositeFault(
            f"{network}/{storage}", parts, action="path-drop", journal=self.journal)

    def build(self, spec: FaultSpec) -> Fault:
        """A fault from a nemesis spec. The lab's words map onto real hosts: on a link
        ``net/host[/alias]`` of an iSCSI network, ``cut`` resets and ``blackhole`` silently
        drops every cluster node's path to that portal; on a sync or heartbeat link, ``blackhole``
        drops the host's traffic on that network and ``cut`` takes its adapter down;
        ``restart`` of a storage host is a kill its service manager restarts."""
        kw = spec.kwargs
        ttl = kw.pop("ttl_s", None)
        link = self._link(spec.target)
        if link is not None and spec.action in ("cut", "blackhole"):
            network, host = link
            if self.inventory.network(network).has_role("iscsi"):
                return self.paths_to(network, host, ttl_s=ttl, reset=spec.action == "cut")
            if spec.action == "cut":
                return self.adapter_down(f"{network}/{host}", ttl_s=ttl)
        if spec.action == "restart":
            return self.kill(spec.target, ttl_s=ttl)
        if spec.action == "blackhole":
            return self.blackhole(spec.target)
        builders = {"stop": self.stop, "kill": self.kill, "freeze": self.freeze,
                    "adapter-down": self.adapter_down, "path-drop": self.path_drop}
        if spec.action in builders:
            return builders[spec.action](spec.target, ttl_s=ttl)
        if spec.action == "pair-blackhole":
            return self.pair_blackhole(spec.target, ttl_s=ttl, **kw)
        raise FaultError(
            f"a real site has no fault {spec.action!r} (the lab's proxies do that); use one "
            f"of {', '.join(self.ACTIONS)}")

    def catalogue(self) -> list[FaultSpec]:
        """Every fault this site's inventory allows, for random schedules: black holes of
        non-public storage networks, and, where every device of the storage hosts is a
        test device, the service/process faults on the primary and the secondary, the
        sync adapter, host-pair black holes and each cluster node's paths."""
        inv = self.inventory
        specs = [
            FaultSpec.of("blackhole", n.name)
            for n in inv.networks.values()
            if not n.has_role("public")
            and any(n.name in h.addresses for h in inv.hosts_with_role("storage"))
        ]
        if not inv.test_devices:
            return specs
        service, process = self._service_and_process()
        candidates: list[FaultSpec] = []
        for role in ("primary", "secondary"):
            if service:
                candidates.append(FaultSpec.of("stop", role))
            if process:
                candidates += [FaultSpec.of("kill", role), FaultSpec.of("freeze", role)]
        storage = [r.host for r in inv.test_devices[0].replicas]
        for host in storage:
            if any(n.name in inv.host(host).interfaces for n in inv.networks_with_role("sync")):
                candidates.append(FaultSpec.of("adapter-down", host))
        if len(storage) > 1:
            candidates.append(FaultSpec.of("pair-blackhole", f"{storage[0]}~{storage[1]}"))
        for node in inv.hosts_with_role(HostRole.CLUSTER_NODE):
            for net in inv.networks_with_role("iscsi"):
                if net.name in node.addresses:
                    candidates += [FaultSpec.of("path-drop", f"{node.name}->{net.name}/{h}")
                                   for h in storage if net.name in inv.host(h).addresses]
        for spec in candidates:
            try:
                self.build(spec)
            except (FaultError, SplitbrainError):
                continue
            specs.append(spec)
        return specs
