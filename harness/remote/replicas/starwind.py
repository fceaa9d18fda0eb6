"""StarWind Virtual SAN replica states, through the StarWindX PowerShell module.

On each storage server the harness runs one PowerShell pipeline (through
``WindowsHost.powershell``) that imports ``StarWindX``, connects to the local
StarWind service (``New-SWServer -host 127.0.0.1 -port 3261``), and for every
device whose ``DeviceType`` is ``HA Image`` reads, with ``GetPropertyValue``:
``ha_synch_status``, ``ha_synch_percent``, ``ha_partner_nodes_count`` and, per
partner *i*, ``ha_partner_node<i>_host_name``, ``..._target_name`` and
``..._is_exist_sync_valid_connection`` (the property names StarWind's public
samples and the public Prometheus exporter use).

The StarWind credentials come only from the inventory's ``[storage] user`` and
``password`` (``${ENV}`` references). They travel on the command's *standard
input*, never on its command line (which the host's process list and our own
evidence would show).

``ha_synch_status`` is read as StarWind's samples use it: ``1`` is synchronized
(the samples loop until it is ``"1"``); ``2`` is taken as synchronizing and
``3`` as not synchronized. That numbering, and the transcript in
``tests/data/transcripts/starwind/``, were **reconstructed, not captured**;
docs/real-site.md says how to capture a real one.
"""

from __future__ import annotations

from typing import Any

from harness.remote.errors import OutputFormatError
from harness.remote.replicas import (
    NOT_SYNCHRONIZED,
    SYNCHRONIZED,
    SYNCHRONIZING,
    PerHostReader,
    ReplicaStatus,
)
from harness.remote.ssh import resolve_secret

DEFAULT_PORT = 3261
SYNC_STATUS = {"1": SYNCHRONIZED, "2": SYNCHRONIZING, "3": NOT_SYNCHRONIZED}

# The credentials are the first two lines of stdin. Fixed text but for the port.
SCRIPT = """\
$swUser = [Console]::In.ReadLine()
$swPassword = [Console]::In.ReadLine()
Import-Module StarWindX
$server = New-SWServer -host '127.0.0.1' -port {port} -user $swUser -password $swPassword
try {{
    $server.Connect()
    foreach ($device in $server.Devices) {{
        if ([string]$device.DeviceType -ne 'HA Image') {{ continue }}
        $device.Refresh()
        $count = [int]$device.GetPropertyValue('ha_partner_nodes_count')
        $partners = @(for ($i = 1; $i -le $count; $i++) {{
            [pscustomobject]@{{
                HostName = [string]$device.GetPropertyValue("ha_partner_node$($i)_host_name")
                TargetName = [string]$device.GetPropertyValue("ha_partner_node$($i)_target_name")
                SyncConnection = [string]$device.GetPropertyValue(
                    "ha_partner_node$($i)_is_exist_sync_valid_connection")
            }}
        }})
        [pscustomobject]@{{
            Name = [string]$device.Name
            DeviceName = [string]$device.DeviceName
            TargetName = [string]$device.TargetName
            SyncStatus = [string]$device.GetPropertyValue('ha_synch_status')
            SyncPercent = [string]$device.GetPropertyValue('ha_synch_percent')
            Partners = $partners
        }}
    }}
}} finally {{
    $server.Disconnect()
}}
"""


def script(port: int = DEFAULT_PORT) -> str:
    return SCRIPT.format(port=int(port))


def parse_devices(rows: list[Any], host: str) -> dict[str, ReplicaStatus]:
    """The script's objects -> status per StarWind device name (and per target name)."""
    out: dict[str, ReplicaStatus] = {}
    for row in rows:
        if not isinstance(row, dict) or "SyncStatus" not in row:
            raise OutputFormatError(f"StarWindX on {host} returned an unexpected object: "
                                    f"{row!r:.120}")
        code = str(row["SyncStatus"]).strip()
        state = SYNC_STATUS.get(code)
        if state is None:
            raise OutputFormatError(
                f"StarWind device {row.get('Name')} on {host} has ha_synch_status {code!r}, "
                "not 1, 2 or 3: capture a transcript (docs/real-site.md) and report it")
        try:
            percent: float | None = float(row.get("SyncPercent") or "")
        except ValueError:
            percent = None
        partners = row.get("Partners") or []
        if isinstance(partners, dict):  # PowerShell 5.1 prints a one-element array as itself
            partners = partners.get("value", [partners])
        connected = ([str(p.get("SyncConnection", "")).lower() == "yes" for p in partners]
                     if partners else [])
        status = ReplicaStatus(
            device=str(row.get("Name")), host=host, state=state, percent=percent,
            partner_connected=all(connected) if connected else None,
            detail=f"ha_synch_status={code} ha_synch_percent={row.get('SyncPercent')} "
                   f"partners={[p.get('HostName') for p in partners]}")
        for key in (row.get("Name"), row.get("DeviceName"), row.get("TargetName")):
            if key:
                out[str(key)] = status
    return out


class StarWindReplicaStates(PerHostReader):
    """StarWind HA devices on each storage server, over SSH + PowerShell."""

    kind = "starwind"

    def credentials(self, host: str) -> str:
        storage = self.inventory.storage
        user = resolve_secret(storage.user, what="StarWind user", host=host)
        password = resolve_secret(storage.password, what="StarWind password", host=host)
        return f"{user}\n{password}\n"

    def read_host(self, driver: Any, host: str, devices: list[str]) -> list[ReplicaStatus]:
        rows = driver.powershell(
            script(self.inventory.storage.port or DEFAULT_PORT),
            operation="StarWindX device states", stdin=self.credentials(host),
            hint="the StarWindX module (StarWind Management Console) must be installed on "
                 "the storage server, and the [storage] credentials must be right")
        found = parse_devices(rows, host)
        out = []
        for alias in devices:
            name = self.storage_name(alias)
            replica = self.inventory.device(alias).replica_on(host)
            s = found.get(name) or found.get(replica.target)
            if s is not None:
                out.append(ReplicaStatus(alias, host, s.state, s.percent, s.partner_connected,
                                         s.detail))
        return out
