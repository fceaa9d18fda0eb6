"""The bundled reference target's replica states: its management API (``GET /v1/ha``).

In the lab the harness asks each node directly (``LabReplicaStates``, through the
lab's ``ha_states``). On a real site whose storage hosts run the reference
target as their service, each host is asked over SSH (``BundledReplicaStates``):
a fixed, standard-library-only Python snippet reads the node's ready file (its
management URL) and token file on that host and prints the API's answer, so the
API port never has to be reachable from the controller and nothing but
``python3`` is needed there. The files are ``[storage] ready_file`` and
``token_file`` of the inventory (``{host}`` in them becomes the host's name).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from harness.remote.errors import OutputFormatError
from harness.remote.replicas import (
    DOWN,
    NOT_SYNCHRONIZED,
    STATES,
    SYNCHRONIZED,
    SYNCHRONIZING,
    PerHostReader,
    ReplicaStateError,
    ReplicaStatus,
)

# argv: ready file, token file. Fixed text; stdlib only (the host need not have splitbrain).
QUERY = """
import json, sys, urllib.request
ready = json.load(open(sys.argv[1]))
token = open(sys.argv[2]).read().strip()
req = urllib.request.Request(ready["management"].rstrip("/") + "/v1/ha")
req.add_header("Authorization", "Bearer " + token)
print(urllib.request.urlopen(req, timeout=10).read().decode())
"""

# argv: ready file, token file, device name. The administrator's override after a split
# brain the device detected: this replica becomes the one its partners resync from.
MARK = """
import json, sys, urllib.request
ready = json.load(open(sys.argv[1]))
token = open(sys.argv[2]).read().strip()
url = ready["management"].rstrip("/") + "/v1/ha/" + sys.argv[3] + "/mark-synchronized"
req = urllib.request.Request(url, method="POST")
req.add_header("Authorization", "Bearer " + token)
print(urllib.request.urlopen(req, timeout=10).read().decode())
"""


def _state(word: str) -> str:
    for state in STATES:
        if word.casefold() == state.casefold():
            return state
    return NOT_SYNCHRONIZED if word else DOWN


def parse_ha_status(rows: Any, host: str) -> list[ReplicaStatus]:
    """``GET /v1/ha`` rows (harness.target.ha.service) -> statuses, keyed by alias."""
    if not isinstance(rows, list):
        raise OutputFormatError(f"GET /v1/ha on {host} did not answer a list: {rows!r:.120}")
    out = []
    for row in rows:
        resync = row.get("resync") or {}
        state = _state(str(row.get("state", "")))
        percent = resync.get("percent") if state == SYNCHRONIZING else (
            100.0 if state == SYNCHRONIZED else None)
        out.append(ReplicaStatus(
            device=str(row["alias"]), host=host, state=state,
            percent=None if percent is None else float(percent),
            partner_connected=bool(row.get("sync_link")) if "sync_link" in row else None,
            detail=f"state {row.get('state')}, partner {row.get('partner_state')}, "
                   f"generation {row.get('generation')}"))
    return out


class LabReplicaStates:
    """Replica states of a running lab, from its nodes' management APIs."""

    kind = "bundled"

    def __init__(self, lab: Any, inventory: Any) -> None:
        self.lab, self.inventory = lab, inventory

    def states(self, devices: Iterable[str] | None = None) -> list[ReplicaStatus]:
        aliases = list(devices) if devices is not None else list(self.inventory.devices)
        try:
            found = self.lab.ha_states()
        except OSError as exc:
            raise ReplicaStateError(f"cannot read the lab's replica states: {exc}") from None
        return [
            ReplicaStatus(alias, r.host, _state(found.get(alias, {}).get(r.host, "")),
                          detail=f"lab node {r.host}: {found.get(alias, {}).get(r.host, 'down')}")
            for alias in aliases for r in self.inventory.device(alias).replicas
        ]


class BundledReplicaStates(PerHostReader):
    """The reference target on real storage hosts, asked over SSH."""

    kind = "bundled"

    def _files(self, host: str) -> list[str]:
        storage = self.inventory.storage
        if not storage.ready_file or not storage.token_file:
            raise ReplicaStateError(
                f"{self.inventory.path}: [storage] kind = \"bundled\" on a real site needs "
                "ready_file and token_file (the node's files on each storage host)")
        return [storage.ready_file.replace("{host}", host),
                storage.token_file.replace("{host}", host)]

    def mark_synchronized(self, alias: str, host: str) -> str:
        """The administrator's override after a split brain the device keeps (both replicas
        Not synchronized): mark ``alias`` on ``host`` Synchronized, so its partners resync
        from it. Over SSH, through the node's management API on that host."""
        with self.opener(self.inventory, host) as driver:
            driver.run_argv([self.inventory.storage.python, "-c", MARK, *self._files(host),
                             self.storage_name(alias)], timeout=30)
        return f"marked {alias}@{host} synchronized (its management API, over SSH)"

    def read_host(self, driver: Any, host: str, devices: list[str]) -> list[ReplicaStatus]:
        storage = self.inventory.storage
        result = driver.run_argv([storage.python, "-c", QUERY, *self._files(host)], timeout=30)
        try:
            rows = json.loads(result.stdout)
        except ValueError:
            raise OutputFormatError(
                f"GET /v1/ha on {host} printed no JSON: {result.stdout[:120]!r}") from None
        by_name = {s.device: s for s in parse_ha_status(rows, host)}
        return [
            ReplicaStatus(alias, host, s.state, s.percent, s.partner_connected, s.detail)
            for alias in devices if (s := by_name.get(self.storage_name(alias))) is not None
        ]
