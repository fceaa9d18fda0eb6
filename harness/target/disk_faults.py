"""Disk faults served by the node: a block store that can be made slow, failing or full.

Model: every LUN's local block store is wrapped in a ``FaultyStore`` when the LUN
opens (``harness.target.lu_binding``), between the logical unit (or the HA
mirror, ``HaDevice``) and the image file. A store holds the disk faults aimed at
it, each a ``DiskFaultSpec``:

- ``slow``: every read, write, unmap and (for a whole-LUN fault) flush touching
  ``[lba, lba + count)`` (``count = 0``: the whole LUN) waits ``delay_ms`` first
  (or until the fault is removed: a disk that recovers finishes what it had queued);
- ``eio``: reads and writes overlapping ``[lba, lba + count)`` fail with
  ``BlockStoreError(errno EIO)``, which the LU reports as MEDIUM ERROR /
  UNRECOVERED READ ERROR (reads) or WRITE ERROR (writes), a bad sector range;
- ``nospace``: writes in the range that would allocate blocks of the sparse image
  (any block of the write not yet mapped) fail with ``ENOSPC``, which the LU
  reports as DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT, a thin pool
  that filled up; overwrites of allocated blocks and unmaps still succeed, as
  they do on a full thin pool. (A store that cannot tell what is mapped fails
  every write in the range.)

With no fault active the wrapper costs nothing on the hot path: ``read``,
``write`` and friends are then the inner store's own bound methods, set as
attributes of the instance, so the LU calls the image file directly. Adding the
first fault removes those attributes (the class's faulty paths take over);
removing the last one puts them back.

Faults live in the node's memory only: a restart of the node clears them, which
is exactly what healing after a crash needs (a node that is not running holds no
disk fault). The management routes (``install_disk_fault_routes``, called from
``Node.__init__``) are the contract ``harness.faults.disk`` builds on::

    GET    /v1/faults/disk          every active disk fault of the node
    POST   /v1/faults/disk          {id?, target, lun, kind, delay_ms, lba, count}
    DELETE /v1/faults/disk/{id}     remove one (404 when the id is unknown)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from harness.errors import SplitbrainError
from harness.target.blockstore import BlockStore, BlockStoreError

log = logging.getLogger("splitbrain.target.faults")

KINDS = ("slow", "eio", "nospace")
MAX_DELAY_MS = 600_000.0
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PASS_THROUGH = ("read", "write", "write_repeated", "flush", "unmap")


class DiskFaultError(SplitbrainError):
    """A disk fault request that cannot be applied as given."""


@dataclass(frozen=True)
class DiskFaultSpec:
    """One disk fault on one LUN: its kind and the block range it covers."""

    id: str
    target: str
    lun: int
    kind: str
    delay_ms: float = 0.0
    lba: int = 0
    count: int = 0  # 0: the whole LUN

    @classmethod
    def parse(cls, body: dict[str, Any]) -> DiskFaultSpec:
        """From a ``POST /v1/faults/disk`` body; raises ``DiskFaultError`` on bad input."""
        unknown = set(body) - {"id", "target", "lun", "kind", "delay_ms", "lba", "count"}
        if unknown:
            raise DiskFaultError(f"disk fault: unknown field(s) {', '.join(sorted(unknown))}; "
                                 "use id, target, lun, kind, delay_ms, lba, count")
        fault_id = body.get("id") or f"disk-{secrets.token_hex(6)}"
        if not isinstance(fault_id, str) or not _ID.match(fault_id):
            raise DiskFaultError(f"disk fault id {fault_id!r}: use 1-128 letters, digits, "
                                 "'.', '_', ':' or '-'")
        target = body.get("target")
        if not isinstance(target, str) or not target:
            raise DiskFaultError("disk fault: 'target' (the target's IQN) is required")
        kind = body.get("kind")
        if kind not in KINDS:
            raise DiskFaultError(f"disk fault kind {kind!r}: use one of {', '.join(KINDS)}")
        lun, lba, count = (_integer(body, name) for name in ("lun", "lba", "count"))
        delay = body.get("delay_ms", 0.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) \
                or not 0 <= delay <= MAX_DELAY_MS:
            raise DiskFaultError(f"disk fault delay_ms {delay!r}: give a number of "
                                 f"milliseconds from 0 to {MAX_DELAY_MS:.0f}")
        if kind == "slow" and delay <= 0:
            raise DiskFaultError("a slow disk fault needs delay_ms > 0")
        if kind == "eio" and count <= 0:
            raise DiskFaultError("an eio disk fault needs a range: count > 0 blocks from lba")
        return cls(fault_id, target, lun, kind, float(delay), lba, count)

    def covers(self, lba: int, count: int) -> bool:
        """Whether an I/O of ``count`` blocks at ``lba`` touches this fault's range."""
        if self.count == 0:
            return True
        return lba < self.lba + self.count and self.lba < lba + count

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _integer(body: dict[str, Any], name: str) -> int:
    value = body.get(name, 0)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a nemesis schedule's numbers arrive as floats
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DiskFaultError(f"disk fault {name} {value!r}: give a whole number >= 0")
    return value


