"""The ``[[ha_device]]`` tables of a node's TOML: which local LUN is a replica
of which HA device, and how it reaches its partner.

Example (node ``store2``, the partner of ``store1``, which listens)::

    [[ha_device]]
    alias = "HA1"                                   # the device; store2's target is HA1Partner
    target = "iqn.2026-11.lab.splitbrain:store2.ha1partner"
    lun = 0
    priority = 2                                    # 1 is the highest
    partner = "store1"
    partner_priority = 1
    partner_sync = "127.0.3.1:3261"                 # the lower priority dials ...
    partner_heartbeat = "127.0.4.1:3262"
    # sync_listen / heartbeat_listen: what the higher priority listens on
    strategy = "heartbeat"                          # or "node-majority" with witness = "H:P"
    initial_sync = "none"                           # "clear", "from-partner", "none"
    initial_source = "store1"                       # with from-partner
    group = 2                                       # this node's ALUA target port group
    partner_group = 1
    sync_timeout = 1.0                              # seconds
    heartbeat_timeout = 0.5
    defects = []                                    # defect modes of this replica only
                                                    # (harness.target.defects; the zoo)

Both nodes must present the same identity for the LUN (``serial`` and ``naa`` of
the ``[[target.lun]]``), which ``lab`` and the wizard do for you.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.target.config_reader import ConfigReader, read_address
from harness.target.defects import Defect, UnknownDefect, parse_defects
from harness.target.ha.config import Address, HaDeviceConfig, HaTimeouts
from harness.target.ha.replica import FailoverStrategy, InitialSync

KEYS = {"alias", "target", "lun", "priority", "partner", "partner_priority", "sync_listen",
        "partner_sync", "heartbeat_listen", "partner_heartbeat", "strategy", "witness",
        "initial_sync", "initial_source", "group", "partner_group", "sync_timeout",
        "heartbeat_timeout", "witness_timeout", "region_size", "defects"}


@dataclass(frozen=True)
class HaDeviceBinding:
    """Which local LUN serves an HA device, and as which ALUA group."""

    target: str
    lun: int
    group: int
    partner_group: int
    device: HaDeviceConfig


def _endpoint(reader: ConfigReader, t: dict[str, Any], key: str, name: str) -> Address | None:
    if name not in t:
        return None
    text = reader.string(t, key, name)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise reader.fail(f"{key}.{name}", f"{text!r} is not HOST:PORT",
                          f"write it as {name} = \"127.0.0.1:3261\" (a fixed port)")
    return read_address(reader, f"{key}.{name}", host), int(port)


def _choice(reader: ConfigReader, t: dict[str, Any], key: str, name: str, enum: Any,
            default: Any) -> Any:
    value = reader.string(t, key, name, default=default.value)
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(e.value for e in enum)
        raise reader.fail(f"{key}.{name}", f"{value!r} is not one of {choices}",
                          f"write {name} = \"{default.value}\"") from None


def _defects(reader: ConfigReader, t: dict[str, Any], key: str) -> frozenset[Defect]:
    names = t.get("defects", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise reader.fail(f"{key}.defects", "expected a list of defect names",
                          "write it as defects = [\"name\"] or leave it out")
    try:
        return parse_defects(names)
    except UnknownDefect as exc:
        raise reader.fail(f"{key}.defects", str(exc), "drop or correct the name") from None


def parse_ha_device(reader: ConfigReader, raw: Any, key: str, *, node: str,
                    state_dir: Any) -> HaDeviceBinding:
    t = reader.table(raw, key, KEYS)
    alias = reader.string(t, key, "alias", required=True)
    priority = reader.integer(t, key, "priority", 1, 1, 16)
    partner_priority = reader.integer(t, key, "partner_priority", 2, 1, 16)
    if priority == partner_priority:
        raise reader.fail(f"{key}.partner_priority", f"equal to priority ({priority})",
                          "give the two replicas different priorities (1 is the highest)")
    dials = priority > partner_priority
    endpoints = {n: _endpoint(reader, t, key, n) for n in
                 ("sync_listen", "partner_sync", "heartbeat_listen", "partner_heartbeat",
                  "witness")}
    needed = ("partner_sync",) if dials else ("sync_listen",)
    for name in needed:
        if endpoints[name] is None:
            role = "lower" if dials else "higher"
            raise reader.fail(f"{key}.{name}", "missing",
                              f"this replica has the {role} priority, so it "
                              f"{'dials' if dials else 'listens'}: add {name} = \"HOST:PORT\"")
    strategy = _choice(reader, t, key, "strategy", FailoverStrategy, FailoverStrategy.HEARTBEAT)
    if strategy is FailoverStrategy.NODE_MAJORITY and endpoints["witness"] is None:
        raise reader.fail(f"{key}.witness", "missing",
                          "strategy node-majority needs witness = \"HOST:PORT\"")
    initial = _choice(reader, t, key, "initial_sync", InitialSync, InitialSync.NONE)
    source = reader.string(t, key, "initial_source", default="") or None
    partner = reader.string(t, key, "partner", required=True)
    if initial is InitialSync.FROM_PARTNER and source not in (node, partner):
        raise reader.fail(f"{key}.initial_source", f"{source!r} is neither {node} nor {partner}",
                          f"name the replica whose data is copied: \"{node}\" or \"{partner}\"")
    region = reader.integer(t, key, "region_size", 1024 * 1024, 4096, 1 << 30)
    timeouts = HaTimeouts(
        sync_s=reader.number(t, key, "sync_timeout", 1.0, 0.05, 600),
        heartbeat_s=reader.number(t, key, "heartbeat_timeout", 0.5, 0.02, 600),
        witness_s=reader.number(t, key, "witness_timeout", 1.0, 0.05, 600))
    device = HaDeviceConfig(
        defects=_defects(reader, t, key),
        alias=alias, node=node, priority=priority, partner=partner,
        partner_priority=partner_priority, state_dir=state_dir / "ha",
        sync_listen=endpoints["sync_listen"], partner_sync=endpoints["partner_sync"],
        heartbeat_listen=endpoints["heartbeat_listen"],
        partner_heartbeat=endpoints["partner_heartbeat"], strategy=strategy,
        witness=endpoints["witness"], initial_sync=initial, initial_source=source,
        region_bytes=region, timeouts=timeouts)
    group = reader.integer(t, key, "group", priority, 1, 0xFFFF)
    partner_group = reader.integer(t, key, "partner_group", partner_priority, 1, 0xFFFF)
    if group == partner_group:
        raise reader.fail(f"{key}.partner_group", f"equal to group ({group})",
                          "each replica needs its own ALUA target port group")
    return HaDeviceBinding(target=reader.string(t, key, "target", required=True),
                           lun=reader.integer(t, key, "lun", 0, 0, 16383), group=group,
                           partner_group=partner_group, device=device)
