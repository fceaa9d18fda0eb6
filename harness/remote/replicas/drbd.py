"""DRBD replica states: ``drbdsetup status --json`` on each storage host.

DRBD 9 prints one object per resource: its local ``devices`` (``disk-state``:
UpToDate, Inconsistent, Outdated, Diskless, ...) and its ``connections`` to peers
(``connection-state``, and per peer device ``replication-state`` such as
Established, SyncSource, SyncTarget, and ``percent-in-sync``). The mapping:

- ``Synchronized``: every local volume is ``UpToDate`` and no volume resyncs;
- ``Synchronizing``: a volume is ``SyncSource``/``SyncTarget`` (or a paused or
  starting sync) with some peer; the percentage is the lowest ``percent-in-sync``;
- ``Not synchronized``: anything else (Outdated, Inconsistent without a resync,
  Diskless, Failed).

The partner is connected when every connection is ``Connected``. The device's
``storage_name`` in the inventory is the DRBD resource name (default: the alias).
The transcript in ``tests/data/transcripts/drbd/`` is reconstructed from DRBD's
documented JSON shape, not captured.
"""

from __future__ import annotations

import json
from typing import Any

from harness.remote.errors import OutputFormatError
from harness.remote.replicas import (
    NOT_SYNCHRONIZED,
    SYNCHRONIZED,
    SYNCHRONIZING,
    PerHostReader,
    ReplicaStatus,
)

RESYNCING = {"SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT", "StartingSyncS",
             "StartingSyncT", "WFBitMapS", "WFBitMapT", "WFSyncUUID"}


def parse_status(text: str, host: str) -> dict[str, ReplicaStatus]:
    """``drbdsetup status --json`` -> status per resource name."""
    try:
        resources = json.loads(text)
    except ValueError:
        raise OutputFormatError(f"drbdsetup status --json on {host} printed no JSON: "
                                f"{text[:120]!r}") from None
    if not isinstance(resources, list):
        raise OutputFormatError(f"drbdsetup status --json on {host}: expected a list")
    out = {}
    for res in resources:
        name = str(res.get("name"))
        disks = [str(d.get("disk-state")) for d in res.get("devices", [])]
        connections = res.get("connections", [])
        peer_devices = [p for c in connections for p in c.get("peer_devices", [])]
        replication = [str(p.get("replication-state")) for p in peer_devices]
        resyncing = [p for p in peer_devices if p.get("replication-state") in RESYNCING]
        if resyncing:
            state = SYNCHRONIZING
            percent: float | None = min(float(p.get("percent-in-sync", 0.0)) for p in resyncing)
        elif disks and all(d == "UpToDate" for d in disks):
            state, percent = SYNCHRONIZED, 100.0
        else:
            state, percent = NOT_SYNCHRONIZED, None
        out[name] = ReplicaStatus(
            device=name, host=host, state=state, percent=percent,
            partner_connected=(all(c.get("connection-state") == "Connected" for c in connections)
                               if connections else False),
            detail=f"role {res.get('role')}, disk {'/'.join(disks) or '-'}, connections "
                   + (", ".join(f"{c.get('name')}={c.get('connection-state')}"
                                for c in connections) or "none")
                   + (f", replication {'/'.join(replication)}" if replication else ""))
    return out


class DrbdReplicaStates(PerHostReader):
    """DRBD resources on each storage host, over SSH."""

    kind = "drbd"

    def read_host(self, driver: Any, host: str, devices: list[str]) -> list[ReplicaStatus]:
        found = parse_status(driver.run_argv(["drbdsetup", "status", "--json"]).stdout, host)
        return [
            ReplicaStatus(alias, host, s.state, s.percent, s.partner_connected, s.detail)
            for alias in devices if (s := found.get(self.storage_name(alias))) is not None
        ]
