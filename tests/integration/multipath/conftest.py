"""A multipath lab on loopback: reference target nodes behind the fault proxy.

Every path goes initiator -> fault-proxy link -> node portal, so a test can cut a
path (RST, as a failed switch port), black-hole it, and heal it, while the node
keeps running; or kill the node itself. Everything started here is stopped at
teardown, also when the test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fixtures.reference_target import NodeSpec, ReferenceTarget, lun_target
from harness.initiator.pathlink import PathSpec
from harness.lab.proxy import FaultProxy, LinkSpec, LinkState

SHARED_NAA = "6001405c0ffee0000000000000000001"
INITIATOR = "iqn.2026-11.org.splitbrain.test:mpio-host"


@dataclass
class MpioLab:
    """Nodes, and one proxied path per portal (path i is link ``p{i}``)."""

    nodes: list[ReferenceTarget]
    routes: list[tuple[str, int, str, int]]  # (node iqn, lun, portal host, portal port)
    proxy: FaultProxy | None = None

    async def start_proxy(self) -> None:
        self.proxy = FaultProxy([LinkSpec(f"p{i}", "127.0.0.1", 0, host, port)
                                 for i, (_, _, host, port) in enumerate(self.routes)])
        await self.proxy.start()

    async def stop_proxy(self) -> None:
        if self.proxy is not None:
            await self.proxy.close()

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

