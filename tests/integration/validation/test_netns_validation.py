"""Network checks in the netns lab: real pings between the hosts' namespaces.

The healthy lab passes (every pair answers on every shared network; the
heartbeat network cannot be reached from the public-only domain controller).
Then Demo2 loses its public address inside its namespace: Validate Network
Communication fails naming who cannot reach Demo2, and Validate IP
Configuration fails naming the missing address.
"""

from __future__ import annotations

import pytest

from fixtures.settings import INVENTORIES
from fixtures.sut import SystemUnderTest
from harness.checks.results import ResultWord
from harness.lab.backends import lab_for
from harness.lab.inventory import load
from harness.validation.runner import find, run_one
from harness.validation.site import ValidationSite
from tests.support.netns import skip_unless_netns

pytestmark = [pytest.mark.slow, pytest.mark.needs_root]


@pytest.fixture
def netns_site(tmp_path):
    skip_unless_netns(nft=True)
    inventory = load(INVENTORIES / "lab-netns.toml")
    lab = lab_for(inventory, tmp_path / "state")
    lab.up(inventory)
    try:
        yield ValidationSite(SystemUnderTest(inventory, lab))
    finally:
        lab.down()


def test_network_checks_ping_between_namespaces(netns_site):
    names = ("Validate Network Communication", "Validate IP Configuration",
             "Validate Cluster Network Configuration")
    results = {n: run_one(find(n), netns_site) for n in names}
    for name, result in results.items():
        assert result.result is ResultWord.SUCCESS, f"{name}: {result.reason}"
    steps = results["Validate Network Communication"].evidence[0].text
    assert "ip netns exec Demo1: ping" in steps and " 3/3 " in steps
    separation = results["Validate Cluster Network Configuration"].evidence[0].text
    assert "public->heartbeat: SWS-DC" in separation and " 0/3 " in separation

    demo2 = netns_site.lab.namespace("Demo2")
    demo2.run_argv(["ip", "addr", "del", "192.0.2.22/24", "dev",
                    _interface(demo2, "192.0.2.22")])
    comm = run_one(find("Validate Network Communication"), netns_site)
    assert comm.result is ResultWord.FAILED
    assert "cannot reach Demo2 (192.0.2.22) on network public" in comm.reason
    ip = run_one(find("Validate IP Configuration"), netns_site)
    assert ip.result is ResultWord.FAILED
    assert "Demo2 does not have its address 192.0.2.22 on network public" in ip.reason


def _interface(ns, address: str) -> str:
    import json

    for link in json.loads(ns.run_argv(["ip", "-j", "addr", "show"]).stdout):
        if any(a.get("local") == address for a in link.get("addr_info", [])):
            return link["ifname"]
    raise AssertionError(f"{address} is on no interface")
