"""LIO replica states: the ALUA access state of the device's target port groups.

LIO itself mirrors nothing: a Linux HA SAN puts LIO in front of replicated
storage and lets the failover stack (Pacemaker's ``iSCSILogicalUnit`` agents,
for example) set each node's ALUA state. What LIO can say is that verdict, read
from configfs, ``/sys/kernel/config/target/core/<hba>/<backstore>/alua/<group>/
alua_access_state`` (SPC-4 codes: 0 Active/Optimized, 1 Active/Non-optimized,
2 Standby, 3 Unavailable, 4 LBA-dependent, 14 Offline, 15 Transitioning):

- a group that serves (0, 1, 2, 4) counts as ``Synchronized``;
- ``Transitioning`` (15) as ``Synchronizing``;
- ``Unavailable`` or ``Offline`` as ``Not synchronized``.

This says nothing about the data underneath: for DRBD-backed LIO use
``kind = "drbd"``, which reads the replication itself. ``storage_name`` is the
backstore's name (default: the alias). The transcript in
``tests/data/transcripts/lio/`` is reconstructed, not captured.
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

CONFIGFS = "/sys/kernel/config/target/core"
ALUA_STATES = {0: "Active/Optimized", 1: "Active/Non-optimized", 2: "Standby",
               3: "Unavailable", 4: "LBA-dependent", 14: "Offline", 15: "Transitioning"}
# prints "<path> <state>" per target port group; fixed text
LIST_SCRIPT = (
    f"for f in {CONFIGFS}/*/*/alua/*/alua_access_state; do "
    '[ -r "$f" ] && printf "%s %s\\n" "$f" "$(cat "$f")"; done; exit 0'
)


def parse_alua(text: str, host: str) -> dict[str, ReplicaStatus]:
    """The listing -> status per backstore (the worst group of each backstore counts)."""
    groups: dict[str, list[tuple[str, int]]] = {}
    for line in text.splitlines():
        path, _, value = line.strip().rpartition(" ")
        parts = path.split("/")
        if not path or "alua" not in parts:
            continue
        i = parts.index("alua")
        try:
            code = int(value)
        except ValueError:
            raise OutputFormatError(f"ALUA state of {path} on {host} is {value!r}, not a "
                                    "number") from None
        groups.setdefault(parts[i - 1], []).append((parts[i + 1], code))
    out = {}
    for backstore, states in groups.items():
        codes = {c for _, c in states}
        if codes & {3, 14}:
            state = NOT_SYNCHRONIZED
        elif 15 in codes:
            state = SYNCHRONIZING
        else:
            state = SYNCHRONIZED
        out[backstore] = ReplicaStatus(
            device=backstore, host=host, state=state,
            detail="ALUA " + ", ".join(f"{g}={ALUA_STATES.get(c, c)}" for g, c in states))
    return out


class LioReplicaStates(PerHostReader):
    """LIO backstores' ALUA states on each storage host, over SSH."""

    kind = "lio"

    def read_host(self, driver: Any, host: str, devices: list[str]) -> list[ReplicaStatus]:
        found = parse_alua(driver.run_argv(["sh", "-c", LIST_SCRIPT]).stdout, host)
        return [
            ReplicaStatus(alias, host, s.state, s.percent, s.partner_connected, s.detail)
            for alias in devices if (s := found.get(self.storage_name(alias))) is not None
        ]
