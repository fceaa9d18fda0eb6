"""A multipath lab on loopback: reference target nodes behind the fault proxy.

Every path goes initiator -> fault-proxy link -> node portal, so a test can cut a
path (RST, as a failed switch port), black-hole it, and heal it, while the node
keeps running; or kill the node itself. Everything started here is stopped at
teardown, also when the test fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from harness.initiator.mpio.device import MultipathDevice
from harness.initiator.mpio.link import PathSpec
from harness.initiator.mpio.session_link import session_connector
from harness.initiator.mpio.timers import MpioTimers
from harness.lab.proxy import FaultProxy, LinkSpec, LinkState, ProxyControl
from harness.peers.reference_target import NodeSpec, ReferenceTarget, lun_target
from tests.support.ha_nodes import HaLun, running_ha_nodes

SHARED_NAA = "6001405c0ffee0000000000000000001"
INITIATOR = "iqn.2026-11.org.splitbrain.test:mpio-host"


@dataclass
class MpioLab:
    """Nodes, and one proxied path per portal (path i is link ``p{i}``)."""

    nodes: list[ReferenceTarget]
    routes: list[tuple[str, int, str, int]]  # (node iqn, lun, portal host, portal port)
    proxy: FaultProxy | None = None
    partner_links: ProxyControl | None = None  # HA labs: the sync and heartbeat links

    def ha_state(self, i: int) -> dict:
        return self.nodes[i].management.request("GET", "/v1/ha")[0]

    def wait_synchronized(self, timeout_s: float = 30.0) -> None:
        for attempt in Retrying(stop=stop_after_delay(timeout_s), wait=wait_fixed(0.05),
                                retry=retry_if_exception_type(AssertionError), reraise=True):
            with attempt:
                for i in range(len(self.nodes)):
                    state = self.ha_state(i)
                    assert (state["state"], state["partner_state"]) == (
                        "Synchronized", "Synchronized"), state

    async def start_proxy(self) -> None:
        self.proxy = FaultProxy([LinkSpec(f"p{i}", "127.0.0.1", 0, host, port)
                                 for i, (_, _, host, port) in enumerate(self.routes)])
        await self.proxy.start()

    async def stop_proxy(self) -> None:
        if self.proxy is not None:
            await self.proxy.close()

    @contextlib.asynccontextmanager
    async def device(self, timers: MpioTimers) -> AsyncIterator[MultipathDevice]:
        """An open ``MultipathDevice`` over every path, the fault proxy up while it lives."""
        await self.start_proxy()
        try:
            async with MultipathDevice(self.specs(), connector=session_connector,
                                       timers=timers) as dev:
                yield dev
        finally:
            await self.stop_proxy()

    def specs(self, **kw) -> list[PathSpec]:
        assert self.proxy is not None
        return [PathSpec("127.0.0.1", self.proxy.link(f"p{i}").port, iqn, lun=lun,
                         initiator=INITIATOR, name=f"p{i}", **kw)
                for i, (iqn, lun, _, _) in enumerate(self.routes)]

    def cut(self, i: int) -> None:
        assert self.proxy is not None
        self.proxy.set_state([f"p{i}"], LinkState(mode="cut"))

    def blackhole(self, i: int) -> None:
        assert self.proxy is not None
        self.proxy.set_state([f"p{i}"], LinkState(mode="blackhole"))

    def heal(self, i: int) -> None:
        assert self.proxy is not None
        self.proxy.set_state([f"p{i}"], LinkState())


@pytest.fixture
def one_node_lab(reference_target_factory) -> Iterator[MpioLab]:
    """One node, two portals (127.0.0.1 and 127.0.0.2): two paths to one LUN."""
    node = reference_target_factory.start()
    yield MpioLab([node], [(node.iqn, node.lun, h, p) for h, p in node.portals])


@pytest.fixture
def two_node_lab(reference_target_factory) -> Iterator[MpioLab]:
    """Two nodes presenting one identity (as HA partners do), one portal each."""
    nodes = []
    for name, address in (("node1", "127.0.0.1"), ("node2", "127.0.0.2")):
        target = lun_target(f"iqn.2026-11.org.splitbrain.test:{name}.ha1")
        target["lun"][0].update(naa=SHARED_NAA, serial="HA1-0001")
        nodes.append(reference_target_factory.start(
            NodeSpec(name=name, addresses=(address,), targets=(target,))))
    yield MpioLab(nodes, [(n.iqn, n.lun, *n.portals[0]) for n in nodes])



HA_LUN = HaLun(serial="HA1-MPIO-0001", naa="6001405" + "0" * 20 + "c0de1", sync_timeout=0.6,
               heartbeat_timeout=0.3)


@pytest.fixture
def ha_lab(reference_target_factory) -> Iterator[MpioLab]:
    """An HA device on two node processes (HA1 on store1, HA1Partner on store2), two
    portals each: four paths to one disk, as the seed's cluster nodes see it. The
    partners' sync and heartbeat links pass through their own fault proxy."""
    with running_ha_nodes(reference_target_factory, HA_LUN) as (store1, store2, partner_links):
        lab = MpioLab([store1, store2],
                      [(n.iqn, n.lun, h, p) for n in (store1, store2) for h, p in n.portals])
        lab.partner_links = partner_links
        lab.wait_synchronized()
        yield lab
