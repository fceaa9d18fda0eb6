"""Network: reachability, addressing and separation of the site's networks.

How a host is reached depends on the site: in the netns lab each host is a
namespace and ``ping`` runs inside it (real ICMP over the lab's bridges); on
the loopback lab every address is on ``lo``, so what can be measured honestly
is a TCP connection between the two addresses (its connect round trip); on a
real site ``ping`` runs on the host through the remote drivers (Linux
``ping``, Windows ``ping.exe``). Each check says which it did.

The design words: the seed's site carries mirror (sync) traffic on its iSCSI
network ("converged"); the best-practice design gives the mirror a dedicated
sync link. Validate Cluster Network Configuration says which one a site is.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from itertools import permutations
from typing import Any

from harness.errors import SplitbrainError
from harness.lab.inventory import Inventory, NetworkRole
from harness.remote.errors import HostUnreachable
from harness.validation.model import (
    CheckRun,
    Outcome,
    check,
    failed,
    judged,
    not_applicable,
)

NETWORK = "Network"
PINGS = 3
PARALLEL = 8


@dataclass(frozen=True)
class Probe:
    """One reachability test from an address of one host to an address of another."""

    sent: int
    received: int
    avg_ms: float | None
    max_ms: float | None
    how: str  # the command run, or "tcp connect"
    detail: str = ""
    ran: bool = True  # False: the probe itself could not run (no ping, no answer to parse)

    @property
    def loss(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 1.0


def design(inventory: Inventory) -> str:
    """"converged" (mirror traffic on the iSCSI network, the seed's) or "dedicated sync"."""
    sync = inventory.networks_with_role(NetworkRole.SYNC)
    if not sync:
        return "no sync network"
    if all(n.has_role(NetworkRole.ISCSI) for n in sync):
        return "converged (the seed's design: mirror traffic on the iSCSI network)"
    return "dedicated sync link (best practice: mirror traffic on its own network)"


_LINUX_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_LINUX_RTT = re.compile(r"= [\d.]+/([\d.]+)/([\d.]+)")
_WINDOWS_SUMMARY = re.compile(r"Sent = (\d+), Received = (\d+)")
_WINDOWS_RTT = re.compile(r"Maximum = (\d+)ms, Average = (\d+)ms")


def parse_ping(output: str, how: str) -> Probe:
    """A ``Probe`` from the output of Linux ``ping -q`` or Windows ``ping.exe``."""
    m = _LINUX_SUMMARY.search(output)
    if m:
        rtt = _LINUX_RTT.search(output)
        return Probe(int(m[1]), int(m[2]), float(rtt[1]) if rtt else None,
                     float(rtt[2]) if rtt else None, how)
    m = _WINDOWS_SUMMARY.search(output)
    if m:
        rtt = _WINDOWS_RTT.search(output)
        return Probe(int(m[1]), int(m[2]), float(rtt[2]) if rtt else None,
                     float(rtt[1]) if rtt else None, how)
    text = " ".join(output.split())[-200:]
    # no route from this host to that network: a real answer (nothing got through)
    unreachable = "Network is unreachable" in output or "Destination host unreachable" in output
    return Probe(PINGS, 0, None, None, how, text, ran=unreachable)


def ping_argv(src: str, dst: str, windows: bool = False) -> list[str]:
    if windows:
        return ["ping", "-n", str(PINGS), "-w", "1000", "-S", src, dst]
    return ["ping", "-n", "-q", "-c", str(PINGS), "-i", "0.05", "-W", "1", "-I", src, dst]


def tcp_round_trip(src: str, dst: str) -> Probe:
    """Connect from ``src`` to a listener on ``dst`` (the loopback lab's honest measure)."""
    rtts = []
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((dst, 0))
        listener.listen(PINGS)
        port = listener.getsockname()[1]
        for _ in range(PINGS):
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                try:
                    s.bind((src, 0))
                    t0 = time.monotonic_ns()
                    s.connect((dst, port))
                    rtts.append((time.monotonic_ns() - t0) / 1e6)
                except OSError as exc:
                    return Probe(PINGS, len(rtts), None, None, "tcp connect", str(exc))
            listener.accept()[0].close()
    return Probe(PINGS, len(rtts), sum(rtts) / len(rtts), max(rtts),
                 f"tcp connect {src} -> {dst}:{port}")


class HostNotProbed(SplitbrainError):
    """A probe from a host that already failed to answer (named once, not retried)."""


class Reach:
    """Runs reachability probes from hosts of a site, by the site's backend."""

    def __init__(self, site: Any) -> None:
        self.site = site
        self._remotes: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.unavailable: dict[str, str] = {}

    def can_probe_from(self, host: str) -> bool:
        if self.site.backend != "remote":
            return True
        if host in self.unavailable:
            return False
        entry = self.site.inventory.host(host)
        if entry.access is None:
            self.unavailable[host] = f"{host} has no access in the inventory"
            return False
        return True

    def probe(self, host: str, src: str, dst: str) -> Probe:
        backend = self.site.backend
        if backend == "loopback":
            return tcp_round_trip(src, dst)
        if backend == "netns":
            argv = ping_argv(src, dst)
            result = self.site.lab.namespace(host).run_argv(argv, check=False, timeout=10)
            return parse_ping(result.stdout + result.stderr, f"ip netns exec {host}: "
                                                             + " ".join(argv))
        windows = self.site.inventory.host(host).access.os == "windows"
        argv = ping_argv(src, dst, windows)
        with self._guard:
            lock = self._locks.setdefault(host, threading.Lock())
        with lock:  # one connection per host, one command at a time on it
            if host in self.unavailable:
                raise HostNotProbed(self.unavailable[host])
            if host in self.site.unreachable:
                self.unavailable[host] = self.site.unreachable[host]
                raise HostNotProbed(self.unavailable[host])
            try:
                remote = self._remotes.get(host) or self.site.host_access(host).__enter__()
            except SplitbrainError as exc:
                self.unavailable[host] = " ".join(str(exc).split())
                if isinstance(exc, HostUnreachable):
                    self.site.unreachable.setdefault(host, self.unavailable[host])
                raise
            self._remotes[host] = remote
            result = remote.run_argv(argv, check=False)
        return parse_ping(result.stdout + result.stderr, f"{host}: " + " ".join(argv))

    def close(self) -> None:
        for remote in self._remotes.values():
            remote.close()


async def probe_all(run: CheckRun, reach: Reach,
                    pairs: list[tuple[str, str, str, str, str]]) -> dict[tuple, Probe | str]:
    """``(network, src_host, src_addr, dst_host, dst_addr)`` -> Probe, or why not run."""
    gate = asyncio.Semaphore(PARALLEL)
    out: dict[tuple, Probe | str] = {}

    async def one(pair: tuple[str, str, str, str, str]) -> None:
        net, src_host, src, dst_host, dst = pair
        if not reach.can_probe_from(src_host):
            out[pair] = reach.unavailable[src_host]
            return
        async with gate:
            try:
                p = await asyncio.to_thread(reach.probe, src_host, src, dst)
            except SplitbrainError as exc:
                out[pair] = " ".join(str(exc).split())
                return
        out[pair] = p
        rtt = f"avg {p.avg_ms:.2f} ms max {p.max_ms:.2f} ms" if p.avg_ms is not None else ""
        run.step(f"{net}: {src_host} {src} -> {dst_host} {dst}: {p.received}/{p.sent} "
                 f"{rtt} [{p.how}]{' ' + p.detail if p.detail else ''}")

    await asyncio.gather(*(one(p) for p in pairs))
    return out


def host_pairs(inventory: Inventory) -> list[tuple[str, str, str, str, str]]:
    pairs = []
    for net in inventory.networks:
        members = [h for h in inventory.hosts.values() if net in h.addresses]
        for a, b in permutations(members, 2):
            pairs.append((net, a.name, str(a.addresses[net]), b.name, str(b.addresses[net])))
    return pairs


@check(NETWORK, "Validate Network Communication",
       "Validate that every host reaches every other host on every network they share "
       "(round trip and loss), and that cluster nodes are connected by more than one network.")
async def validate_network_communication(run: CheckRun) -> Outcome:
    site = run.site
    reach = Reach(site)
    try:
        results = await probe_all(run, reach, host_pairs(site.inventory))
    finally:
        reach.close()
    run.add("How", {"loopback": "loopback lab: every address is on lo; measured a TCP connect "
                                "between the two addresses",
                    "netns": "netns lab: ICMP ping inside each host's namespace",
                    "remote": "ping on each host through its remote driver"}[site.backend])
    problems, warnings = [], []
    tested = 0
    for (net, src_host, src, dst_host, dst), p in sorted(results.items()):
        if isinstance(p, str):
            warnings.append(f"not tested from {src_host}: {p}")
            continue
        if not p.ran:
            problems.append(f"could not test {src_host} -> {dst_host} on {net}: {p.detail}")
            continue
        tested += 1
        if p.received == 0:
            why = f" ({p.detail})" if p.detail else ""
            problems.append(f"{src_host} ({src}) cannot reach {dst_host} ({dst}) on network "
                            f"{net}: {p.received}/{p.sent} replies{why}")
        elif p.received < p.sent:
            warnings.append(f"{src_host} -> {dst_host} on {net}: {p.loss:.0%} loss")
        if p.avg_ms is not None:
            run.number(f"{net}.{src_host}->{dst_host}.avg_ms", round(p.avg_ms, 3))
    nodes = site.cluster_nodes
    for a, b in permutations(nodes, 2):
        shared = [n for n in site.inventory.networks
                  if n in site.inventory.host(a).addresses
                  and n in site.inventory.host(b).addresses]
        if len(shared) < 2 and a < b:
            warnings.append(f"cluster nodes {a} and {b} share only {shared or 'no network'}: "
                            "a single point of failure")
    run.number("pairs_tested", tested)
    if not tested and not problems:
        return not_applicable("no host could be tested: "
                              + "; ".join(sorted(set(reach.unavailable.values())))
                              if reach.unavailable else "no two hosts share a network")
    warnings = sorted(set(warnings))
    return judged(problems, warnings, f"{tested} host pairs reach each other on every shared "
                                      "network without loss")


def configured_addresses(site: Any, host: str) -> list[ipaddress.IPv4Interface |
                                                        ipaddress.IPv6Interface]:
    """The addresses configured on a host's interfaces (netns or a real host)."""
    if site.backend == "netns":
        out = site.lab.namespace(host).run_argv(["ip", "-j", "addr", "show"]).stdout
        return _ip_json(out)
    entry = site.inventory.host(host)
    with site.remote(host) as remote:
        if entry.access.os == "windows":
            rows = remote.powershell(
                "Get-NetIPAddress | Select-Object IPAddress, PrefixLength",
                operation="Get-NetIPAddress")
            return [ipaddress.ip_interface(f"{r['IPAddress'].split('%')[0]}/{r['PrefixLength']}")
                    for r in rows]
        return _ip_json(remote.run_argv(["ip", "-j", "addr", "show"]).stdout)


def _ip_json(text: str) -> list[Any]:
    out = []
    for link in json.loads(text or "[]"):
        for a in link.get("addr_info", []):
            out.append(ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}"))
    return out


@check(NETWORK, "Validate IP Configuration",
       "Validate that every host has its inventory address on each of its networks, inside "
       "the network's subnet and with its prefix, and that no address is used twice.")
async def validate_ip_configuration(run: CheckRun) -> Outcome:
    site = run.site
    inv = site.inventory
    problems: list[str] = []
    warnings: list[str] = []
    owners: dict[str, str] = {}
    for host in inv.hosts.values():
        for net, address in host.addresses.items():
            cidr = inv.network(net).cidr
            if address not in cidr:
                problems.append(f"{host.name}: {address} is outside network {net} ({cidr})")
            if owners.setdefault(str(address), host.name) != host.name:
                problems.append(f"{address} is used by {owners[str(address)]} and {host.name}")
    run.step(f"inventory: {len(owners)} address(es) checked for duplicates and subnets")
    if site.backend == "loopback":
        for address in owners:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as s:
                try:
                    s.bind((address, 0))
                except OSError as exc:
                    problems.append(f"{owners[address]}: cannot use {address}: {exc}")
        run.add("How", "loopback lab: every 127.0.0.0/8 address is on lo, so there are no "
                       "interface addresses to read; each inventory address was bound")
        return judged(problems, warnings, f"{len(owners)} addresses unique, inside their "
                                          "networks and usable")
    seen_on: dict[str, list[str]] = {}
    for host in inv.hosts.values():
        if site.backend == "remote" and host.access is None:
            warnings.append(f"{host.name}: no access in the inventory; its interfaces were "
                            "not read")
            continue
        try:
            configured = await asyncio.to_thread(configured_addresses, site, host.name)
        except SplitbrainError as exc:
            problems.append(f"{host.name}: {' '.join(str(exc).split())}")
            continue
        run.step(f"{host.name}: {', '.join(str(i) for i in configured)}")
        for iface in configured:
            if not iface.ip.is_loopback and not iface.ip.is_link_local:
                seen_on.setdefault(str(iface.ip), []).append(host.name)
        for net, address in host.addresses.items():
            prefix = inv.network(net).cidr.prefixlen
            match = [i for i in configured if i.ip == address]
            if not match:
                problems.append(f"{host.name} does not have its address {address} on network "
                                f"{net}")
            elif all(i.network.prefixlen != prefix for i in match):
                problems.append(f"{host.name}: {address} has prefix "
                                f"/{match[0].network.prefixlen}, network {net} is /{prefix}")
    for address, hosts in seen_on.items():
        if len(hosts) > 1:
            problems.append(f"address {address} is configured on {', '.join(hosts)}")
    return judged(problems, warnings, f"{len(owners)} addresses configured as the inventory "
                                      "says, none duplicated")


@check(NETWORK, "Validate Cluster Network Configuration",
       "Validate that the cluster heartbeat runs on a private network that every cluster node "
       "is on and that is separate from the public and iSCSI networks (the seed requires the "
       "private network to be unreachable from the others); say the site's storage design.")
async def validate_cluster_network_configuration(run: CheckRun) -> Outcome:
    site = run.site
    inv = site.inventory
    run.add("Design", design(inv))
    run.number("design", design(inv).split(" (")[0])
    heartbeat = inv.networks_with_role(NetworkRole.HEARTBEAT)
    problems: list[str] = []
    warnings: list[str] = []
    if not heartbeat:
        return failed("no network has the heartbeat role: the cluster needs a private "
                      "heartbeat network")
    for net in heartbeat:
        mixed = sorted(r.value for r in net.roles
                       if r in (NetworkRole.PUBLIC, NetworkRole.ISCSI))
        if mixed:
            problems.append(f"heartbeat network {net.name} also has role(s) {', '.join(mixed)}: "
                            "the private heartbeat network must be separate from public and "
                            "iSCSI traffic")
    private = [n for n in heartbeat if all(n.name in inv.host(c).addresses
                                           for c in site.cluster_nodes)]
    if site.cluster_nodes and not private:
        problems.append("no heartbeat network reaches every cluster node ("
                        + ", ".join(site.cluster_nodes) + ")")
    if site.backend == "loopback":
        run.add("Separation", "loopback lab: all networks share lo, so their separation "
                              "cannot be tested by traffic; judged from the inventory's roles")
    else:
        pairs = []
        for net in private:
            outsiders = [h for h in inv.hosts.values() if net.name not in h.addresses]
            targets = [h for h in inv.hosts.values() if net.name in h.addresses]
            for o in outsiders:
                src_net, src = next(iter(sorted(o.addresses.items())))
                for t in targets[:2]:
                    pairs.append((f"{src_net}->{net.name}", o.name, str(src), t.name,
                                  str(t.addresses[net.name])))
        reach = Reach(site)
        try:
            results = await probe_all(run, reach, pairs)
        finally:
            reach.close()
        for (label, src_host, _, dst_host, dst), p in sorted(results.items()):
            if isinstance(p, str):
                warnings.append(f"separation not tested from {src_host}: {p}")
            elif not p.ran:
                warnings.append(f"separation not tested from {src_host}: {p.detail}")
            elif p.received:
                problems.append(f"{src_host} (on {label.split('->')[0]} only) reaches "
                                f"{dst_host}'s private address {dst}: the heartbeat network is "
                                "reachable from another network")
        run.number("separation_probes", len(results))
    names = ", ".join(n.name for n in private)
    return judged(problems, warnings, f"cluster heartbeat on network(s) {names}, separate "
                                      f"from public and iSCSI; storage: {design(inv)}")


@check(NETWORK, "Validate Multiple Subnet Properties",
       "Validate the heartbeat settings of a cluster whose nodes sit on different subnets.")
async def validate_multiple_subnet_properties(run: CheckRun) -> Outcome:
    site = run.site
    inv = site.inventory
    public = [n.name for n in inv.networks_with_role(NetworkRole.PUBLIC)]
    shared = [n for n in public if all(n in inv.host(c).addresses for c in site.cluster_nodes)]
    if len(site.cluster_nodes) < 2:
        return not_applicable("fewer than two cluster nodes")
    if shared:
        return not_applicable(f"all cluster nodes share the public subnet(s) "
                              f"{', '.join(shared)}: a single-subnet cluster")
    windows = [n for n in site.cluster_nodes if inv.host(n).access is not None
               and inv.host(n).access.os == "windows"]
    if site.is_lab or not windows:
        return judged([], ["cluster nodes are on different public subnets and no Windows "
                           "cluster node can be asked for CrossSubnetDelay and "
                           "CrossSubnetThreshold: check them on the cluster"], "")
    settings = await asyncio.to_thread(_cross_subnet, site, windows[0])
    run.step(f"{windows[0]}: Get-Cluster -> {settings}")
    delay_ms = float(settings.get("CrossSubnetDelay") or 0)
    threshold = float(settings.get("CrossSubnetThreshold") or 0)
    tolerance_s = delay_ms * threshold / 1000
    run.number("cross_subnet_tolerance_s", tolerance_s)
    if tolerance_s < CROSS_SUBNET_TOLERANCE_S:
        return judged([], [f"a node is declared down after {tolerance_s:g} s of lost "
                           f"heartbeats across subnets (CrossSubnetDelay {delay_ms:g} ms x "
                           f"CrossSubnetThreshold {threshold:g}); multi-subnet clusters "
                           f"want at least {CROSS_SUBNET_TOLERANCE_S:g} s"], "")
    return judged([], [], f"cross-subnet heartbeats tolerate {tolerance_s:g} s of loss "
                          f"(CrossSubnetDelay {delay_ms:g} ms x CrossSubnetThreshold "
                          f"{threshold:g})")


#: Windows Server 2016 and later default to 1000 ms x 20 across subnets
CROSS_SUBNET_TOLERANCE_S = 10.0


def _cross_subnet(site: Any, node: str) -> dict[str, Any]:
    with site.remote(node) as remote:
        rows = remote.powershell("Get-Cluster | Select-Object CrossSubnetDelay, "
                                 "CrossSubnetThreshold", operation="Get-Cluster")
    return dict(rows[0]) if rows else {}
