"""SCSI through every path of a disk, one cluster node at a time, with evidence.

A ``NodeDisk`` is what one cluster node sees of one HA device: a logged-in
``Session`` (its own I_T nexus, the node's IQN) on every path the node can
reach, named ``Demo1->iscsi1/SWS-Store1``. Every command goes through
``PathSession.run``, which writes the CDB, the parameter data, the status, the
sense and the latency into the check's log, and retries past a UNIT ATTENTION
(reported once per nexus, as every initiator does). The storage checks are
written against this, so their evidence is exactly what was sent and answered.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.initiator.errors import InitiatorError
from harness.initiator.session import Session, SessionTimeouts
from harness.initiator.task import ScsiResult
from harness.scsi import block_cdbs
from harness.scsi import cdb as scsi_cdb
from harness.scsi.capacity import ReadCapacity16Data
from harness.scsi.reservations import (
    PR_OUT_BASIC_LENGTH,
    PrInAction,
    PrOutAction,
    PrOutParameters,
    ReadKeysData,
    ReadReservationData,
)
from harness.scsi.sense import SenseKey
from harness.scsi.status import ScsiStatus
from harness.validation.model import CheckRun

TIMEOUTS = SessionTimeouts(login=10.0, command=15.0, logout=5.0)
UNIT_ATTENTION_RETRIES = 8


def random_key() -> int:
    """A random non-zero 8-byte PR key, as the wizard picks one per disk and node."""
    return secrets.randbits(63) | 1


def status_text(result: ScsiResult) -> str:
    try:
        text = ScsiStatus(result.status).name.replace("_", " ")
    except ValueError:
        text = f"status 0x{result.status:02x}"
    if result.sense is not None:
        text += f" ({result.sense})"
    return text


@dataclass
class PathSession:
    """One logged-in path of one node to one replica of a disk."""

    name: str
    node: str
    replica: str
    network: str
    session: Session
    lun: int
    run_log: CheckRun

    async def run(self, command: Any, data_out: bytes | None = None, expected_in: int = 0,
                  *, label: str = "") -> ScsiResult:
        """Send ``command``; log it and its answer; retry past UNIT ATTENTION."""
        cdb = command.encode()
        what = label or type(command).__name__
        for _ in range(UNIT_ATTENTION_RETRIES):
            result = await self.session.execute(cdb, self.lun, data_out, expected_in)
            line = f"{self.name}: {what} CDB {cdb.hex()}"
            if data_out is not None and len(data_out) <= 32:
                line += f" params {data_out.hex()}"
            elif data_out is not None:
                line += f" data {len(data_out)} bytes"
            line += f" -> {status_text(result)} in {result.latency_ns / 1e6:.2f} ms"
            self.run_log.step(line)
            sense = result.sense
            if (result.status == ScsiStatus.CHECK_CONDITION and sense is not None
                    and sense.key == SenseKey.UNIT_ATTENTION):
                continue
            return result
        return result

    # -- persistent reservations ---------------------------------------------------------------

    async def pr_out(self, action: PrOutAction, *, key: int = 0, sa_key: int = 0,
                     pr_type: int = 0) -> ScsiResult:
        params = PrOutParameters(key=key, service_action_key=sa_key).encode()
        command = scsi_cdb.PersistentReserveOut(action=action, pr_type=pr_type,
                                                parameter_list_length=PR_OUT_BASIC_LENGTH)
        label = f"PR OUT {action.name.replace('_', ' ')}"
        if pr_type:
            label += f" type {pr_type}"
        return await self.run(command, params, label=label)

    async def register(self, key: int) -> ScsiResult:
        """REGISTER AND IGNORE EXISTING KEY with ``key`` (0: unregister)."""
        return await self.pr_out(PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, sa_key=key)

    async def read_keys(self) -> ReadKeysData:
        r = await self.run(scsi_cdb.PersistentReserveIn(action=PrInAction.READ_KEYS,
                                                        allocation_length=8192),
                           expected_in=8192, label="PR IN READ KEYS")
        if not r.good:
            raise ValidationScsiError(f"{self.name}: PR IN READ KEYS failed: {status_text(r)}")
        data = ReadKeysData.decode(r.data)
        self.run_log.step(f"{self.name}:   keys {[hex(k) for k in data.keys]}")
        return data

    async def read_reservation(self) -> ReadReservationData:
        r = await self.run(scsi_cdb.PersistentReserveIn(action=PrInAction.READ_RESERVATION,
                                                        allocation_length=8192),
                           expected_in=8192, label="PR IN READ RESERVATION")
        if not r.good:
            raise ValidationScsiError(
                f"{self.name}: PR IN READ RESERVATION failed: {status_text(r)}")
        data = ReadReservationData.decode(r.data)
        held = ("none" if data.key is None
                else f"key {data.key:#x} type {int(data.pr_type or 0)}")
        self.run_log.step(f"{self.name}:   reservation {held}")
        return data

    # -- blocks --------------------------------------------------------------------------------

    async def read_blocks(self, lba: int, blocks: int, block_size: int) -> ScsiResult:
        return await self.run(block_cdbs.Read(lba=lba, blocks=blocks, size=16),
                              expected_in=blocks * block_size, label=f"READ(16) LBA {lba}")

    async def write_blocks(self, lba: int, data: bytes, block_size: int) -> ScsiResult:
        return await self.run(block_cdbs.Write(lba=lba, blocks=len(data) // block_size,
                                               size=16), data,
                              label=f"WRITE(16) LBA {lba}")


class ValidationScsiError(InitiatorError):
    """A SCSI command a check needs did not complete as SPC-4 says it must."""


@dataclass
class NodeDisk:
    """One cluster node's sessions to every path of one HA device."""

    node: str
    device: Any  # fixtures.sut.SutDevice
    paths: list[PathSession] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    block_size: int = 512
    num_blocks: int = 0

    def on_replica(self, host: str) -> list[PathSession]:
        return [p for p in self.paths if p.replica == host]

    def first_on(self, host: str) -> PathSession:
        paths = self.on_replica(host)
        if not paths:
            raise ValidationScsiError(
                f"{self.node} has no working path to {self.device.alias} on {host}"
                + (f" ({'; '.join(self.refused.values())})" if self.refused else ""))
        return paths[0]

    async def close(self) -> None:
        await asyncio.gather(*(_logout(p.session) for p in self.paths))
        self.paths.clear()


