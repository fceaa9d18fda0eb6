"""Disk-witness arbitration over persistent reservations: exactly one side keeps quorum."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from harness.cluster.quorum import DiskWitness, node_key
from harness.scsi.reservations import ReadKeysData, ReadReservationData


class Conflict(Exception):
    status = 0x18


@dataclass
class SharedDisk:
    """One LU's PR state as SPC-4 keeps it (only what arbitration uses)."""

    keys: set[int] = field(default_factory=set)
    holder: int | None = None


class NodePaths:
    """A node's view of a shared disk (its ``device.pr``)."""

    def __init__(self, disk: SharedDisk) -> None:
        self.disk = disk
        self.key: int | None = None

    async def register(self, key: int) -> None:
        self.key = key
        self.disk.keys.add(key)

    async def reserve(self, pr_type: int) -> None:
        if self.key not in self.disk.keys or self.disk.holder not in (None, self.key):
            raise Conflict
        self.disk.holder = self.key

    async def preempt(self, victim: int, pr_type: int) -> None:
        await asyncio.sleep(0)  # another node may act in between
        if self.key not in self.disk.keys or victim not in self.disk.keys:
            raise Conflict
        self.disk.keys.discard(victim)
        if self.disk.holder == victim:
            self.disk.holder = self.key

    async def read_keys(self) -> ReadKeysData:
        return ReadKeysData(1, tuple(sorted(self.disk.keys)))

    async def read_reservation(self) -> ReadReservationData:
        return ReadReservationData(1, self.disk.holder, 5 if self.disk.holder else None)


class Device:
    def __init__(self, disk: SharedDisk) -> None:
        self.pr = NodePaths(disk)


def two_nodes() -> tuple[DiskWitness, DiskWitness, SharedDisk, SharedDisk]:
    witness, csv = SharedDisk(), SharedDisk()
    a = DiskWitness("Demo1", Device(witness), Device(csv))
    b = DiskWitness("Demo2", Device(witness), Device(csv))
    return a, b, witness, csv


def test_the_first_node_up_owns_the_witness_and_both_are_registered() -> None:
    a, b, witness, csv = two_nodes()

    async def go() -> None:
        await a.join()
        await b.join()
        assert await a.holds_witness() and not await b.holds_witness()

    asyncio.run(go())
    assert witness.keys == csv.keys == {node_key("Demo1"), node_key("Demo2")}


def test_a_full_partition_leaves_exactly_one_node_with_quorum() -> None:
    a, b, witness, csv = two_nodes()

    async def go() -> tuple[bool, bool]:
        await a.join()
        await b.join()
        won = await asyncio.gather(a.arbitrate("Demo2", 0.01), b.arbitrate("Demo1", 0.01))
        return won[0], won[1]

    assert asyncio.run(go()) == (True, False)  # the defender wins, the challenger yields
    assert witness.keys == csv.keys == {node_key("Demo1")}  # Demo2 fenced on both disks
    assert witness.holder == node_key("Demo1")


def test_a_challenger_takes_over_from_a_dead_owner() -> None:
    a, b, witness, csv = two_nodes()

    async def go() -> bool:
        await a.join()
        await b.join()
        return await b.arbitrate("Demo1", 0.01)  # Demo1 is dead: it never defends

    assert asyncio.run(go()) is True
    assert witness.holder == node_key("Demo2") and node_key("Demo1") not in csv.keys
    assert any("won the witness" in line for line in b.log)
