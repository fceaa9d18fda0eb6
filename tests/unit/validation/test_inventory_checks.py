"""Checks judged from the inventory alone, on the shipped sites (no host is contacted)."""

from __future__ import annotations

import pytest

from fixtures.settings import INVENTORIES
from fixtures.sut import SystemUnderTest
from harness.checks.results import ResultWord
from harness.lab.inventory import load, loads
from harness.validation.runner import find, run_one
from harness.validation.site import ValidationSite


def site(name: str) -> ValidationSite:
    return ValidationSite(SystemUnderTest(load(INVENTORIES / name), None))


def test_the_seed_is_the_converged_design_with_a_private_heartbeat():
    seed = site("example-site.toml")
    sync = run_one(find("Validate HA Sync and Heartbeat Networks"), seed)
    assert sync.result is ResultWord.WARNING
    assert "sync traffic shares the iSCSI network iscsi (converged design" in sync.reason
    assert run_one(find("Validate HA Replica Placement"), seed).result is ResultWord.SUCCESS


def test_the_best_practice_example_has_a_dedicated_sync_link():
    best = site("example-site-dedicated-sync.toml")
    sync = run_one(find("Validate HA Sync and Heartbeat Networks"), best)
    assert sync.result is ResultWord.SUCCESS and "dedicated sync link" in sync.reason


def test_heartbeat_on_the_iscsi_network_fails_cluster_network_configuration(tmp_path):
    text = (INVENTORIES / "example-site.toml").read_text()
    text = text.replace('roles = ["iscsi", "sync"]', 'roles = ["iscsi", "sync", "heartbeat"]')
    bad = ValidationSite(SystemUnderTest(loads(text, tmp_path / "bad.toml"), None))
    r = run_one(find("Validate Cluster Network Configuration"), bad)
    assert r.result is ResultWord.FAILED
    assert "heartbeat network iscsi also has role(s) iscsi" in r.reason


@pytest.mark.parametrize("name", ["example-site.toml", "example-site-dedicated-sync.toml"])
def test_seed_sites_keep_production_disks_out_of_destructive_checks(name):
    s = site(name)
    chosen, skipped = s.test_devices()
    assert chosen == [] and any("not marked test = true" in r for r in skipped)
