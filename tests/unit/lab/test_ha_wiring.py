"""How the lab wires HA pairs: the priority-1 replica listens, the other dials through the
proxy's per-device link; the node tables say so."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from harness.lab.ha_wiring import HaWiringError, ha_device_tables, link_name, plan_pairs
from harness.lab.inventory import load, loads

LAB = Path(__file__).parents[3] / "fixtures" / "inventories" / "lab.toml"


def test_pairs_listener_is_the_highest_priority() -> None:
    pairs = plan_pairs(load(LAB))
    assert [(p.alias, p.listener, p.dialer) for p in pairs] == [
        ("HA1", "SWS-Store1", "SWS-Store2"),
        ("HA2", "SWS-Store1", "SWS-Store2"),
    ]
    assert all(p.sync_network == "sync" and p.heartbeat_network == "heartbeat" for p in pairs)
    assert len({p.sync_port for p in pairs} | {p.heartbeat_port for p in pairs}) == 4


def test_tables_listen_on_one_side_and_dial_the_proxy_on_the_other() -> None:
    inventory = load(LAB)
    pairs = plan_pairs(inventory)
    ports = {
        link_name(n, "SWS-Store1", a): 40000 + i
        for i, (n, a) in enumerate((n, a) for n in ("sync", "heartbeat") for a in ("HA1", "HA2"))
    }
    listener = tomllib.loads("\n".join(ha_device_tables(inventory, "SWS-Store1", pairs, ports)))
    dialer = tomllib.loads("\n".join(ha_device_tables(inventory, "SWS-Store2", pairs, ports)))
    ha1 = listener["ha_device"][0]
    assert ha1["priority"] == 1 and ha1["partner_priority"] == 2 and ha1["partner"] == "SWS-Store2"
    assert ha1["sync_listen"] == f"127.10.3.11:{pairs[0].sync_port}"
    assert "partner_sync" not in ha1
    partner = dialer["ha_device"][0]
    assert partner["target"].endswith("ha1partner") and partner["priority"] == 2
    assert partner["partner_sync"] == "127.10.3.11:40000"
    assert partner["partner_heartbeat"] == "127.10.4.11:40002"
    assert ha_device_tables(inventory, "Demo1", pairs, ports) == []


def test_node_majority_is_refused_in_the_lab() -> None:
    text = LAB.read_text().replace('strategy = "heartbeat"', 'strategy = "node-majority"', 1)
    text = text.replace('roles = ["domain-controller"]', 'roles = ["domain-controller", "witness"]')
    text = text.replace('size = "1GiB"', 'size = "1GiB"\nwitness = "SWS-DC"')
    with pytest.raises(HaWiringError, match="no witness process"):
        plan_pairs(loads(text, "lab.toml"))


def _with_defects(device: str, replica: str) -> str:
    text = LAB.read_text()
    text = text.replace('size = "1GiB"', f'size = "1GiB"\n{device}', 1)
    return text.replace(
        'target = "iqn.2008-08.com.starwindsoftware:sws-store2-ha1partner"',
        f'target = "iqn.2008-08.com.starwindsoftware:sws-store2-ha1partner"\n{replica}',
    )


def test_inventory_defects_reach_the_node_tables_per_device_and_per_replica() -> None:
    from harness.target.config import parse_config  # the node reads what the lab writes

    inventory = loads(
        _with_defects('defects = ["slow-failover"]', 'defects = ["no-fencing"]'), "lab.toml"
    )
    pairs = plan_pairs(inventory)
    ports = {link_name(n, "SWS-Store1", a): 40000 + i
             for i, (n, a) in enumerate((n, a) for n in ("sync", "heartbeat")
                                        for a in ("HA1", "HA2"))}
    store1 = tomllib.loads("\n".join(ha_device_tables(inventory, "SWS-Store1", pairs, ports)))
    store2 = tomllib.loads("\n".join(ha_device_tables(inventory, "SWS-Store2", pairs, ports)))
    assert store1["ha_device"][0]["defects"] == ["slow-failover"]
    assert store2["ha_device"][0]["defects"] == ["no-fencing", "slow-failover"]
    assert "defects" not in store1["ha_device"][1]  # HA2 is untouched
    node = {"node": {"name": "SWS-Store2", "data_dir": "/tmp/x"},
            "portal": [{"address": "127.0.0.1"}],
            "target": [{"iqn": store2["ha_device"][0]["target"],
                        "lun": [{"lun": 0, "image": "a.img", "size": 1 << 20}]}],
            "ha_device": [store2["ha_device"][0]]}
    binding = parse_config(node).ha_devices[0]
    assert {d.value for d in binding.device.defects} == {"no-fencing", "slow-failover"}


def test_inventory_refuses_an_unknown_defect_in_one_line() -> None:
    from harness.lab.toml_source import InventoryError

    with pytest.raises(InventoryError, match=r"unknown defect mode 'no-fencin'.*no-fencing"):
        loads(_with_defects("", 'defects = ["no-fencin"]'), "lab.toml")
