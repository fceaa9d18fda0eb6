"""Validation against Debian's tgtd as a single-node site, and against bad input.

A single target deserves: every Storage check that a plain SPC-4 target can
pass (identity, reservations, arbitration, failover between the two nodes'
sessions on the one target), and HA Storage Failed where high availability is
missing (one replica, nothing to mirror to), with reasons. Bad input (a device
no portal offers, a login refused, a host that does not answer) ends in Failed
with one clear line, and the rest of the run still goes on.
"""

from __future__ import annotations

import socket

import pytest

from fixtures.sut import SystemUnderTest
from harness.checks.results import ResultWord
from harness.lab.inventory import load
from harness.remote.ssh import RetryPolicy
from harness.validation.runner import find, run_one, validate
from harness.validation.site import ValidationSite
from tests.integration.validation.tgtd_site import GHOST_DEVICE, silent_host, tgtd_inventory

pytestmark = pytest.mark.slow

S, F, NA = ResultWord.SUCCESS, ResultWord.FAILED, ResultWord.NOT_APPLICABLE


def site_of(path) -> ValidationSite:
    return ValidationSite(SystemUnderTest(load(path), None),
                          remote_retry=RetryPolicy(attempts=1, deadline_s=5))


def test_tgtd_single_node_site(tgtd_target, tmp_path):
    site = site_of(tgtd_inventory(tmp_path / "tgtd.toml", tgtd_target))
    report = validate(site)
    words = {r.name: r for r in report.results}
    for name in ("List Disks", "Validate SCSI device Vital Product Data (VPD)",
                 "Validate SCSI-3 Persistent Reservation", "Validate Disk Arbitration",
                 "Validate Multiple Arbitration", "Validate Disk Failover",
                 "Validate Simultaneous Failover", "Validate Disk Access Latency"):
        assert words[name].result is S, f"{name}: {words[name].reason}"
    assert words["Validate HA Replica Placement"].result is F
    assert "single replica" in words["Validate HA Replica Placement"].reason
    assert words["Validate HA Replica Data"].result is F
    assert words["Validate HA Sync and Heartbeat Networks"].result is F
    assert words["Validate Operating System Version"].result is NA  # no host has access
    assert report.failed and report.summary.startswith("Validation failed")


def test_a_device_no_portal_offers_fails_list_disks_in_one_line(tgtd_target, tmp_path):
    site = site_of(tgtd_inventory(tmp_path / "ghost.toml", tgtd_target,
                                  extra_devices=GHOST_DEVICE))
    result = run_one(find("List Disks"), site)
    assert result.result is F
    assert "GHOST" in result.reason and "\n" not in result.reason
    assert "no-such-target" in result.reason
    # the run goes on: the device that exists is still validated
    vpd = run_one(find("Validate SCSI device Vital Product Data (VPD)"), site)
    assert "LUN1" in next(e.text for e in vpd.evidence if e.title == "Identity per path")


def test_a_login_refused_fails_with_one_line(tgtd_target_factory, tmp_path):
    locked = tgtd_target_factory(initiators=["iqn.1991-05.com.microsoft:someone-else"])
    site = site_of(tgtd_inventory(tmp_path / "locked.toml", locked))
    report = validate(site, include=["Storage"])
    assert all(r.result in (F, NA) for r in report.results), [
        (r.name, r.result) for r in report.results]
    listed = next(r for r in report.results if r.name == "List Disks")
    assert "login" in listed.reason and "\n" not in listed.reason
    assert len(report.results) == 10  # every Storage check ran and answered


def test_a_host_that_does_not_answer_fails_the_check_and_the_run_goes_on(tgtd_target,
                                                                         tmp_path):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    site = site_of(tgtd_inventory(tmp_path / "gone.toml", tgtd_target,
                                  extra_hosts=silent_host(port)))
    report = validate(site, include=["List Operating System Information", "List Disks"])
    os_info, disks = report.results
    assert os_info.result is F and "Gone" in os_info.reason and "\n" not in os_info.reason
    assert "cannot reach" in os_info.reason or "Unreachable" in os_info.reason
    assert disks.result is S
