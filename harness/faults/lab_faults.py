"""The fault injector of the loopback lab: what ``sut.faults`` is when the site is the lab.

Link selectors name what to break in the site's own words:

- a link, ``iscsi1/SWS-Store1`` (the iSCSI path to SWS-Store1 on network iscsi1);
- a network, ``sync`` (every link on it: the whole sync channel, both ways);
- a role, ``role:iscsi`` (every link on every network with that role);
- a host, ``SWS-Store2`` (every link that leads to it).

In the loopback lab links are proxy listeners (every mode); in the netns lab they
are interfaces in the hosts' namespaces (black hole by tagged nftables rules, or
``down``).

Each method returns a ``Fault`` that is not yet injected: use it as a context
manager (``with sut.faults.blackhole("sync"): ...``) or hand specs to a
``Nemesis`` through ``build``. Every fault writes to the lab's journal.
"""

from __future__ import annotations

from pathlib import Path

from harness.faults.disk import DiskFault
from harness.faults.fault import Fault, FaultError
from harness.faults.journal import FaultJournal
from harness.faults.link import LinkFault, SlowLinkFault
from harness.faults.nemesis import FaultSpec
from harness.faults.netns_link import NetnsLinkFault
from harness.faults.node import NodeCrash, PowerLoss
from harness.faults.process import ProcessFault
from harness.lab.proxy import LinkMode, LinkState
from harness.lab.state import LabState
from harness.lab.toml_source import did_you_mean

LINK_ACTIONS = ("cut", "blackhole", "delay", "throttle", "flap", "oneway", "down")
PROCESS_ACTIONS = ("kill", "freeze", "stop", "restart")


