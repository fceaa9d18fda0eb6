"""Fixtures of the protocol probes: a node to attack, a probe session, a bystander.

Every probe runs twice: against the bundled reference target started for the
test (``harness.peers.reference_target``) with tight limits (a short login deadline,
a connection cap) so the bounds are exercised in seconds, and against the
system under test's own target (``sut``: the primary replica of the inventory's
first HA device, through its portals; the lab by default, a real site with
``--inventory``). The *bystander* is a second, well-behaved session on another
portal: after every probe it must still get its NOP-In, which is how a probe
proves that one bad connection disturbed nobody else. ``NodeHealth`` records the
node's RSS before the probe (where the harness can see the process: the
reference node, a lab node) and checks afterwards that the node is alive, the
bystander answers, and memory stayed bounded.

Probes that could disturb a site (floods, writes, unbounded sends) are listed in
their module's ``DISTURBING``; against the sut they are marked ``destructive``,
so they run only with ``--allow-destructive`` on an inventory that allows it.
Probes that depend on the limits the reference node is started with are in
``REFERENCE_ONLY`` and skip against the sut with that reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.peers.reference_target import ReferenceTarget, ReferenceTargetFactory, lun_target
from suites.protocol.wire import RawConnection

PROBE_INITIATOR = "iqn.2026-11.org.splitbrain.probe:attacker"
BYSTANDER_INITIATOR = "iqn.2026-11.org.splitbrain.probe:bystander"
MAX_CONNECTIONS = 300
LOGIN_TIMEOUT_S = 3.0
PENDING_WRITE_BUDGET = 2 * 1024 * 1024   # writes still collecting data, per session
RSS_GROWTH_LIMIT = 48 * 1024 * 1024   # what one probe may add to the node's resident memory


class SutTarget:
    """The sut's target as a probe sees it: portals, IQN, and health where visible."""

    def __init__(self, sut: Any) -> None:
        if not sut.devices:
            pytest.skip(f"{sut.inventory.path} names no HA device to probe")
        device = next(iter(sut.devices.values()))
        replica = min(device.replicas, key=lambda r: r.priority)
        self.host = replica.host
        self.iqn = replica.target
        self.lun = device.lun
        self.portals = [(p.address, p.port) for p in replica.portals]
        if not self.portals:
            pytest.skip(f"{replica.host} offers no portal for {device.alias}")
        self.sut = sut

    def _pid(self) -> int | None:
        if self.sut.lab is None:
            return None
        node = self.sut.lab.record().nodes.get(self.host)
        return node.pid if node is not None and node.alive else None

    def alive(self) -> bool:
        """The target still takes a login (and, in a lab, its process still runs)."""
        if self.sut.lab is not None and self._pid() is None:
            return False
        with RawConnection(*self.portals[0]) as conn:
            return conn.login(BYSTANDER_INITIATOR, self.iqn).ok

    def rss_bytes(self) -> int | None:
        pid = self._pid()
        if pid is None:
            return None  # a real site's process is not visible from here
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None

    def log_text(self) -> str:
        if self.sut.lab is None:
            return ""
        node = self.sut.lab.record().nodes.get(self.host)
        try:
            return Path(node.log).read_text(errors="replace") if node else ""
        except OSError:
            return ""


@dataclass
class NodeHealth:
    node: ReferenceTarget | SutTarget
    bystander: RawConnection
    rss_before: int | None

    def assert_survived(self) -> None:
        """The node is up, the other session works, and memory stayed bounded."""
        assert self.node.alive(), f"node died; log: {self.node.log_text()[-2000:]}"
        assert self.bystander.nop(b"still-there").data == b"still-there"
        if self.rss_before is not None:
            grown = (self.node.rss_bytes() or 0) - self.rss_before
            assert grown < RSS_GROWTH_LIMIT, f"node RSS grew by {grown >> 20} MiB"


@pytest.fixture(params=["reference", "sut"])
def probe_node(request: pytest.FixtureRequest) -> ReferenceTarget | SutTarget:
    """The node a probe attacks: the reference target started for it, or the sut's."""
    if request.param == "sut":
        return SutTarget(request.getfixturevalue("sut"))
    factory: ReferenceTargetFactory = request.getfixturevalue("reference_target_factory")
    return factory.start(
        name="probed", targets=(lun_target(luns=1, size="16MiB"),),
        limits={"max_connections": MAX_CONNECTIONS, "login_timeout_s": LOGIN_TIMEOUT_S,
                "max_recv_data_segment_length": 65536,
                "max_pending_write_bytes": PENDING_WRITE_BUDGET})


@pytest.fixture
def health(probe_node: ReferenceTarget | SutTarget) -> Iterator[NodeHealth]:
    bystander = RawConnection(*probe_node.portals[min(1, len(probe_node.portals) - 1)])
    try:
        assert bystander.login(BYSTANDER_INITIATOR, probe_node.iqn).ok
        yield NodeHealth(probe_node, bystander, probe_node.rss_bytes())
    finally:
        bystander.close()


@pytest.fixture
def probe(probe_node: ReferenceTarget | SutTarget, health: NodeHealth) -> Iterator[RawConnection]:
    """A logged-in session on the first portal, for the probe to abuse."""
    conn = RawConnection(*probe_node.portals[0])
    try:
        assert conn.login(PROBE_INITIATOR, probe_node.iqn).ok
        yield conn
    finally:
        conn.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("probe_node") != "sut":
            continue
        name = getattr(item, "originalname", item.name)
        if name in getattr(item.module, "DISTURBING", ()):
            item.add_marker(pytest.mark.destructive)
        if name in getattr(item.module, "REFERENCE_ONLY", ()):
            item.add_marker(pytest.mark.skip(
                reason="depends on the limits the reference node is started with "
                       "(connection cap, login deadline, pending-write budget)"))
