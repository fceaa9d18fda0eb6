"""The inventory: one TOML file that describes a site under test.

The model: a *site* is a set of *networks* (each with one or more roles: public,
heartbeat, iscsi, sync, and a CIDR), *hosts* (each with roles: storage,
cluster-node, domain-controller, witness; an address on every network it is
attached to; and how to reach it over ssh), *HA devices* (one disk mirrored over
several storage hosts: alias, purpose, size, LUN, failover strategy, and a
replica per storage host with its target name and priority), *budgets* (named
failover time limits, grouped in profiles) and *MPIO settings*. ``destructive``
says whether chaos may break the site at all. Secrets never live in the file:
only ``${ENV}`` references, resolved when a connection is made.

``load(path)`` returns a frozen ``Inventory`` or raises ``InventoryError`` naming
the file, the line (or key path), what is wrong and how to fix it.
docs/inventory.md is the reference of every key.

This module is the inventory's public face. The frozen model lives in
``harness.lab.inventory_model`` and is re-exported here; the checks that build
it from TOML live in ``harness.lab.inventory_schema`` (and
``harness.lab.inventory_real_site``), which import the model, never this module.
"""

from __future__ import annotations

from pathlib import Path

from harness.lab.inventory_model import *  # noqa: F403  (the model's names, its __all__)
from harness.lab.inventory_model import Inventory
from harness.lab.inventory_schema import build
from harness.lab.toml_source import TomlSource


def load(path: str | Path) -> Inventory:
    """Read and check an inventory file; raise ``InventoryError`` on any mistake."""
    return build(TomlSource.read(Path(path)))


def loads(text: str, path: str | Path = "<inventory>") -> Inventory:
    """Check an inventory given as text (``path`` only names it in errors)."""
    return build(TomlSource.parse(text, Path(path)))