class LabFaults:
    """Builds faults against one running lab (named by its state directory)."""

    def __init__(self, state_dir: str | Path) -> None:
        self.state = LabState(state_dir)
        self.journal = FaultJournal(self.state.journal_file)

    def links(self, selector: str) -> list[str]:
        """The proxy link names a selector designates (sorted); raises on no match."""
        links = self.state.load().links
        if selector in links:
            return [selector]
        if selector.startswith("role:"):
            role = selector[5:]
            found = [n for n, link in links.items() if role in link.roles]
        else:
            found = [n for n, link in links.items() if selector in (link.network, link.host)]
        if not found:
            words = (
                set(links)
                | {link.network for link in links.values()}
                | {link.host for link in links.values()}
            )
            raise FaultError(f"no lab link matches {selector!r} ({did_you_mean(selector, words)})")
        return sorted(found)

    def link(self, selector: str, state: LinkState) -> Fault:
        """A link fault on every link the selector designates, in this lab's backend."""
        record = self.state.load()
        names = self.links(selector)
        if record.backend == "netns":
            if state.mode is not LinkMode.BLACKHOLE:
                raise FaultError(
                    f"the netns lab black-holes links (or sets them down); "
                    f"{state.mode.value} needs the loopback lab's proxy"
                )
            return self._netns(names, "blackhole", selector)
        slow = state.mode in (LinkMode.DELAY, LinkMode.THROTTLE)
        return (SlowLinkFault if slow else LinkFault)(
            names,
            state,
            endpoint_file=self.state.endpoint_file,
            label=selector,
            journal=self.journal,
        )

    def _netns(self, names: list[str], action: str, label: str) -> NetnsLinkFault:
        record = self.state.load()
        spaces, ifaces = record.extra["namespaces"], record.extra["interfaces"]
        targets = [(spaces[record.links[n].host], ifaces[record.links[n].network]) for n in names]
        return NetnsLinkFault(targets, action, label=label, journal=self.journal)

    def down(self, selector: str) -> NetnsLinkFault:
        """The host side of each selected link set down (netns lab only)."""
        if self.state.load().backend != "netns":
            raise FaultError(
                "setting interfaces down needs the netns lab; "
                "in the loopback lab use cut or blackhole"
            )
        return self._netns(self.links(selector), "down", selector)

    def cut(self, selector: str) -> LinkFault:
        return self.link(selector, LinkState(LinkMode.CUT))

    def blackhole(self, selector: str) -> LinkFault:
        return self.link(selector, LinkState(LinkMode.BLACKHOLE))

    def delay(self, selector: str, delay_ms: float, jitter_ms: float = 0.0) -> LinkFault:
        return self.link(
            selector, LinkState(LinkMode.DELAY, delay_ms=delay_ms, jitter_ms=jitter_ms)
        )

    def throttle(self, selector: str, rate_bps: int) -> LinkFault:
        return self.link(selector, LinkState(LinkMode.THROTTLE, rate_bps=rate_bps))

    def flap(self, selector: str, period_s: float) -> LinkFault:
        return self.link(selector, LinkState(LinkMode.FLAP, period_s=period_s))

    def oneway(self, selector: str, direction: str = "up") -> LinkFault:
        """One direction black-holed (``up``: towards the listener's upstream)."""
        return self.link(selector, LinkState(LinkMode.ONEWAY, direction=direction))

    def _host(self, host: str) -> str:
        nodes = self.state.load().nodes
        if host not in nodes:
            raise FaultError(f"no lab node {host!r} ({did_you_mean(host, nodes)})")
        return host

    def process(self, host: str, action: str) -> ProcessFault:
        return ProcessFault(
            self._host(host), action, state_dir=str(self.state.root), journal=self.journal
        )

    def kill(self, host: str) -> ProcessFault:
        return self.process(host, "kill")

    def freeze(self, host: str) -> ProcessFault:
        return self.process(host, "freeze")

    def stop(self, host: str) -> ProcessFault:
        return self.process(host, "stop")

    def restart(self, host: str) -> ProcessFault:
        return self.process(host, "restart")

    def crash(self, host: str) -> NodeCrash:
        silence = self.link(self._host(host), LinkState(LinkMode.BLACKHOLE))
        return NodeCrash(
            host, silence=silence, state_dir=str(self.state.root), journal=self.journal
        )

    def power_loss(self, host: str) -> PowerLoss:
        """Crash ``host`` and discard every write its disks had not made durable."""
        silence = self.link(self._host(host), LinkState(LinkMode.BLACKHOLE))
        return PowerLoss(
            host, silence=silence, state_dir=str(self.state.root), journal=self.journal
        )

    def disk(self, host: str, target_iqn: str, lun: int, action: str, **params: float) -> DiskFault:
        return DiskFault(
            self._host(host),
            target_iqn,
            lun,
            action,
            state_dir=str(self.state.root),
            journal=self.journal,
            **params,
        )  # type: ignore[arg-type]

    def build(self, spec: FaultSpec) -> Fault:
        """A fault from a nemesis spec (``FaultSpec.of("blackhole", "sync")``)."""
        kw = spec.kwargs
        if spec.action in LINK_ACTIONS:
            return getattr(self, spec.action)(spec.target, **kw)
        if spec.action in PROCESS_ACTIONS:
            return self.process(spec.target, spec.action)
        if spec.action == "crash":
            return self.crash(spec.target)
        if spec.action == "power-loss":
            return self.power_loss(spec.target)
        if spec.action.startswith("disk-"):
            return self.disk(spec.target, kw.pop("iqn"), kw.pop("lun", 0), spec.action[5:], **kw)
        raise FaultError(
            f"unknown fault action {spec.action!r}; use one of "
            + ", ".join(
                (*LINK_ACTIONS, *PROCESS_ACTIONS, "crash", "power-loss", "disk-slow", "disk-eio",
                 "disk-nospace")
            )
        )

    def catalogue(self) -> list[FaultSpec]:
        """Every network and node fault this lab supports, for random schedules."""
        record = self.state.load()
        networks = sorted({link.network for link in record.links.values()})
        specs = [FaultSpec.of(action, net) for net in networks for action in ("cut", "blackhole")]
        specs += [FaultSpec.of("delay", net, delay_ms=50.0, jitter_ms=20.0) for net in networks]
        for host in sorted(record.nodes):
            specs += [FaultSpec.of(a, host) for a in ("kill", "freeze", "restart", "crash")]
        return specs

    def open_faults(self) -> list[str]:
        return [f"{f.kind} {f.target} ({f.id})" for f in self.journal.open_faults()]
