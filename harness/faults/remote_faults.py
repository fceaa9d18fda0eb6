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
from harness.lab.inventory import HostRole, Inventory, load
from harness.lab.toml_source import did_you_mean

DEFAULT_TTL_S = 600.0


def open_inventory_host(inventory: str, host: str) -> Any:
    """The remote driver of ``host`` in inventory file ``inventory`` (not yet connected)."""
    from harness.remote import open_host

    return open_host(load(inventory).host(host))


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


class RemoteFaults:
    """The fault injector of a real site (black holes; more as the drivers grow)."""

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
            net, host = selector.split("/", 1)
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

    def build(self, spec: FaultSpec) -> Fault:
        if spec.action == "blackhole":
            return self.blackhole(spec.target)
        raise FaultError(
            f"a real site supports blackhole faults, not {spec.action!r}; "
            "run other faults against the lab"
        )

    def catalogue(self) -> list[FaultSpec]:
        """A black hole per non-public network storage hosts are on, for random schedules."""
        return [
            FaultSpec.of("blackhole", n.name)
            for n in self.inventory.networks.values()
            if not n.has_role("public")
            and any(n.name in h.addresses for h in self.inventory.hosts_with_role("storage"))
        ]
