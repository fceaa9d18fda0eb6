"""Each defect mode of the reference target fails the validation check that should catch it.

A lab whose HA2 runs with one defect (harness.target.defects, switched on from
the inventory) is validated; the named check must end Failed, with a reason that
names the device and the cause, while the healthy HA1 is not blamed.
"""

from __future__ import annotations

import pytest

from harness.checks.results import ResultWord
from harness.validation.runner import find, run_one

pytestmark = pytest.mark.slow

# (defects on every replica of HA2, on HA2's partner (SWS-Store2) only, check, words the
# reason holds)
CASES = [
    pytest.param(["identity-per-node"], None, "Validate SCSI device Vital Product Data (VPD)",
                 ["HA2", "identities", "do not present one disk"], id="identity-per-node-vpd"),
    pytest.param(["identity-per-node"], None, "Validate Microsoft MPIO-based disks",
                 ["HA2", "MPIO does not claim HA2 as one disk"], id="identity-per-node-mpio"),
    pytest.param(["stale-reservations"], None, "Validate SCSI-3 Persistent Reservation",
                 ["HA2", "not replicated"], id="stale-reservations-pr"),
    pytest.param(["stale-reservations"], None, "Validate Disk Arbitration",
                 ["HA2", "not replicated"], id="stale-reservations-arb"),
    pytest.param(["stale-reservations"], None, "Validate Multiple Arbitration",
                 ["HA2", "won through", "not replicated"], id="stale-reservations-multiple"),
    pytest.param(None, ["reservations-not-enforced"], "Validate SCSI-3 Persistent Reservation",
                 ["HA2", "not registered, wrote through", "not enforced on SWS-Store2"],
                 id="reservations-not-enforced-pr"),
    pytest.param(None, ["write-not-mirrored"], "Validate Disk Failover",
                 ["HA2", "reads back different", "not mirrored to SWS-Store2"],
                 id="write-not-mirrored-failover"),
    pytest.param(None, ["write-not-mirrored"], "Validate Simultaneous Failover",
                 ["HA2", "not mirrored to SWS-Store2"], id="write-not-mirrored-simultaneous"),
    pytest.param(None, ["write-not-mirrored"], "Validate HA Replica Data",
                 ["HA2", "differ between SWS-Store1 and SWS-Store2", "not hold the same data"],
                 id="write-not-mirrored-replica-data"),
]


@pytest.mark.parametrize(("device", "replica", "check", "words"), CASES)
def test_defect_fails_the_named_check(validation_lab, device, replica, check, words):
    site = validation_lab(device, replica)
    result = run_one(find(check), site)
    assert result.result is ResultWord.FAILED, result.reason
    for word in words:
        assert word in result.reason, result.reason
    assert "HA1" not in result.reason.split(":")[0]


def test_a_disk_with_two_identities_is_no_potential_cluster_disk(validation_lab):
    site = validation_lab(["identity-per-node"])
    result = run_one(find("List Potential Cluster Disks"), site)
    # a listing: the disk is excluded (Warning) and the others are still listed
    assert result.result is ResultWord.WARNING, result.reason
    assert "HA2: not one disk" in result.reason and result.numbers["potential_disks"] == 1


def test_the_same_lab_without_defects_passes_those_checks(validation_lab):
    site = validation_lab()
    for _, _, check, _ in (c.values for c in CASES):
        result = run_one(find(check), site)
        assert result.result is ResultWord.SUCCESS, f"{check}: {result.reason}"
