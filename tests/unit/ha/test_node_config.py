"""``[[ha_device]]`` tables: good ones parse, every mistake names its key and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.target.config_reader import ConfigError, ConfigReader
from harness.target.ha.node_config import parse_ha_device
from harness.target.ha.replica import FailoverStrategy, InitialSync

PARTNER_SIDE = {"alias": "HA1", "target": "iqn.2026-11.lab.splitbrain:store2.ha1partner",
                "priority": 2, "partner": "store1", "partner_priority": 1,
                "partner_sync": "127.0.3.1:3261", "partner_heartbeat": "127.0.4.1:3262"}


def parse(raw: dict, node: str = "store2"):
    reader = ConfigReader("node.toml", {}, Path("/tmp"))
    return parse_ha_device(reader, raw, "ha_device[0]", node=node, state_dir=Path("/var/sb"))


def test_partner_side_parses_with_defaults():
    b = parse(PARTNER_SIDE)
    assert (b.lun, b.group, b.partner_group) == (0, 2, 1)
    assert b.device.dials and b.device.partner_sync == ("127.0.3.1", 3261)
    assert b.device.strategy is FailoverStrategy.HEARTBEAT
    assert b.device.initial_sync is InitialSync.NONE
    assert b.device.state_dir == Path("/var/sb/ha")


@pytest.mark.parametrize(("change", "key", "text"), [
    ({"priority": 1}, "ha_device[0].partner_priority", "different priorities"),
    ({"partner_sync": None}, "ha_device[0].partner_sync", "lower priority, so it dials"),
    ({"partner_sync": "127.0.3.1"}, "ha_device[0].partner_sync", "is not HOST:PORT"),
    ({"partner_sync": "store1:3261"}, "ha_device[0].partner_sync", "is not an IP address"),
    ({"strategy": "majority"}, "ha_device[0].strategy", "is not one of heartbeat, node-majority"),
    ({"strategy": "node-majority"}, "ha_device[0].witness", "needs witness"),
    ({"initial_sync": "from-partner", "initial_source": "store9"},
     "ha_device[0].initial_source", "is neither store2 nor store1"),
    ({"group": 1}, "ha_device[0].partner_group", "its own ALUA target port group"),
    ({"sync_timeout": 0}, "ha_device[0].sync_timeout", "expected a number"),
    ({"colour": "red"}, "ha_device[0].colour", "unknown key"),
    ({"alias": None}, "ha_device[0].alias", "missing"),
])
def test_mistakes_name_the_key_and_a_fix(change, key, text):
    raw = {k: v for k, v in {**PARTNER_SIDE, **change}.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        parse(raw)
    assert err.value.key == key
    assert text in str(err.value)
    assert "\n" not in str(err.value)


def test_primary_side_must_listen():
    raw = {**PARTNER_SIDE, "priority": 1, "partner_priority": 2}
    raw.pop("partner_sync")
    with pytest.raises(ConfigError, match="higher priority, so it listens"):
        parse(raw, node="store1")
    raw["sync_listen"] = "127.0.3.1:3261"
    assert not parse(raw, node="store1").device.dials


def test_a_node_with_ha_devices_refuses_write_back_in_one_line():
    from harness.target.config import parse_config

    node = {"node": {"name": "store2", "data_dir": "/tmp/x", "write_through": False},
            "portal": [{"address": "127.0.0.1"}],
            "target": [{"iqn": PARTNER_SIDE["target"],
                        "lun": [{"lun": 0, "image": "a.img", "size": 1 << 20}]}],
            "ha_device": [PARTNER_SIDE]}
    with pytest.raises(ConfigError) as err:
        parse_config(node)
    assert err.value.key == "node.write_through" and "HA devices" in str(err.value)
    assert "\n" not in str(err.value)
    node["node"]["write_through"] = True
    assert parse_config(node).ha_devices  # write-through is accepted
    node["node"]["write_through"] = False
    del node["ha_device"]
    assert not parse_config(node).write_through  # a plain node may still write back


def test_defects_of_one_replica_parse_and_unknown_ones_are_refused():
    assert {d.value for d in parse({**PARTNER_SIDE, "defects": ["no-fencing"]}).device.defects} \
        == {"no-fencing"}
    with pytest.raises(ConfigError, match="unknown defect mode"):
        parse({**PARTNER_SIDE, "defects": ["gremlins"]})
