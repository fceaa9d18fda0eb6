"""Validation of a real site reached only over SSH (tests/support/namespace_site.py).

Two storage hosts running the reference target and one cluster node, each in
its own namespace with its own sshd; the inventory has no [lab] table. Host
facts come from LinuxHost over SSH, pings run on the hosts, iSCSI goes through
the cluster node's sshd, replica states through the bundled reader over SSH.
What needs two cluster nodes is Not Applicable with that reason; the hosts run
no systemd, so Validate Required Services finds the node's sshd (the service the
inventory names for it) by its process.
"""

from __future__ import annotations

import pytest

from fixtures.sut import SystemUnderTest
from harness.checks.results import ResultWord
from harness.lab.inventory import load
from harness.validation.runner import validate
from harness.validation.site import ValidationSite
from tests.support.namespace_site import namespace_site

pytestmark = [pytest.mark.slow, pytest.mark.needs_root]

S, F, NA = ResultWord.SUCCESS, ResultWord.FAILED, ResultWord.NOT_APPLICABLE


def test_a_real_site_is_validated_through_ssh(tmp_path):
    with namespace_site(tmp_path / "site") as built:
        inventory = load(built.inventory)
        assert inventory.lab is None
        report = validate(ValidationSite(SystemUnderTest(inventory, None)))
    r = {x.name: x for x in report.results}
    for name in ("List Operating System Information", "Validate Operating System Version",
                 "Validate Same Processor Architecture", "Validate Network Communication",
                 "Validate IP Configuration", "List Disks",
                 "Validate SCSI device Vital Product Data (VPD)",
                 "Validate HA Devices Synchronized", "Validate HA Replica Data",
                 "Validate HA Portal Discovery"):
        assert r[name].result is S, f"{name}: {r[name].reason}"
    steps = r["Validate Network Communication"].evidence[0].text
    assert "Store1: ping -n -q" in steps  # ran on the host, through its driver
    assert r["Validate SCSI-3 Persistent Reservation"].result is NA
    assert "needs two cluster nodes" in r["Validate SCSI-3 Persistent Reservation"].reason
    assert r["Validate Hyper-V Role Installed"].result is NA
    services = r["Validate Required Services"]  # by process: the hosts run no systemd
    assert services.result is S, services.reason
    assert "sshd running (pid" in "\n".join(e.text for e in services.evidence)
