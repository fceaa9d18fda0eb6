"""Fixtures of the protocol probes: a node to attack, a probe session, a bystander.

Every probe runs against the bundled reference target (``fixtures.reference_target``)
with tight limits (a short login deadline, a connection cap) so that the bounds are
exercised in seconds. The *bystander* is a second, well-behaved session on another
portal: after every probe it must still get its NOP-In, which is how a probe
proves that one bad connection disturbed nobody else. ``NodeHealth`` records the
node's RSS before the probe and checks afterwards that the node is alive, the
bystander answers, and memory stayed bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fixtures.reference_target import ReferenceTarget, ReferenceTargetFactory, lun_target
from suites.protocol.wire import RawConnection

PROBE_INITIATOR = "iqn.2026-11.org.splitbrain.probe:attacker"
BYSTANDER_INITIATOR = "iqn.2026-11.org.splitbrain.probe:bystander"
MAX_CONNECTIONS = 300
LOGIN_TIMEOUT_S = 3.0
PENDING_WRITE_BUDGET = 2 * 1024 * 1024   # writes still collecting data, per session
RSS_GROWTH_LIMIT = 48 * 1024 * 1024   # what one probe may add to the node's resident memory


@dataclass
class NodeHealth:
    node: ReferenceTarget
    bystander: RawConnection
    rss_before: int

    def assert_survived(self) -> None:
        """The node is up, the other session works, and memory stayed bounded."""
        assert self.node.alive(), f"node died; log: {self.node.log_text()[-2000:]}"
        assert self.bystander.nop(b"still-there").data == b"still-there"
        grown = self.node.rss_bytes() - self.rss_before
        assert grown < RSS_GROWTH_LIMIT, f"node RSS grew by {grown >> 20} MiB"


@pytest.fixture
def probe_node(reference_target_factory: ReferenceTargetFactory) -> ReferenceTarget:
    return reference_target_factory.start(
        name="probed", targets=(lun_target(luns=1, size="16MiB"),),
        limits={"max_connections": MAX_CONNECTIONS, "login_timeout_s": LOGIN_TIMEOUT_S,
                "max_recv_data_segment_length": 65536,
                "max_pending_write_bytes": PENDING_WRITE_BUDGET})


@pytest.fixture
def health(probe_node: ReferenceTarget) -> Iterator[NodeHealth]:
    bystander = RawConnection(*probe_node.portals[1])
    try:
        assert bystander.login(BYSTANDER_INITIATOR, probe_node.iqn).ok
        yield NodeHealth(probe_node, bystander, probe_node.rss_bytes())
    finally:
        bystander.close()


@pytest.fixture
def probe(probe_node: ReferenceTarget, health: NodeHealth) -> Iterator[RawConnection]:
    """A logged-in session on the first portal, for the probe to abuse."""
    conn = RawConnection(*probe_node.portals[0])
    try:
        assert conn.login(PROBE_INITIATOR, probe_node.iqn).ok
        yield conn
    finally:
        conn.close()