async def _logout(session: Session) -> None:
    try:
        await asyncio.wait_for(session.logout(), 5.0)
    except (InitiatorError, TimeoutError, OSError):
        session.close()


async def open_node_disk(initiator: Any, device: Any, run_log: CheckRun, *,
                         require_all: bool = False) -> NodeDisk:
    """Log ``initiator`` (a cluster node's) in on every path of ``device`` it can reach.

    A path whose login is refused is recorded in ``refused`` with its one-line
    reason (raised instead when ``require_all``); ``ValidationScsiError`` when no
    path at all logs in.
    """
    disk = NodeDisk(initiator.host.name, device)
    specs = initiator.path_specs(device)

    async def login(spec: Any) -> PathSession | None:
        session = Session(spec.host, spec.port, spec.target, initiator_name=initiator.iqn,
                          lun=spec.lun, timeouts=TIMEOUTS, sock_factory=initiator.sock_factory)
        try:
            await session.login()
        except (InitiatorError, OSError, TimeoutError) as exc:
            session.close()
            reason = " ".join(str(exc).split()) or type(exc).__name__
            disk.refused[spec.name] = f"{spec.name}: login to {spec.target} at {spec.portal} " \
                                      f"failed: {reason}"
            run_log.step(disk.refused[spec.name])
            return None
        replica, network = _replica_and_network(device, spec)
        run_log.step(f"{spec.name}: logged in to {spec.target} at {spec.portal} "
                     f"as {initiator.iqn} (ISID {session.isid:#014x})")
        return PathSession(spec.name, disk.node, replica, network, session, spec.lun, run_log)

    sessions = await asyncio.gather(*(login(s) for s in specs))
    disk.paths = [s for s in sessions if s is not None]
    if not disk.paths or (require_all and disk.refused):
        await disk.close()
        raise ValidationScsiError(
            f"{disk.node} cannot log in to {device.alias}: "
            + "; ".join(disk.refused.values()))
    r = await disk.paths[0].run(block_cdbs.ReadCapacity16(allocation_length=32),
                                expected_in=32, label="READ CAPACITY(16)")
    if r.good:
        cap = ReadCapacity16Data.decode(r.data)
        disk.block_size, disk.num_blocks = cap.block_length, cap.returned_lba + 1
    return disk


def _replica_and_network(device: Any, spec: Any) -> tuple[str, str]:
    for replica, portal in device.paths:
        if (portal.address, portal.port, replica.target) == (spec.host, spec.port, spec.target):
            return replica.host, portal.network
    return "?", "?"


class NodeDisks:
    """Every cluster node's ``NodeDisk`` of one device, closed together."""

    def __init__(self, disks: Sequence[NodeDisk]) -> None:
        self.disks = list(disks)

    def __getitem__(self, index: int) -> NodeDisk:
        return self.disks[index]

    def __iter__(self) -> Any:
        return iter(self.disks)

    def __len__(self) -> int:
        return len(self.disks)

    async def close(self) -> None:
        await asyncio.gather(*(d.close() for d in self.disks))


async def open_all(site: Any, device: Any, run_log: CheckRun) -> NodeDisks:
    """Every cluster node logged in on every path of ``device``; closes what opened on error."""
    results = await asyncio.gather(
        *(open_node_disk(site.initiator(n), device, run_log) for n in site.cluster_nodes),
        return_exceptions=True)
    opened = [r for r in results if isinstance(r, NodeDisk)]
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        await NodeDisks(opened).close()
        raise errors[0]
    return NodeDisks(opened)
