"""Inventory keys that only a real site needs: storage kind and credentials, power control.

Builders called by ``harness.lab.inventory_schema`` with its reader, so every
mistake is reported at its line like the rest of the inventory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.lab.inventory_model import POWER_KINDS, STORAGE_KINDS, PowerControl, StorageSettings
from harness.lab.toml_source import KeyPath

if TYPE_CHECKING:
    from harness.lab.inventory_schema import _Reader


def file_path(r: _Reader, value: object, path: KeyPath) -> str:
    text = r.string(value, path)
    full = Path(text).expanduser()
    if not full.is_absolute():
        full = r.source.path.parent / full
    return str(full)


def power(r: _Reader, value: object, path: KeyPath) -> PowerControl:
    """``power = { kind, address, user, password = "${ENV}", system }`` (validated only)."""
    p = r.table(value, path, allowed=("kind", "address", "user", "password", "system"),
                required=("kind", "address", "user", "password"))
    address = r.string(p["address"], (*path, "address"))
    kind = r.choice(p["kind"], (*path, "kind"), POWER_KINDS)
    if kind == "redfish" and not address.startswith("https://"):
        raise r.fail((*path, "address"), f"a Redfish address must be an https:// URL, "
                     f"got {address!r}", 'write address = "https://bmc.example"')
    return PowerControl(
        kind=kind, address=address, user=r.string(p["user"], (*path, "user")),
        password=r.secret(p["password"], (*path, "password")),
        system=r.string(p["system"], (*path, "system")) if "system" in p else None,
    )


def storage(r: _Reader, value: object) -> StorageSettings:
    t = r.table(value, ("storage",),
                allowed=("kind", "user", "password", "port", "service", "process", "ready_file",
                         "token_file", "python", "logs"))
    logs = t.get("logs", [])
    if not isinstance(logs, list):
        raise r.fail(("storage", "logs"), "must be a list of log file paths",
                     'write logs = ["/var/log/tgt.log"]')
    kind = r.choice(t.get("kind", "bundled"), ("storage", "kind"), STORAGE_KINDS)
    if kind == "starwind" and ("user" not in t or "password" not in t):
        raise r.fail(("storage",), "StarWind needs its management credentials",
                     'add user = "${STARWIND_USER}" and password = "${STARWIND_PASSWORD}"')
    return StorageSettings(
        kind=kind,
        user=r.secret(t["user"], ("storage", "user")) if "user" in t else None,
        password=r.secret(t["password"], ("storage", "password")) if "password" in t else None,
        port=r.integer(t["port"], ("storage", "port"), 1, 65535) if "port" in t else None,
        service=r.string(t["service"], ("storage", "service")) if "service" in t else None,
        process=r.string(t["process"], ("storage", "process")) if "process" in t else None,
        ready_file=r.string(t["ready_file"], ("storage", "ready_file"))
        if "ready_file" in t else None,
        token_file=r.string(t["token_file"], ("storage", "token_file"))
        if "token_file" in t else None,
        python=r.string(t.get("python", "python3"), ("storage", "python")),
        logs=tuple(r.string(v, ("storage", "logs", i)) for i, v in enumerate(logs)),
    )
