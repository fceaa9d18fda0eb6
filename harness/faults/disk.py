"""Disk faults inside a reference target node: slow I/O, EIO on a range, no space.

The storage node applies these in its block store; the harness asks for them
through the node's management API (``/v1/faults/disk``, served by
``harness.target.disk_faults``), so the fault lives in the node process and dies
with it. A range is ``[lba, lba + count)``; ``count = 0`` means the whole LUN.

- ``slow``: every read and write touching the range takes ``delay_ms`` longer.
- ``eio``: reads and writes touching the range (``count > 0``) fail with
  MEDIUM ERROR / UNRECOVERED READ ERROR (or WRITE ERROR), as a bad sector range.
- ``nospace``: writes in the range to blocks not yet allocated in the sparse
  image fail with DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT, as a thin
  pool that filled up (overwrites of allocated blocks still succeed).

On an HA replica the fault breaks that replica's local disk only; its partner's
disk is untouched.

Heal deletes the fault by its id (an unknown id means already healed), then
lists the node's disk faults to verify it is gone. A node that is not running
holds no disk faults, so there is nothing to heal.
"""

from __future__ import annotations

from typing import Any

from harness.faults.fault import Fault, FaultError, HealError
from harness.faults.journal import FaultJournal
from harness.lab.state import LabState, LabStateError

KINDS = ("slow", "eio", "nospace")


def _client(state_dir: str, host: str) -> Any | None:
    """A management client of the host's node, or None if the node is not running."""
    from harness.target.management import ManagementClient  # lab nodes are reference targets

    try:
        record = LabState(state_dir).load()
    except LabStateError:
        return None
    node = record.nodes.get(host)
    if node is None or not node.alive:
        return None
    ready = node.ready() or {}
    url = ready.get("management")
    if not url:
        raise HealError(f"lab node {host} does not publish its management URL in {node.ready_file}")
    token = (LabState(state_dir).root / "token").read_text().strip()
    return ManagementClient(url, token)


class DiskFault(Fault):
    """A defect of one LUN of one lab node, applied by the node itself."""

    kind = "disk"

    def __init__(
        self,
        host: str,
        target_iqn: str,
        lun: int,
        action: str,
        *,
        state_dir: str,
        delay_ms: float = 0.0,
        lba: int = 0,
        count: int = 0,
        journal: FaultJournal | None = None,
    ) -> None:
        if action not in KINDS:
            raise FaultError(f"unknown disk fault {action!r}; use one of {', '.join(KINDS)}")
        if action == "slow" and delay_ms <= 0:
            raise FaultError("a slow disk fault needs delay_ms > 0")
        if action == "eio" and count <= 0:
            raise FaultError("an eio disk fault needs a range: count > 0 blocks from lba")
        params = {
            "action": action,
            "iqn": target_iqn,
            "lun": lun,
            "delay_ms": delay_ms,
            "lba": lba,
            "count": count,
        }
        super().__init__(f"{host}:{target_iqn}/{lun}", params, journal=journal)
        self.host, self.state_dir = host, str(state_dir)

    def apply(self) -> None:
        client = _client(self.state_dir, self.host)
        if client is None:
            raise FaultError(f"lab node {self.host} is not running; cannot break its disk")
        body = {
            "id": self.id,
            "target": self.params["iqn"],
            "lun": self.params["lun"],
            "kind": self.params["action"],
            "delay_ms": self.params["delay_ms"],
            "lba": self.params["lba"],
            "count": self.params["count"],
        }
        try:
            client.request("POST", "/v1/faults/disk", body)
        except Exception as exc:
            raise FaultError(f"node {self.host} refused disk fault {self.name}: {exc}") from None

    def undo_record(self) -> dict[str, Any]:
        return {"state_dir": self.state_dir, "host": self.host, "id": self.id}

    @classmethod
    def heal_from(cls, undo: dict[str, Any]) -> None:
        client = _client(undo["state_dir"], undo["host"])
        if client is None:
            return
        try:
            client.request("DELETE", f"/v1/faults/disk/{undo['id']}")
        except Exception as exc:
            if " 404 " not in str(exc):
                raise HealError(f"node {undo['host']}: {exc}") from None
        remaining = client.request("GET", "/v1/faults/disk") or []
        if any(f.get("id") == undo["id"] for f in remaining):
            raise HealError(f"disk fault {undo['id']} is still active on node {undo['host']}")
