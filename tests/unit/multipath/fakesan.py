"""An in-memory SAN for the multipath device's unit tests.

One ``FakeDisk`` (blocks, a VPD 0x83 identity, per-nexus PR registrations, ALUA
port groups) reached through ``FakeLink``s, one per logged-in path, that speak
the :class:`~harness.initiator.mpio.link.PathLink` interface. A test can kill a
link (connection reset), make a portal refuse logins, hang a portal (commands
never answer), or script a sense answer for the next commands on a portal. No
sockets: the device logic is tested on its own; the real wire is the
integration tests' job.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from dataclasses import dataclass, field

from harness.initiator.mpio.link import PathLost, PathSpec, ScsiOutcome
from harness.scsi.alua import AccessState, RtpgData, TargetPortGroupDescriptor
from harness.scsi.capacity import ReadCapacity16Data
from harness.scsi.cdb import (
    Inquiry,
    PersistentReserveIn,
    PersistentReserveOut,
    Read,
    ReadCapacity16,
    ReportTargetPortGroups,
    SynchronizeCache,
    TestUnitReady,
    Write,
    parse_cdb,
)
from harness.scsi.inquiry import StandardInquiry, Tpgs
from harness.scsi.reservations import PrInAction, PrOutAction, PrOutParameters, ReadKeysData
from harness.scsi.sense import SenseData
from harness.scsi.status import ScsiStatus
from harness.scsi.vpd import Designator, DeviceIdentification

GOOD = ScsiOutcome(ScsiStatus.GOOD)


@dataclass
class FakeDisk:
    naa: str = "6001405aabbccdd00112233445566778"
    block_size: int = 512
    num_blocks: int = 2048
    alua: bool = False
    groups: dict[int, AccessState] = field(default_factory=dict)
    blocks: dict[int, bytes] = field(default_factory=dict)
    registrations: dict[str, int] = field(default_factory=dict)  # nexus -> key
    reservation: tuple[int, int] | None = None  # (key, type)
    flushes: int = 0

    def execute(self, nexus: str, group: int | None, cdb: bytes, data_out: bytes) -> ScsiOutcome:
        cmd = parse_cdb(cdb)
        if isinstance(cmd, TestUnitReady | SynchronizeCache):
            if isinstance(cmd, SynchronizeCache):
                self.flushes += 1
            return GOOD
        if isinstance(cmd, Inquiry):
            if not cmd.evpd:
                tpgs = Tpgs.IMPLICIT if self.alua else Tpgs.NONE
                return ScsiOutcome(ScsiStatus.GOOD, StandardInquiry(tpgs=tpgs).encode())
            ids = [Designator.naa_from_hex(self.naa)]
            if group is not None:
                ids.append(Designator.target_port_group(group))
            return ScsiOutcome(ScsiStatus.GOOD, DeviceIdentification(tuple(ids)).encode())
        if isinstance(cmd, ReadCapacity16):
            data = ReadCapacity16Data(self.num_blocks - 1, self.block_size).encode()
            return ScsiOutcome(ScsiStatus.GOOD, data)
        if isinstance(cmd, ReportTargetPortGroups):
            data = RtpgData(tuple(TargetPortGroupDescriptor(g, s)
                                  for g, s in sorted(self.groups.items()))).encode()
            return ScsiOutcome(ScsiStatus.GOOD, data)
        if isinstance(cmd, Read):
            data = b"".join(self.blocks.get(cmd.lba + i, bytes(self.block_size))
                            for i in range(cmd.blocks))
            return ScsiOutcome(ScsiStatus.GOOD, data)
        if isinstance(cmd, Write):
            if self.reservation and nexus not in self.registrations:
                return ScsiOutcome(ScsiStatus.RESERVATION_CONFLICT)
            for i in range(cmd.blocks):
                self.blocks[cmd.lba + i] = data_out[i * self.block_size:(i + 1) * self.block_size]
            return GOOD
        if isinstance(cmd, PersistentReserveIn) and cmd.action == PrInAction.READ_KEYS:
            keys = tuple(self.registrations.values())
            return ScsiOutcome(ScsiStatus.GOOD, ReadKeysData(1, keys).encode())
        if isinstance(cmd, PersistentReserveOut):
            return self._pr_out(nexus, cmd, PrOutParameters.decode(data_out))
        raise AssertionError(f"fake disk does not serve {cmd!r}")

    def _pr_out(self, nexus: str, cmd: PersistentReserveOut, p: PrOutParameters) -> ScsiOutcome:
        action = PrOutAction(cmd.action)
        if action == PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY:
            if p.service_action_key:
                self.registrations[nexus] = p.service_action_key
            else:
                self.registrations.pop(nexus, None)
            return GOOD
        if self.registrations.get(nexus) != p.key:
            return ScsiOutcome(ScsiStatus.RESERVATION_CONFLICT)
        if action == PrOutAction.RESERVE:
            self.reservation = (p.key, cmd.pr_type)
        elif action in (PrOutAction.PREEMPT, PrOutAction.PREEMPT_AND_ABORT):
            self.registrations = {n: k for n, k in self.registrations.items()
                                  if k != p.service_action_key}
            self.reservation = (p.key, cmd.pr_type)
        return GOOD


class FakeLink:
    def __init__(self, san: FakeSan, spec: PathSpec) -> None:
        self.san = san
        self.spec = spec
        self.nexus = f"{spec.initiator},i,0x{spec.isid:012x},{spec.portal}"
        self.lost = asyncio.get_running_loop().create_future()
        self.commands = 0
        self.closed = False

    def _check(self) -> None:
        if self.lost.done():
            raise PathLost(f"connection to {self.spec.portal} reset")

    async def execute(self, cdb: bytes, *, data_out: bytes = b"",
                      expected_in: int = 0) -> ScsiOutcome:
        self._check()
        portal = self.spec.portal
        if portal in self.san.hung:
            await asyncio.shield(self.lost)  # never answers; only a reset ends it
        await asyncio.sleep(0)
        self._check()
        self.commands += 1
        scripted = self.san.scripted.get(portal)
        if scripted and parse_cdb(cdb).__class__ in (Read, Write):
            return scripted.popleft()
        return self.san.disk_for(portal).execute(self.nexus, self.san.group_of.get(portal),
                                                 cdb, data_out)

    async def ping(self) -> None:
        self._check()
        if self.spec.portal in self.san.hung:
            await asyncio.shield(self.lost)
        self._check()

    async def wait_lost(self) -> str:
        return await asyncio.shield(self.lost)

    async def abort(self) -> None:
        if not self.lost.done():
            self.lost.set_result("aborted by initiator")

    async def close(self) -> None:
        self.closed = True
        await self.abort()


class FakeSan:
    """Portals (``host:port``) to disks; a connector that logs paths in."""

    def __init__(self, disk: FakeDisk | None = None) -> None:
        self.disk = disk or FakeDisk()
        self.disks: dict[str, FakeDisk] = {}
        self.down: set[str] = set()
        self.hung: set[str] = set()
        self.scripted: dict[str, deque[ScsiOutcome]] = {}
        self.group_of: dict[str, int] = {}
        self.links: list[FakeLink] = []
        self.logins: dict[str, int] = {}

    def disk_for(self, portal: str) -> FakeDisk:
        return self.disks.get(portal, self.disk)

    async def connect(self, spec: PathSpec) -> FakeLink:
        self.logins[spec.portal] = self.logins.get(spec.portal, 0) + 1
        if spec.portal in self.down:
            raise PathLost(f"connection to {spec.portal} refused")
        link = FakeLink(self, spec)
        self.links.append(link)
        return link

    def live_links(self, portal: str) -> list[FakeLink]:
        return [ln for ln in self.links if ln.spec.portal == portal and not ln.lost.done()]

    def kill(self, portal: str, *, stay_down: bool = True) -> None:
        """Reset every connection to a portal (and refuse new ones while ``stay_down``)."""
        if stay_down:
            self.down.add(portal)
        for link in self.live_links(portal):
            link.lost.set_result("connection reset by peer")

    def script(self, portal: str, *outcomes: ScsiOutcome) -> None:
        self.scripted.setdefault(portal, deque()).extend(outcomes)


def check_condition(sense: SenseData) -> ScsiOutcome:
    return ScsiOutcome(ScsiStatus.CHECK_CONDITION, sense=sense)


def spec(port: int, **kw) -> PathSpec:
    return PathSpec(host="127.0.0.1", port=port, target="iqn.2026-11.test:disk", **kw)


def block(byte: int, size: int = 512) -> bytes:
    return struct.pack("B", byte) * size