class FaultyStore:
    """A ``BlockStore`` that passes every I/O to ``inner`` unless a disk fault says not to."""

    def __init__(self, inner: BlockStore, *, where: str) -> None:
        self.inner = inner
        self.where = where  # "<target iqn>/<lun>", for messages
        self.block_size = inner.block_size
        self.num_blocks = inner.num_blocks
        self.faults: dict[str, DiskFaultSpec] = {}
        self._released = asyncio.Event()  # set when a slow fault is removed
        self._pass_through()

    # -- arming -------------------------------------------------------------------------

    def _pass_through(self) -> None:
        """No fault: the inner store's methods answer directly (instance attributes
        shadow the faulty paths of the class)."""
        for name in _PASS_THROUGH:
            method = getattr(self.inner, name, None)
            if method is not None:
                setattr(self, name, method)

    def _arm(self) -> None:
        for name in _PASS_THROUGH:
            self.__dict__.pop(name, None)

    @property
    def armed(self) -> bool:
        return "read" not in self.__dict__

    def add(self, fault: DiskFaultSpec) -> None:
        if fault.count and fault.lba + fault.count > self.num_blocks:
            raise DiskFaultError(
                f"disk fault {fault.id}: LBA range {fault.lba}+{fault.count} is beyond the "
                f"{self.num_blocks} blocks of {self.where}; pick a range inside the LUN")
        self.faults[fault.id] = fault
        self._arm()

    def remove(self, fault_id: str) -> DiskFaultSpec | None:
        fault = self.faults.pop(fault_id, None)
        if fault is not None and fault.kind == "slow":  # the disk recovered: queued I/O goes on
            self._released.set()
            self._released = asyncio.Event()
        if not self.faults:
            self._pass_through()
        return fault

    async def _delay(self, delay_ms: float) -> None:
        """Wait ``delay_ms``, or less if a slow fault is removed meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), delay_ms / 1000)

    # -- the faulty paths (used only while a fault is active) ----------------------------

    async def _before(self, lba: int, count: int, *, writing: bool,
                      allocating: bool = False) -> None:
        delay = max((f.delay_ms for f in self.faults.values()
                     if f.kind == "slow" and f.covers(lba, count)), default=0.0)
        if delay:
            await self._delay(delay)
        for fault in list(self.faults.values()):  # as they are after the delay
            if not fault.covers(lba, count):
                continue
            if fault.kind == "eio":
                first = max(lba, fault.lba)
                raise BlockStoreError(
                    f"{self.where}: injected medium error (disk fault {fault.id}) at LBA "
                    f"{first}", errno_=errno.EIO, writing=writing)
            if fault.kind == "nospace" and allocating and self._allocates(lba, count):
                raise BlockStoreError(
                    f"{self.where}: injected out of space (disk fault {fault.id}) writing "
                    f"{count} blocks at LBA {lba}", errno_=errno.ENOSPC, writing=True)

    def _allocates(self, lba: int, count: int) -> bool:
        """Whether writing these blocks needs space the image has not allocated yet."""
        status = getattr(self.inner, "lba_status", None)
        if status is None:
            return True
        try:
            ranges = status(lba, count)
        except BlockStoreError:
            return True
        return any(not mapped for _, n, mapped in ranges if n)

    async def read(self, lba: int, count: int) -> bytes:
        await self._before(lba, count, writing=False)
        return await self.inner.read(lba, count)

    async def write(self, lba: int, data: bytes, *, fua: bool = False) -> None:
        await self._before(lba, len(data) // self.block_size, writing=True, allocating=True)
        await self.inner.write(lba, data, fua=fua)

    async def write_repeated(self, lba: int, block: bytes, count: int, *,
                             fua: bool = False) -> None:
        await self._before(lba, count, writing=True, allocating=True)
        repeated = getattr(self.inner, "write_repeated", None)
        if repeated is not None:
            await repeated(lba, block, count, fua=fua)
        else:
            await self.inner.write(lba, block * count, fua=fua)

    async def unmap(self, lba: int, count: int) -> None:
        delay = max((f.delay_ms for f in self.faults.values()
                     if f.kind == "slow" and f.covers(lba, count)), default=0.0)
        if delay:
            await self._delay(delay)
        await self.inner.unmap(lba, count)

    async def flush(self) -> None:
        delay = max((f.delay_ms for f in self.faults.values()
                     if f.kind == "slow" and f.count == 0), default=0.0)
        if delay:
            await self._delay(delay)
        await self.inner.flush()

    # -- the rest of the store, unchanged ------------------------------------------------

    @property
    def write_through(self) -> bool:
        return bool(getattr(self.inner, "write_through", True))

    @write_through.setter
    def write_through(self, value: bool) -> None:
        self.inner.write_through = value

    async def resize(self, num_blocks: int) -> None:
        resize = getattr(self.inner, "resize", None)
        if resize is None:
            raise BlockStoreError(f"{self.where}: its block store cannot resize")
        await resize(num_blocks)
        self.num_blocks = self.inner.num_blocks

    def close(self) -> None:
        self.faults.clear()
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # physical_block_size, lba_status, allocated_bytes, path...: the image's own
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def faulty_store(unit: Any) -> FaultyStore | None:
    """The fault wrapper under a logical unit (an HA mirror keeps its local store as
    ``.store`` too), or None."""
    store = getattr(unit, "store", None)
    for _ in range(4):
        if store is None or isinstance(store, FaultyStore):
            return store
        store = getattr(store, "store", None)
    return None


def active_faults(node: Any) -> list[DiskFaultSpec]:
    """Every disk fault active on the node's LUNs (a deleted LUN took its faults along)."""
    out: list[DiskFaultSpec] = []
    for target in node.targets:
        for exported in target.luns.values():
            store = faulty_store(exported.unit)
            if store is not None:
                out += store.faults.values()
    return sorted(out, key=lambda f: (f.target, f.lun, f.id))


