"""The HA part of a node's management API.

Routes (under ``/v1``, same bearer token as the rest of the API)::

    GET  /ha                             every HA replica on this node: states, links,
                                         generation, resync progress, recent events
    POST /ha                             create a replica (the Add Target wizard's last
                                         step): {"target": {...}, "ha_device": {...}}
    POST /ha/{alias}/mark-synchronized   administrator override after a double failure;
                                         409 when the partner provably holds newer data,
                                         unless the body is {"force": true}

``target`` is a target table as ``POST /targets`` takes it (with its LUN), and
``ha_device`` an ``[[ha_device]]`` table (harness.target.ha.node_config) whose
``target`` and ``lun`` name that LUN; the replica's node is the node that serves
the request. ``splitbrain target ha create`` calls this on both nodes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.target.config_reader import ConfigError, ConfigReader
from harness.target.ha.administration import MarkRefused
from harness.target.ha.node_config import parse_ha_device
from harness.target.ha.unit import HaLogicalUnit


def ha_units(node: Any) -> list[HaLogicalUnit]:
    """Every HA logical unit the node serves."""
    return [lun.unit for target in node.targets for lun in target.luns.values()
            if isinstance(lun.unit, HaLogicalUnit)]


def ha_status(node: Any) -> list[dict[str, Any]]:
    out = []
    for unit in ha_units(node):
        status = unit.ha.status()
        status["serial"] = unit.identity.serial
        status["alua"] = {str(g): unit.alua.state_of(g).name
                          for g in (unit.group, unit.partner_group)}
        out.append(status)
    return out


def install_ha_routes(node: Any) -> None:
    from harness.target.management import ApiError, ApiRequest

    api = node.management

    async def list_devices(_: ApiRequest) -> Any:
        return ha_status(node)

    async def create(r: ApiRequest) -> Any:
        body = r.json_object()
        if not isinstance(body.get("target"), dict) or not isinstance(body.get("ha_device"),
                                                                       dict):
            raise ApiError(400, "body needs {\"target\": {...}, \"ha_device\": {...}}")
        reader = ConfigReader("management API", {}, Path(node.config.data_dir))
        try:
            binding = parse_ha_device(reader, body["ha_device"], "ha_device",
                                      node=node.config.name, state_dir=node.config.data_dir)
        except ConfigError as exc:
            raise ApiError(400, str(exc)) from None
        if any(b.device.alias == binding.device.alias for b in node.targets.config.ha_devices):
            raise ApiError(409, f"HA device {binding.device.alias} exists on this node")
        node.targets.config = replace(node.targets.config,
                                      ha_devices=(*node.targets.config.ha_devices, binding))
        try:
            created = await node.create_target(body["target"])
        except BaseException:
            node.targets.config = replace(node.targets.config, ha_devices=tuple(
                b for b in node.targets.config.ha_devices if b is not binding))
            raise
        return {"target": created, "ha": [s for s in ha_status(node)
                                          if s["alias"] == binding.device.alias]}

    async def mark(r: ApiRequest) -> Any:
        alias = r.params["alias"]
        unit = next((u for u in ha_units(node) if u.ha.config.alias == alias), None)
        if unit is None:
            raise ApiError(404, f"no HA device {alias} on node {node.config.name}")
        force = isinstance(r.body, dict) and r.body.get("force") is True
        try:
            unit.ha.mark_synchronized(force=force)
        except MarkRefused as exc:
            raise ApiError(409, str(exc)) from None
        return unit.ha.status()

    api.add_route("GET", "/v1/ha", list_devices)
    api.add_route("POST", "/v1/ha", create)
    api.add_route("POST", "/v1/ha/{alias}/mark-synchronized", mark)
