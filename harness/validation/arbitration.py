"""Storage (second half): persistent reservations, arbitration and failover, at SCSI level.

These checks write or reserve, so they run only on test devices
(``test = true``) that no initiator has registered on. Every node
registers its key on every path (REGISTER AND IGNORE EXISTING KEY, as the
cluster disk driver does); node *i* acts through replica *i* (node A through
SWS-Store1, node B through SWS-Store2), so a reservation or a write that one
storage node does not pass to its partner shows up as a failure naming it.
Reservations are type 5 (Write Exclusive - Registrants Only), the type the
cluster disk driver and fence_scsi use. Whatever a check leaves behind is
cleared (a temporary registration and a CLEAR through every replica) and the
scratch blocks get their old contents back.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from harness.scsi.reservations import PrOutAction, PrType
from harness.scsi.status import ScsiStatus
from harness.validation.model import CheckRun, Outcome, check, judged, not_applicable
from harness.validation.paths import (
    NodeDisk,
    NodeDisks,
    PathSession,
    ValidationScsiError,
    open_all,
    random_key,
    status_text,
)
from harness.validation.storage import SCRATCH_BLOCKS, STORAGE, raise_for, scratch_lba

TYPE5 = PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY


async def test_disks(run: CheckRun) -> tuple[list[tuple[Any, NodeDisks]], Outcome | None]:
    """Each test device with every node logged in on every path, or why none applies."""
    site = run.site
    if len(site.cluster_nodes) < 2:
        return [], not_applicable(f"needs two cluster nodes; {site.inventory.path} has "
                                  f"{len(site.cluster_nodes)}")
    chosen, skipped = site.test_devices()

    async def open_unused(device: Any) -> tuple[Any, NodeDisks] | None:
        disks = await open_all(site, device, run)
        keys = await disks[0].paths[0].read_keys()
        if keys.keys:
            skipped.append(f"{device.alias} is in use: {len(keys.keys)} persistent reservation "
                           "registration(s) held by another initiator")
            await disks.close()
            return None
        return device, disks

    tried = await asyncio.gather(*(open_unused(d) for d in chosen), return_exceptions=True)
    opened = [t for t in tried if isinstance(t, tuple)]
    errors = [t for t in tried if isinstance(t, BaseException)]
    if errors:
        await asyncio.gather(*(d.close() for _, d in opened))
        raise errors[0]
    if not opened:
        return [], not_applicable("no disk may be written or reserved: " + "; ".join(skipped))
    if skipped:
        run.add("Left alone", "\n".join(skipped))
        for reason in skipped:
            run.step(f"left alone: {reason}")
    return opened, None


async def each_device(opened: list[tuple[Any, NodeDisks]],
                      one: Callable[[Any, NodeDisks], Awaitable[list[str]]],
                      parallel: int = 8) -> list[str]:
    """``one(device, disks)`` for every opened device, ``parallel`` devices at a time (each
    device's own steps stay in order); the problems of all, in device order; every
    device's sessions closed at the end."""
    gate = asyncio.Semaphore(parallel)

    async def gated(device: Any, disks: NodeDisks) -> list[str]:
        async with gate:
            return await one(device, disks)

    try:
        found = await asyncio.gather(*(gated(d, n) for d, n in opened))
    finally:
        await asyncio.gather(*(n.close() for _, n in opened))
    return [p for problems in found for p in problems]


def replica_for(device: Any, index: int) -> str:
    """The storage host node number ``index`` acts through (node A replica 1, B replica 2)."""
    hosts = [r.host for r in sorted(device.replicas, key=lambda r: r.priority)]
    return hosts[index % len(hosts)]


def replica_hosts(device: Any) -> list[str]:
    return [r.host for r in sorted(device.replicas, key=lambda r: r.priority)]


async def register_all(disk: NodeDisk, key: int) -> list[str]:
    problems = []
    for p in disk.paths:
        r = await p.register(key)
        if not r.good:
            what = "REGISTER AND IGNORE EXISTING KEY" if key else "unregister (key 0)"
            problems.append(f"{what} from {p.name} failed: {status_text(r)}")
    return problems


async def clear_everything(disks: NodeDisks, device: Any, run: CheckRun) -> None:
    """Leave no registration or reservation behind: CLEAR through every replica."""
    key = random_key()
    for host in replica_hosts(device):
        path = next((p for d in disks for p in d.on_replica(host)), None)
        if path is None:
            continue
        try:
            await path.register(key)
            await path.pr_out(PrOutAction.CLEAR, key=key)
        except Exception as exc:
            run.step(f"cleanup through {path.name} failed: {exc}")


async def leftovers(disks: NodeDisks, device: Any) -> list[str]:
    """Registrations or a reservation still present, seen through every replica."""
    found = []
    for host in replica_hosts(device):
        path = next((p for d in disks for p in d.on_replica(host)), None)
        if path is None:
            continue
        keys = await path.read_keys()
        res = await path.read_reservation()
        if keys.keys or res.key is not None:
            found.append(f"{device.alias} through {host} still has {len(keys.keys)} "
                         f"registration(s) and reservation "
                         f"{'none' if res.key is None else hex(res.key)} after release and "
                         "unregister: the target left persistent reservation state behind")
    return found


async def unregistered_write_conflicts(path: PathSession, disk: NodeDisk) -> bool | None:
    """Does a write from ``path`` (not a registrant) end in RESERVATION CONFLICT?

    The write puts back the bytes just read, so an unfenced write changes nothing.
    None when the read itself failed.
    """
    lba = scratch_lba(disk)
    r = await path.read_blocks(lba, 1, disk.block_size)
    if not r.good:
        return None
    w = await path.write_blocks(lba, r.data, disk.block_size)
    return w.status == ScsiStatus.RESERVATION_CONFLICT


# -- Validate SCSI-3 Persistent Reservation --------------------------------------------------


@check(STORAGE, "Validate SCSI-3 Persistent Reservation",
       "Validate that every test disk supports SCSI-3 persistent reservations as a cluster "
       "uses them: register on every path, reserve (type 5), read keys and reservation "
       "through every path, fence an unregistered writer, preempt from the other node "
       "through the other replica, release, unregister, nothing left behind.",
       destructive=True)
async def validate_persistent_reservation(run: CheckRun) -> Outcome:
    opened, none = await test_disks(run)
    if none:
        return none
    async def one(device: Any, disks: NodeDisks) -> list[str]:
        try:
            return (await _pr_sequence(run, device, disks[0], disks[1])
                    + await leftovers(disks, device))
        finally:
            await clear_everything(disks, device, run)

    problems = await each_device(opened, one)
    return judged(problems, [], f"{len(opened)} disk(s): register, reserve, read, fence, "
                                "preempt, release and unregister behaved on every path")


async def _pr_sequence(run: CheckRun, device: Any, a: NodeDisk, b: NodeDisk) -> list[str]:
    alias = device.alias
    ra, rb = replica_for(device, 0), replica_for(device, 1)
    pa, pb = a.first_on(ra), b.first_on(rb)
    ka, kb = random_key(), random_key()
    run.step(f"{alias}: {a.node} key {ka:#x} through {ra}; {b.node} key {kb:#x} through {rb}")
    problems = await register_all(a, ka)
    if problems:
        return problems
    r = await pa.pr_out(PrOutAction.RESERVE, key=ka, pr_type=TYPE5)
    if not r.good:
        return [f"{alias}: RESERVE type 5 from {pa.name} failed: {status_text(r)}"]
    for p in [*a.paths, *b.paths]:
        keys = await p.read_keys()
        held = keys.keys.count(ka)
        if held != len(a.paths):
            cause = (f": {p.replica} does not know of the registrations made through {ra}; "
                     "persistent reservations are not replicated between the storage nodes"
                     if held == 0 and p.replica != ra else "")
            problems.append(f"{alias}: READ KEYS through {p.name} shows {held} registration(s) "
                            f"of {a.node}'s key, expected {len(a.paths)} (one per path){cause}")
        res = await p.read_reservation()
        if res.key != ka or res.pr_type != TYPE5:
            cause = (f": {p.replica} does not know of the reservation taken through {ra}"
                     if res.key is None and p.replica != ra else "")
            problems.append(f"{alias}: READ RESERVATION through {p.name} shows "
                            f"{'none' if res.key is None else hex(res.key)}, expected "
                            f"{ka:#x} type 5{cause}")
    for host in replica_hosts(device):
        path = b.first_on(host)
        conflict = await unregistered_write_conflicts(path, b)
        if conflict is False:
            problems.append(f"{alias}: {b.node}, not registered, wrote through {path.name} "
                            f"while {a.node} holds a Write Exclusive - Registrants Only "
                            f"reservation: the reservation is not enforced on {host}")
    problems += await register_all(b, kb)
    r = await pb.pr_out(PrOutAction.PREEMPT, key=kb, sa_key=ka, pr_type=TYPE5)
    if not r.good:
        problems.append(f"{alias}: PREEMPT of {a.node}'s key from {pb.name} through {rb} "
                        f"failed: {status_text(r)}")
        return problems
    for p in [*a.paths, *b.paths]:
        keys = await p.read_keys()
        res = await p.read_reservation()
        if ka in keys.keys:
            problems.append(f"{alias}: after the preempt, READ KEYS through {p.name} still "
                            f"shows {a.node}'s key: the preempt did not reach {p.replica}")
        if res.key != kb:
            problems.append(f"{alias}: after the preempt, READ RESERVATION through {p.name} "
                            f"shows {'none' if res.key is None else hex(res.key)}, expected "
                            f"{b.node}'s {kb:#x}")
    conflict = await unregistered_write_conflicts(pa, a)
    if conflict is False:
        problems.append(f"{alias}: {a.node} still wrote through {pa.name} after {b.node} "
                        f"preempted it: the fence does not hold on {ra}")
    r = await pb.pr_out(PrOutAction.RELEASE, key=kb, pr_type=TYPE5)
    if not r.good:
        problems.append(f"{alias}: RELEASE from {pb.name} failed: {status_text(r)}")
    problems += await register_all(b, 0)
    return problems


# -- Validate Disk Arbitration and Validate Multiple Arbitration ------------------------------


async def arbitrate(disk: NodeDisk, host: str, key: int) -> tuple[bool, str]:
    """Register on every path, then RESERVE through ``host``: (owner now?, answer)."""
    problems = await register_all(disk, key)
    if problems:
        raise ValidationScsiError(problems[0])
    r = await disk.first_on(host).pr_out(PrOutAction.RESERVE, key=key, pr_type=TYPE5)
    if r.good:
        return True, "GOOD"
    if r.status == ScsiStatus.RESERVATION_CONFLICT:
        return False, "RESERVATION CONFLICT"
    raise ValidationScsiError(f"{disk.node}: RESERVE through {host} failed: {status_text(r)}")


async def give_up(disk: NodeDisk, host: str, key: int, owner: bool) -> None:
    if owner:
        r = await disk.first_on(host).pr_out(PrOutAction.RELEASE, key=key, pr_type=TYPE5)
        if not r.good:
            raise ValidationScsiError(f"{disk.node}: RELEASE through {host} failed: "
                                      f"{status_text(r)}")
    problems = await register_all(disk, 0)
    if problems:
        raise ValidationScsiError(problems[0])


@check(STORAGE, "Validate Disk Arbitration",
       "Validate that each node in turn can arbitrate for and own each test disk, and that "
       "while one node owns it, another node's arbitration (through the other replica) fails "
       "and the owner keeps the disk.", destructive=True)
async def validate_disk_arbitration(run: CheckRun) -> Outcome:
    opened, none = await test_disks(run)
    if none:
        return none
    async def one(device: Any, disks: NodeDisks) -> list[str]:
        problems: list[str] = []
        try:
            for owner_i in range(len(disks)):
                challenger_i = (owner_i + 1) % len(disks)
                problems += await _duel(device, disks[owner_i], owner_i, disks[challenger_i],
                                        challenger_i)
            return problems + await leftovers(disks, device)
        finally:
            await clear_everything(disks, device, run)

    problems = await each_device(opened, one)
    return judged(problems, [], f"{len(opened)} disk(s): every node won arbitration in turn "
                                "and defended it against the others")


async def _duel(device: Any, owner: NodeDisk, owner_i: int, challenger: NodeDisk,
                challenger_i: int) -> list[str]:
    alias = device.alias
    ro, rc = replica_for(device, owner_i), replica_for(device, challenger_i)
    ko, kc = random_key(), random_key()
    won, answer = await arbitrate(owner, ro, ko)
    if not won:
        return [f"{alias}: {owner.node} could not arbitrate for a free disk through {ro} "
                f"({answer})"]
    problems = []
    stolen, answer = await arbitrate(challenger, rc, kc)
    if stolen:
        problems.append(f"{alias}: {challenger.node} won arbitration through {rc} while "
                        f"{owner.node} owned the disk through {ro}: two owners at once; {rc} "
                        f"does not know the reservation taken through {ro} (reservations "
                        "are not replicated)")
    res = await challenger.first_on(rc).read_reservation()
    if res.key != ko:
        cause = (f": the reservation taken through {ro} is not visible through {rc}; "
                 "reservations are not replicated between the storage nodes"
                 if rc != ro else "")
        problems.append(f"{alias}: through {rc} the reservation is "
                        f"{'none' if res.key is None else hex(res.key)}, not the owner "
                        f"{owner.node}'s {ko:#x}{cause}")
    await give_up(challenger, rc, kc, stolen)
    await give_up(owner, ro, ko, True)
    return problems


@check(STORAGE, "Validate Multiple Arbitration",
       "Validate that when all nodes arbitrate for a test disk at the same time, each through "
       "its own replica, exactly one of them ends up owning it.", destructive=True)
async def validate_multiple_arbitration(run: CheckRun) -> Outcome:
    opened, none = await test_disks(run)
    if none:
        return none
    rounds = 3

    async def one(device: Any, disks: NodeDisks) -> list[str]:
        problems: list[str] = []
        try:
            for n in range(rounds):
                problems += await _scramble(run, device, disks, n)
            return problems + await leftovers(disks, device)
        finally:
            await clear_everything(disks, device, run)

    problems = await each_device(opened, one)
    run.number("rounds", rounds)
    return judged(problems, [], f"{len(opened)} disk(s): exactly one owner in each of "
                                f"{rounds} concurrent arbitrations")


async def _scramble(run: CheckRun, device: Any, disks: NodeDisks, n: int) -> list[str]:
    keys = [random_key() for _ in disks]
    hosts = [replica_for(device, i) for i in range(len(disks))]
    outcomes = await asyncio.gather(
        *(arbitrate(d, h, k) for d, h, k in zip(disks, hosts, keys, strict=True)))
    owners = [i for i, (won, _) in enumerate(outcomes) if won]
    run.step(f"{device.alias} round {n + 1}: owners "
             f"{[disks[i].node + ' via ' + hosts[i] for i in owners]}")
    problems = []
    if len(owners) != 1:
        problems.append(
            f"{device.alias}: {len(owners)} nodes own the disk after concurrent arbitration "
            f"({', '.join(f'{disks[i].node} through {hosts[i]}' for i in owners) or 'none'}); "
            "exactly one must" + ("; the replicas do not share reservation state"
                                  if len(owners) > 1 and len(set(hosts)) > 1 else ""))
    elif owners:
        winner, via = keys[owners[0]], hosts[owners[0]]
        for host in replica_hosts(device):
            path = next((p for d in disks for p in d.on_replica(host)), None)
            if path is None:
                continue
            res = await path.read_reservation()
            if res.key != winner:
                problems.append(
                    f"{device.alias}: {disks[owners[0]].node} won through {via}, but through "
                    f"{host} the reservation is {'none' if res.key is None else hex(res.key)}"
                    + (": reservations are not replicated between the storage nodes"
                       if host != via else ""))
    for i, d in enumerate(disks):
        await give_up(d, hosts[i], keys[i], i in owners)
    return problems


# -- Validate Disk Failover and Validate Simultaneous Failover --------------------------------


async def failover_cycle(run: CheckRun, device: Any, disks: NodeDisks) -> list[str]:
    """Each node in turn owns the disk, writes a pattern through its replica; the next node
    takes over through the next replica and must read exactly that pattern."""
    alias = device.alias
    first = disks[0]
    lba, size = scratch_lba(first), first.block_size
    home = first.first_on(replica_for(device, 0))
    original = await home.read_blocks(lba, SCRATCH_BLOCKS, size)
    if not original.good:
        raise_for(home, original, "READ")
    problems: list[str] = []
    rng = random.Random()
    try:
        for i, writer in enumerate(disks):
            reader_i = (i + 1) % len(disks)
            reader = disks[reader_i]
            rw, rr = replica_for(device, i), replica_for(device, reader_i)
            kw, kr = random_key(), random_key()
            won, answer = await arbitrate(writer, rw, kw)
            if not won:
                problems.append(f"{alias}: {writer.node} could not own the disk through {rw} "
                                f"({answer})")
                break
            pattern = rng.randbytes(SCRATCH_BLOCKS * size)
            w = await writer.first_on(rw).write_blocks(lba, pattern, size)
            if not w.good:
                raise_for(writer.first_on(rw), w, "WRITE")
            back = await writer.first_on(rw).read_blocks(lba, SCRATCH_BLOCKS, size)
            if back.data != pattern:
                problems.append(f"{alias}: {writer.node} read back through {rw} other data than "
                                "it wrote there")
            await give_up(writer, rw, kw, True)
            won, answer = await arbitrate(reader, rr, kr)
            if not won:
                problems.append(f"{alias}: {reader.node} could not take the disk over through "
                                f"{rr} ({answer})")
                break
            got = await reader.first_on(rr).read_blocks(lba, SCRATCH_BLOCKS, size)
            await give_up(reader, rr, kr, True)
            differ = sum(got.data[j * size:(j + 1) * size] != pattern[j * size:(j + 1) * size]
                         for j in range(SCRATCH_BLOCKS))
            run.step(f"{alias}: {writer.node} wrote {SCRATCH_BLOCKS} blocks at LBA {lba} "
                     f"through {rw}; {reader.node} read them through {rr}: {differ} differ")
            if differ:
                problems.append(
                    f"{alias}: data written through {writer.node} over {rw} reads back "
                    f"different through {reader.node} over {rr} ({differ} of {SCRATCH_BLOCKS} "
                    f"blocks differ)" + (f": the write was not mirrored to {rr}"
                                         if rr != rw else ""))
    finally:
        restored = await home.write_blocks(lba, original.data, size)
        if not restored.good:
            problems.append(f"{alias}: could not restore the scratch blocks through "
                            f"{home.name}: {status_text(restored)}")
    return problems


@check(STORAGE, "Validate Disk Failover",
       "Validate that each test disk fails over between nodes with its data: a node owns the "
       "disk and writes through one storage node, the next node takes it over and reads the "
       "same bytes through the other storage node.", destructive=True)
async def validate_disk_failover(run: CheckRun) -> Outcome:
    opened, none = await test_disks(run)
    if none:
        return none
    async def one(device: Any, disks: NodeDisks) -> list[str]:
        try:
            return await failover_cycle(run, device, disks)
        finally:
            await clear_everything(disks, device, run)

    problems = await each_device(opened, one, parallel=4)
    return judged(problems, [], f"{len(opened)} disk(s) failed over between every pair of "
                                "nodes with their data intact")


@check(STORAGE, "Validate Simultaneous Failover",
       "Validate that all test disks fail over at the same time with their data.",
       destructive=True)
async def validate_simultaneous_failover(run: CheckRun) -> Outcome:
    opened, none = await test_disks(run)
    if none:
        return none
    try:
        results = await asyncio.gather(
            *(failover_cycle(run, device, disks) for device, disks in opened))
    finally:
        await asyncio.gather(*(clear_everything(d, dev, run) for dev, d in opened))
        await asyncio.gather(*(d.close() for _, d in opened))
    problems = [p for r in results for p in r]
    run.number("disks", len(opened))
    return judged(problems, [], f"{len(opened)} disk(s) failed over at once with their data "
                                "intact")