def install_disk_fault_routes(node: Any) -> None:
    """Serve ``/v1/faults/disk`` on the node's management API."""
    from harness.target.management import ApiError, ApiRequest

    def store_of(fault: DiskFaultSpec) -> FaultyStore:
        target = node.targets.get(fault.target)
        if target is None:
            raise ApiError(404, f"no target {fault.target} on node {node.config.name}")
        exported = target.luns.get(fault.lun)
        if exported is None:
            raise ApiError(404, f"no LUN {fault.lun} on {fault.target}")
        store = faulty_store(exported.unit)
        if store is None:
            raise ApiError(409, f"LUN {fault.lun} of {fault.target} has no fault-capable store")
        return store

    async def listing(_: ApiRequest) -> Any:
        return [f.to_json() for f in active_faults(node)]

    async def inject(r: ApiRequest) -> Any:
        try:
            fault = DiskFaultSpec.parse(r.json_object())
        except DiskFaultError as exc:
            raise ApiError(400, str(exc)) from None
        if any(f.id == fault.id for f in active_faults(node)):
            raise ApiError(409, f"disk fault {fault.id} is already active; delete it first")
        store = store_of(fault)
        try:
            store.add(fault)
        except DiskFaultError as exc:
            raise ApiError(400, str(exc)) from None
        log.warning("disk fault %s injected on %s: %s", fault.id, store.where, fault.to_json())
        return fault.to_json()

    async def remove(r: ApiRequest) -> Any:
        fault_id = r.params["id"]
        for target in node.targets:
            for exported in target.luns.values():
                store = faulty_store(exported.unit)
                if store is not None and fault_id in store.faults:
                    fault = store.remove(fault_id)
                    log.warning("disk fault %s removed from %s", fault_id, store.where)
                    return fault.to_json() if fault else None
        raise ApiError(404, f"no disk fault {fault_id} on node {node.config.name}")

    api = node.management
    api.add_route("GET", "/v1/faults/disk", listing)
    api.add_route("POST", "/v1/faults/disk", inject)
    api.add_route("DELETE", "/v1/faults/disk/{id}", remove)
