"""Replica states of HA devices, read the way the site's storage allows.

The model: an HA device has one replica per storage host; each replica is in
one of the wizard's three states, ``Synchronized`` (holds every acknowledged
write and mirrors new ones), ``Synchronizing`` (being brought up to date, with a
percentage) or ``Not synchronized`` (stale or cut off), plus ``down`` when its
host or storage service cannot be asked at all. Each replica also says whether
it currently has a connection to its partner (``None`` when the storage does not
tell). Every storage kind maps its own words onto these:

- ``bundled``: the reference target's management API (``GET /v1/ha``), from the
  lab directly or over SSH on a storage host (``bundled.py``);
- ``starwind``: StarWindX PowerShell on each storage server, ``ha_synch_status``,
  ``ha_synch_percent`` and the partner's valid sync connection (``starwind.py``);
- ``drbd``: ``drbdsetup status --json`` (``drbd.py``);
- ``lio``: the ALUA access state of the device's target port group in configfs
  (``lio.py``), which is what the failover stack decided, not a data comparison.

``readers.for_inventory`` picks the reader from ``[storage] kind``. Waiting for
Synchronized (``wait_synchronized``) and refusing a fault unless every replica
is Synchronized (``require_synchronized``) work the same against every kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.errors import SplitbrainError

SYNCHRONIZED = "Synchronized"
SYNCHRONIZING = "Synchronizing"
NOT_SYNCHRONIZED = "Not synchronized"
DOWN = "down"
STATES = (SYNCHRONIZED, SYNCHRONIZING, NOT_SYNCHRONIZED, DOWN)


class ReplicaStateError(SplitbrainError):
    """Replica states could not be read, or were not what an operation requires."""


class NotSynchronized(ReplicaStateError):
    """A device's replicas are not all Synchronized (before a fault, or after a wait)."""


@dataclass(frozen=True)
class ReplicaStatus:
    """One replica as its storage reports it."""

    device: str  # the inventory's alias
    host: str
    state: str  # one of STATES
    percent: float | None = None  # synchronization progress, when the storage tells
    partner_connected: bool | None = None  # a working sync connection to a partner
    detail: str = ""  # the storage's own words, for evidence

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"replica state {self.state!r} is not one of {STATES}")

    def line(self) -> str:
        pct = "" if self.percent is None else f" {self.percent:g}%"
        partner = {None: "", True: ", partner connected", False: ", partner NOT connected"}[
            self.partner_connected]
        return f"{self.device}@{self.host}: {self.state}{pct}{partner} ({self.detail})"


class ReplicaStates(Protocol):
    """Reads the replica states of a site's HA devices."""

    kind: str

    def states(self, devices: Iterable[str] | None = None) -> list[ReplicaStatus]:
        """Every replica of ``devices`` (default: every device of the inventory)."""
        ...


def by_device(statuses: Iterable[ReplicaStatus]) -> dict[str, dict[str, ReplicaStatus]]:
    out: dict[str, dict[str, ReplicaStatus]] = {}
    for s in statuses:
        out.setdefault(s.device, {})[s.host] = s
    return out


def all_synchronized(statuses: list[ReplicaStatus], devices: Iterable[str],
                     hosts: Callable[[str], list[str]]) -> bool:
    """Every replica of every device (on each of ``hosts(device)``) says Synchronized."""
    found = by_device(statuses)
    return all(
        found.get(d, {}).get(h) is not None and found[d][h].state == SYNCHRONIZED
        for d in devices for h in hosts(d)
    )


def _replica_hosts(inventory: Any) -> Callable[[str], list[str]]:
    return lambda alias: [r.host for r in inventory.device(alias).replicas]


def require_synchronized(reader: ReplicaStates, inventory: Any, devices: Iterable[str]) -> None:
    """Raise ``NotSynchronized`` (naming each replica) unless all are Synchronized."""
    devices = list(devices)
    statuses = reader.states(devices)
    if not all_synchronized(statuses, devices, _replica_hosts(inventory)):
        raise NotSynchronized(
            "refusing: not every replica is Synchronized ("
            + "; ".join(s.line() for s in statuses) + "); wait for the resync to finish first")


def wait_synchronized(reader: ReplicaStates, inventory: Any, devices: Iterable[str],
                      deadline_s: float, *, poll_s: float = 1.0,
                      on_sample: Callable[[list[ReplicaStatus]], None] | None = None
                      ) -> list[ReplicaStatus]:
    """Poll until every replica of ``devices`` is Synchronized; ``NotSynchronized`` at the
    deadline, naming the last states seen."""
    devices = list(devices)
    hosts = _replica_hosts(inventory)
    last: list[list[ReplicaStatus]] = [[]]

    def sample() -> bool:
        try:
            last[0] = reader.states(devices)
        except ReplicaStateError as exc:
            last[0] = []
            last.append([ReplicaStatus(d, "?", DOWN, detail=str(exc)) for d in devices])
            return False
        if on_sample is not None:
            on_sample(last[0])
        return all_synchronized(last[0], devices, hosts)

    try:
        Retrying(stop=stop_after_delay(deadline_s), wait=wait_fixed(poll_s),
                 retry=retry_if_result(lambda ok: not ok))(sample)
    except RetryError:
        seen = last[0] or (last[-1] if len(last) > 1 else [])
        raise NotSynchronized(
            f"replicas of {', '.join(devices)} not all Synchronized within {deadline_s:g} s: "
            + ("; ".join(s.line() for s in seen) or "no state could be read")) from None
    return last[0]


def open_inventory_host(inventory: Any, host: str) -> Any:
    """The remote driver of a storage host (the default ``opener`` of every reader), its
    connection kept for this process (``harness.remote.kept``)."""
    from harness.remote.kept import kept_host

    return kept_host(str(inventory.path), host, lambda: inventory.host(host))


class PerHostReader:
    """A reader that asks each storage host over SSH for the replicas it holds.

    Subclasses implement ``read_host(driver, host, devices) -> list[ReplicaStatus]``.
    A host that cannot be reached gives ``down`` for its replicas, with the reason.
    """

    kind = "?"

    def __init__(self, inventory: Any, *, opener: Any = None) -> None:
        self.inventory = inventory
        self.opener = opener or open_inventory_host

    def storage_name(self, alias: str) -> str:
        return self.inventory.device(alias).storage_name or alias

    def states(self, devices: Iterable[str] | None = None) -> list[ReplicaStatus]:
        aliases = list(devices) if devices is not None else list(self.inventory.devices)
        hosts: dict[str, list[str]] = {}
        for alias in aliases:
            for replica in self.inventory.device(alias).replicas:
                hosts.setdefault(replica.host, []).append(alias)
        out: list[ReplicaStatus] = []
        for host, held in hosts.items():
            try:
                with self.opener(self.inventory, host) as driver:
                    found = {s.device: s for s in self.read_host(driver, host, held)}
            except SplitbrainError as exc:
                found = {a: ReplicaStatus(a, host, DOWN, detail=str(exc)[:300]) for a in held}
            for alias in held:
                out.append(found.get(alias) or ReplicaStatus(
                    alias, host, DOWN,
                    detail=f"{self.kind} on {host} reports no device {self.storage_name(alias)!r}"))
        return out

    def read_host(self, driver: Any, host: str, devices: list[str]) -> list[ReplicaStatus]:
        raise NotImplementedError
