"""Quorum with a disk witness, arbitrated by SCSI-3 persistent reservations.

The model is a two-node Windows failover cluster with a disk witness: three
votes (each node and the witness disk, here the quorum HA device), quorum is a
majority (two). While the nodes hear each other they have it together. When a
node stops hearing its peer (``harness.cluster.membership``) the witness decides,
the way ``fence_scsi`` and the cluster disk driver do it:

- every node registers its own key (``node_key``) on every path of the witness
  and of the CSV; the first node up reserves both with *Write Exclusive -
  Registrants Only*;
- the node holding the witness reservation *defends*: it preempts the silent
  peer's key at once on the witness and on the CSV (the peer's writes are now
  refused with RESERVATION CONFLICT, never applied) and keeps quorum;
- a challenger waits one heartbeat delay for the defender, then, if it is still
  registered, preempts the defender and takes the reservations; if its own key
  is gone, the defender won and the challenger has lost quorum;
- every node checks each heartbeat delay that its key is still on the witness;
  a node whose key is gone was fenced, has lost quorum, and stops its roles.

So a node cut off from the heartbeat network but not from storage cannot keep
writing to the CSV behind the survivor's back: quorum holds on one side only.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from harness.scsi.reservations import PrType

WERO = PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY
RESERVATION_CONFLICT = 0x18


def node_key(node: str) -> int:
    """The node's reservation key: a stable non-zero 64-bit hash of its name."""
    return int.from_bytes(hashlib.blake2b(node.lower().encode(), digest_size=8).digest(),
                          "big") or 1


def is_conflict(exc: BaseException) -> bool:
    return getattr(exc, "status", None) == RESERVATION_CONFLICT


class DiskWitness:
    """One node's side of witness arbitration over its MPIO witness and CSV devices."""

    def __init__(self, me: str, witness: Any, csv: Any) -> None:
        self.me = me
        self.key = node_key(me)
        self.witness = witness  # MultipathDevice of the quorum device
        self.csv = csv  # MultipathDevice of the vm-storage device
        self.log: list[str] = []

    async def join(self) -> None:
        """Register on every path of both disks; reserve them if nobody has."""
        for dev in (self.witness, self.csv):
            await dev.pr.register(self.key)
            if (await dev.pr.read_reservation()).key is None:
                try:
                    await dev.pr.reserve(WERO)
                except Exception as exc:
                    if not is_conflict(exc):
                        raise  # someone reserved first: fine, we are a registrant

    async def registered(self) -> bool:
        return self.key in (await self.witness.pr.read_keys()).keys

    async def holds_witness(self) -> bool:
        return (await self.witness.pr.read_reservation()).key == self.key

    async def arbitrate(self, peer: str, delay_s: float) -> bool:
        """After ``peer`` went silent: True if this node won (and fenced the peer)."""
        victim = node_key(peer)
        try:
            if not await self.holds_witness():
                await asyncio.sleep(delay_s)  # the defender's turn
                if not await self.registered():
                    self.log.append(f"{peer} defended the witness; {self.me} lost quorum")
                    return False
            for dev in (self.witness, self.csv):
                if victim in (await dev.pr.read_keys()).keys:
                    await dev.pr.preempt(victim, WERO)
                elif (await dev.pr.read_reservation()).key is None:
                    await dev.pr.reserve(WERO)
        except Exception as exc:
            if is_conflict(exc):
                self.log.append(f"{self.me} was preempted while arbitrating against {peer}")
                return False
            raise
        self.log.append(f"{self.me} won the witness against {peer} and fenced it")
        return True
