"""HA Storage: what a synchronously mirrored SAN needs and the wizard does not check.

Every HA device Synchronized on every replica; its replicas on different
storage hosts; sync and heartbeat on networks of their own; partner naming
(HA1 on the primary, HA1Partner on the partner); the replicas holding the
same data (blocks sampled through each replica's own paths and compared: one
identity on every path proves nothing about mirroring); a quorum device of at
least 1024 MB plus a VM storage device (the seed's minimum configuration);
every portal discoverable from every cluster node; and the seed's MPIO policy,
Round Robin.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import zlib
from typing import Any

from harness.initiator.errors import InitiatorError
from harness.initiator.session import Session
from harness.lab.inventory import NetworkRole
from harness.validation.model import (
    CheckRun,
    Outcome,
    check,
    failed,
    judged,
    not_applicable,
)
from harness.validation.network import design
from harness.validation.paths import TIMEOUTS, open_node_disk
from harness.validation.site import QUORUM_MIN_BYTES
from harness.validation.storage import (
    close_all,
    in_use,
    node_policies,
    raise_for,
    visible_disks,
)

HA = "HA Storage"
SAMPLES = 32
PARALLEL_DEVICES = 4
SAMPLE_BLOCKS = 8
STAMPED = 4


@check(HA, "Validate HA Devices Synchronized",
       "Validate that every replica of every HA device is Synchronized.")
async def validate_synchronized(run: CheckRun) -> Outcome:
    site = run.site
    reader = site.sut.replicas  # the lab's nodes, or the reader [storage] kind names
    statuses = await asyncio.to_thread(reader.states, list(site.devices))
    states = {(s.device, s.host): s for s in statuses}
    run.add("How", f"replica states read by the {reader.kind!r} reader")
    problems = []
    for alias, device in site.devices.items():
        for replica in device.replicas:
            status = states.get((alias, replica.host))
            run.step(status.line() if status else f"{alias}@{replica.host}: no answer")
            state = status.state if status else "unknown (no answer)"
            if state != "Synchronized":
                problems.append(f"{alias} on {replica.host} is {state}, not Synchronized"
                                + (f" ({status.detail})" if status and status.detail else ""))
    return judged(problems, [], f"{len(site.devices)} device(s): every replica Synchronized")


@check(HA, "Validate HA Replica Placement",
       "Validate that every HA device has at least two replicas and that they are on "
       "different storage hosts.")
async def validate_replica_placement(run: CheckRun) -> Outcome:
    problems = []
    for alias, device in run.site.devices.items():
        hosts = [r.host for r in device.replicas]
        run.step(f"{alias}: replicas on {', '.join(hosts)}")
        if len(hosts) < 2:
            problems.append(f"{alias} has a single replica (on {hosts[0]}): it is not highly "
                            "available; a second storage host must mirror it")
        elif len(set(hosts)) < len(hosts):
            problems.append(f"{alias} has two replicas on one host")
    return judged(problems, [], "every device mirrored on distinct storage hosts")


@check(HA, "Validate HA Sync and Heartbeat Networks",
       "Validate that the mirror (sync) and storage heartbeat traffic of every HA device run on "
       "networks its replica hosts share, separate from the iSCSI and public networks.")
async def validate_sync_networks(run: CheckRun) -> Outcome:
    inv = run.site.inventory
    run.add("Design", design(inv))
    problems: list[str] = []
    warnings: list[str] = []
    for alias, device in run.site.devices.items():
        if len(device.replicas) < 2:
            problems.append(f"{alias} has a single replica: nothing to mirror to")
            continue
        for role in (NetworkRole.SYNC, NetworkRole.HEARTBEAT):
            nets = [n for n in inv.networks_with_role(role)
                    if all(n.name in inv.host(r.host).addresses for r in device.replicas)]
            run.step(f"{alias} {role.value}: {', '.join(n.name for n in nets) or 'none'}")
            if not nets:
                problems.append(f"{alias}: its replica hosts share no {role.value} network")
                continue
            if all(n.has_role(NetworkRole.PUBLIC) for n in nets):
                problems.append(f"{alias}: {role.value} traffic only on the public network "
                                f"{nets[0].name}")
            elif all(n.has_role(NetworkRole.ISCSI) for n in nets):
                warnings.append(f"{alias}: {role.value} traffic shares the iSCSI network "
                                f"{nets[0].name} ({design(inv).split(' (')[0]} design, the "
                                "seed's); a dedicated link is best practice")
    return judged(problems, warnings, f"sync and heartbeat on dedicated networks "
                                      f"({design(inv).split(' (')[0]})")


@check(HA, "Validate HA Partner Naming",
       "Validate that each device's primary target is named after the device (HA1) and each "
       "partner's after the device plus Partner (HA1Partner), in the target name and in the "
       "TargetAlias the target announces at login.")
async def validate_partner_naming(run: CheckRun) -> Outcome:
    site = run.site
    problems: list[str] = []
    warnings: list[str] = []
    node = site.cluster_nodes[0] if site.cluster_nodes else None
    for alias, device in site.devices.items():
        primary = min(device.replicas, key=lambda r: r.priority)
        for r in device.replicas:
            want = alias if r is primary else f"{alias}Partner"
            if not r.target.lower().endswith(want.lower()):
                problems.append(f"{alias}: replica on {r.host} has target {r.target}, which "
                                f"does not end in {want.lower()}")
        if node is None:
            continue
        disk = await open_node_disk(site.initiator(node), device, run)
        try:
            for path in disk.paths:
                announced = (path.session.login_result.agreed.get("TargetAlias")
                             if path.session.login_result else None)
                r = next(x for x in device.replicas if x.host == path.replica)
                want = alias if r is primary else f"{alias}Partner"
                run.step(f"{path.name}: TargetAlias {announced!r}")
                if announced is None:
                    warnings.append(f"{path.name}: the target announces no TargetAlias")
                elif announced != want:
                    problems.append(f"{alias} on {r.host} announces TargetAlias {announced!r}, "
                                    f"expected {want!r}")
        finally:
            await disk.close()
    return judged(problems, sorted(set(warnings)), "every device named HA<n> / HA<n>Partner")


def sample_lbas(num_blocks: int, seed: int) -> list[int]:
    """Block addresses spread over the device (first, last, and random ones between)."""
    top = max(num_blocks - SAMPLE_BLOCKS, 0)
    rng = random.Random(seed)
    picks = {0, top} | {rng.randrange(0, top + 1) for _ in range(SAMPLES - 2)}
    return sorted(lba - lba % SAMPLE_BLOCKS for lba in picks)


@check(HA, "Validate HA Replica Data",
       "Validate that the replicas hold the same data: blocks sampled across each device are "
       "read through each replica's own paths and compared (on a test device, a fresh stamp "
       "is first written through the primary so the comparison is not of zeros).")
async def validate_replica_data(run: CheckRun) -> Outcome:
    site = run.site
    if not site.cluster_nodes:
        return not_applicable("no cluster node to read through")
    problems: list[str] = []
    gate = asyncio.Semaphore(PARALLEL_DEVICES)

    async def one(alias: str, device: Any) -> int:
        if len(device.replicas) < 2:
            problems.append(f"{alias} has a single replica: nothing to compare")
            return 0
        async with gate:
            disk = await open_node_disk(site.initiator(site.cluster_nodes[0]), device, run)
            try:
                return await _compare_replicas(run, alias, device, disk, problems)
            finally:
                await disk.close()

    counts = await asyncio.gather(*(one(a, d) for a, d in site.devices.items()))
    compared = sum(counts)
    run.number("regions_compared", compared)
    return judged(problems, [], f"{compared} sampled regions identical on every replica")


async def _compare_replicas(run: CheckRun, alias: str, device: Any, disk: Any,
                            problems: list[str]) -> int:
    """Stamp (on a test device not in use), read the samples through each replica's own
    path, compare; return how many regions were compared."""
    site = run.site
    size = disk.block_size
    lbas = sample_lbas(disk.num_blocks, zlib.crc32(alias.encode()))
    first = disk.first_on(device.replicas[0].host)
    originals: dict[int, bytes] = {}
    busy = await in_use(disk)
    if busy:
        run.step(f"{alias}: in use ({busy}): compared as it is, nothing written")
    if site.is_test_device(alias) and not busy:
        for lba in lbas[:STAMPED]:
            old = await first.read_blocks(lba, SAMPLE_BLOCKS, size)
            if not old.good:
                raise_for(first, old, "READ")
            originals[lba] = old.data
            w = await first.write_blocks(lba, random.randbytes(SAMPLE_BLOCKS * size), size)
            if not w.good:
                raise_for(first, w, "WRITE")
    try:
        digests: dict[str, list[str]] = {}
        for replica in device.replicas:
            path = disk.first_on(replica.host)
            answers = await asyncio.gather(*(path.read_blocks(lba, SAMPLE_BLOCKS, size)
                                             for lba in lbas))
            for r in answers:
                if not r.good:
                    raise_for(path, r, "READ")
            digests[replica.host] = [hashlib.sha256(r.data).hexdigest()[:16] for r in answers]
    finally:
        for lba, data in originals.items():
            await first.write_blocks(lba, data, size)
    hosts = list(digests)
    base = digests[hosts[0]]
    for other in hosts[1:]:
        differ = [lba for lba, a, b in zip(lbas, base, digests[other], strict=True) if a != b]
        if differ:
            problems.append(
                f"{alias}: {len(differ)} of {len(lbas)} sampled regions differ between "
                f"{hosts[0]} and {other} (first at LBA {differ[0]}): the replicas do not hold "
                "the same data")
    run.add(f"{alias} samples", "\n".join(
        f"LBA {lba}: " + " ".join(f"{h}={digests[h][i]}" for h in hosts)
        for i, lba in enumerate(lbas)))
    return len(lbas)


@check(HA, "Validate HA Quorum and VM Storage Devices",
       "Validate the seed's minimum configuration: a quorum device of at least 1024 MB and at "
       "least one VM storage device, sized as READ CAPACITY reports them.")
async def validate_minimum_devices(run: CheckRun) -> Outcome:
    site = run.site
    seen, problems = await visible_disks(run)
    await close_all(seen)
    sizes = {alias: next(iter(by_node.values())).num_blocks *
             next(iter(by_node.values())).block_size for alias, by_node in seen.items()}
    for alias, size in sorted(sizes.items()):
        run.step(f"{alias} ({site.devices[alias].purpose}): READ CAPACITY {size} bytes")
        run.number(f"{alias}.bytes", size)
    quorum = [a for a, d in site.devices.items() if d.purpose == "quorum"]
    vms = [a for a, d in site.devices.items() if d.purpose == "vm-storage"]
    faults = []
    if not quorum:
        faults.append("no quorum device (purpose = \"quorum\")")
    for alias in quorum:
        if alias in sizes and sizes[alias] < QUORUM_MIN_BYTES:
            faults.append(f"quorum device {alias} is {sizes[alias] // 2**20} MiB; the seed asks "
                          "for at least 1024 MB")
        elif alias not in sizes:
            faults.append(f"quorum device {alias} cannot be read from any cluster node")
    if not vms:
        faults.append("no VM storage device (purpose = \"vm-storage\")")
    return judged(faults, problems, f"quorum {', '.join(quorum)} >= 1024 MB and VM storage "
                                    f"{', '.join(vms)}")


@check(HA, "Validate HA Portal Discovery",
       "Validate that every cluster node discovers (SendTargets) every replica's target on "
       "every portal it can reach.")
async def validate_portal_discovery(run: CheckRun) -> Outcome:
    site = run.site
    problems: list[str] = []
    asked = 0
    for node in site.cluster_nodes:
        initiator = site.initiator(node)
        portals: dict[tuple[str, int], set[str]] = {}
        for device in site.devices.values():
            for spec in initiator.path_specs(device):
                portals.setdefault((spec.host, spec.port), set()).add(spec.target)
        for (host, port), wanted in sorted(portals.items()):
            asked += 1
            session = Session(host, port, None, initiator_name=initiator.iqn, timeouts=TIMEOUTS,
                              sock_factory=initiator.sock_factory)
            try:
                async with session:
                    pairs = await session.text_request([("SendTargets", "All")])
            except (InitiatorError, OSError, TimeoutError) as exc:
                problems.append(f"{node}: discovery at {host}:{port} failed: "
                                f"{' '.join(str(exc).split())}")
                continue
            found = {v for k, v in pairs if k == "TargetName"}
            run.step(f"{node}: SendTargets at {host}:{port} -> {sorted(found)}")
            for target in sorted(wanted - found):
                problems.append(f"{node}: the portal {host}:{port} does not offer {target}")
    run.number("portals_asked", asked)
    if not asked:
        return failed("no portal to ask: no cluster node shares an iSCSI network with storage")
    return judged(problems, [], f"{asked} portal(s) offer every target to every cluster node")


@check(HA, "Validate HA MPIO Policy",
       "Validate that every cluster node uses the MPIO policy the seed asks for: Round Robin.")
async def validate_mpio_policy(run: CheckRun) -> Outcome:
    policies = await asyncio.to_thread(node_policies, run)
    problems = [f"{n} uses MPIO policy {p}, not round-robin" for n, p in policies.items()
                if not p.startswith("round-robin")]
    for n, p in policies.items():
        run.step(f"{n}: {p}")
    if not policies:
        return not_applicable("no cluster node")
    return judged(problems, [], "Round Robin on every cluster node")
