"""The Add Target wizard's pure parts: both replicas' specs, summary, status."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli.target_ha import WARNING, WizardError, replica_specs, status_lines, summary
from harness.target.config_reader import ConfigReader
from harness.target.ha.node_config import parse_ha_device

ARGS = dict(alias="HA1", size="1GiB", lun=0, image=None, here="store1", partner="store2",
            primary_here=True, sync="127.0.3.1:3261", heartbeat="127.0.4.1:3262",
            initial_sync="from-partner", initial_source="this", strategy="heartbeat",
            witness=None, serial="HA1-0001", naa="3" + "1" * 15)


def test_both_sides_share_one_identity_and_mirror_each_other():
    specs = replica_specs(**ARGS)
    one, two = specs["store1"], specs["store2"]
    assert one["target"]["alias"] == "HA1" and two["target"]["alias"] == "HA1Partner"
    lun1, lun2 = one["target"]["lun"][0], two["target"]["lun"][0]
    assert (lun1["serial"], lun1["naa"]) == (lun2["serial"], lun2["naa"])
    d1, d2 = one["ha_device"], two["ha_device"]
    assert (d1["priority"], d2["priority"]) == (1, 2)
    assert d1["sync_listen"] == d2["partner_sync"] == "127.0.3.1:3261"
    assert d1["partner"] == "store2" and d2["partner"] == "store1"
    assert d1["initial_source"] == d2["initial_source"] == "store1"
    for node, spec in specs.items():  # what the node will parse, without error
        b = parse_ha_device(ConfigReader("wizard", {}, Path("/x")), spec["ha_device"], "ha_device",
                            node=node, state_dir=Path("/x"))
        assert b.target == spec["target"]["iqn"]


def test_secondary_here_makes_the_partner_primary():
    specs = replica_specs(**{**ARGS, "primary_here": False, "initial_source": "partner"})
    assert specs["store2"]["ha_device"]["priority"] == 1
    assert specs["store1"]["ha_device"]["partner_sync"] == "127.0.3.1:3261"
    assert specs["store1"]["ha_device"]["initial_source"] == "store2"


def test_node_majority_needs_a_witness():
    with pytest.raises(WizardError, match="needs --witness"):
        replica_specs(**{**ARGS, "strategy": "node-majority"})


def test_new_identity_is_a_valid_naa_and_serial():
    from harness.cli.target_ha import new_identity
    from harness.target.identity import LuIdentity

    serial, naa = new_identity("HA1")
    LuIdentity(serial=serial, naa=naa)  # raises on an invalid designator
    assert len(naa) == 16 and naa[0] == "3" and serial.startswith("HA1-")


def test_summary_names_both_sides():
    text = summary(replica_specs(**ARGS))
    assert "store1 (primary" in text and "store2 (secondary" in text
    assert "HA1-0001" in text and "initial synchronization from-partner" in text


def test_status_flags_synchronizing_with_the_warning_triangle():
    row = {"alias": "HA1", "node": "store2", "state": "Synchronizing", "partner": "store1",
           "partner_state": "Synchronized", "generation": 3, "alone": False,
           "sync_link": True, "heartbeat_link": True,
           "resync": {"mode": "fast", "percent": 42.0}}
    line = status_lines([row])[0]
    assert line.startswith(WARNING) and "resync fast 42.0%" in line
    calm = status_lines([{**row, "state": "Synchronized", "resync": None}])[0]
    assert not calm.startswith(WARNING)
