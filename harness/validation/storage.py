"""Storage (first half): listing disks, their identity, latency and MPIO, at SCSI level.

Each cluster node logs in with its own IQN on every path of every HA device
(``paths.open_node_disk``). List Disks and List Potential Cluster Disks say what
each node sees (REPORT LUNS, INQUIRY, READ CAPACITY); Validate SCSI device
Vital Product Data (VPD) reads pages 83h and 80h on every path of every node
(so through every replica); Validate Disk Access Latency times 512-byte raw
reads and writes per node; Validate Microsoft MPIO-based disks counts paths
per disk and compares the load-balance policy across nodes. The checks that
reserve and fail over are in ``arbitration``.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from harness.scsi import cdb as scsi_cdb
from harness.scsi.inquiry import StandardInquiry
from harness.scsi.vpd import DesignatorType, DeviceIdentification, UnitSerialNumber
from harness.validation.model import (
    CheckRun,
    Outcome,
    check,
    failed,
    judged,
    not_applicable,
    warning,
)
from harness.validation.paths import NodeDisk, open_node_disk, status_text

STORAGE = "Storage"
#: designator types the wizard accepts as a disk's unique id (CprepDiskGetUniqueIds)
UNIQUE_DESIGNATORS = {
    DesignatorType.NAA: "NAA",
    DesignatorType.EUI64: "EUI-64",
    DesignatorType.SCSI_NAME_STRING: "SCSI name string",
}
LATENCY_IOS = 16
LATENCY_PARALLEL_DISKS = 4  # disks measured at once (each disk's nodes in turn)
SCRATCH_BLOCKS = 8  # the last blocks of a test device: the "arbitration sectors"


async def in_use(disk: NodeDisk) -> str:
    """Why a disk is in use (an initiator holds a PR registration on it), or ""."""
    keys = await disk.paths[0].read_keys()
    return f"{len(keys.keys)} persistent reservation registration(s) held" if keys.keys else ""


def scratch_lba(disk: NodeDisk) -> int:
    return max(disk.num_blocks - SCRATCH_BLOCKS, 0)


async def visible_disks(run: CheckRun) -> tuple[dict[str, dict[str, NodeDisk]], list[str]]:
    """Every node's ``NodeDisk`` of every device it can log in to, and what failed."""
    site = run.site
    if not site.cluster_nodes:
        return {}, [f"{site.inventory.path} names no cluster node to act as initiator"]
    problems: list[str] = []
    seen: dict[str, dict[str, NodeDisk]] = {}

    async def one(node: str, alias: str) -> None:
        try:
            disk = await open_node_disk(site.initiator(node), site.devices[alias], run)
        except Exception as exc:
            problems.append(" ".join(str(exc).split()))
            return
        seen.setdefault(alias, {})[node] = disk
        for refused in disk.refused.values():
            problems.append(refused)

    await asyncio.gather(*(one(n, a) for n in site.cluster_nodes for a in site.devices))
    return seen, problems


async def close_all(seen: dict[str, dict[str, NodeDisk]]) -> None:
    await asyncio.gather(*(d.close() for by_node in seen.values() for d in by_node.values()))


async def describe(disk: NodeDisk) -> dict[str, Any]:
    path = disk.paths[0]
    r = await path.run(scsi_cdb.Inquiry(allocation_length=255), expected_in=255,
                       label="INQUIRY")
    inq = StandardInquiry.decode(r.data) if r.good else None
    luns = await path.run(scsi_cdb.ReportLuns(allocation_length=4096), expected_in=4096,
                          label="REPORT LUNS")
    return {
        "vendor": inq.vendor.strip() if inq else "?",
        "product": inq.product.strip() if inq else "?",
        "bytes": disk.num_blocks * disk.block_size,
        "block_size": disk.block_size,
        "paths": len(disk.paths),
        "report_luns": status_text(luns),
    }


@check(STORAGE, "List Disks",
       "List the disks each cluster node sees: every HA device through every path, with "
       "INQUIRY, READ CAPACITY and REPORT LUNS.")
async def list_disks(run: CheckRun) -> Outcome:
    seen, problems = await visible_disks(run)
    try:
        lines = []
        for alias, by_node in sorted(seen.items()):
            for node, disk in sorted(by_node.items()):
                d = await describe(disk)
                lines.append(f"{node}: {alias} {d['vendor']} {d['product']} "
                             f"{d['bytes']} bytes ({d['block_size']}-byte blocks) "
                             f"over {d['paths']} path(s)")
        run.add("Disks per node", "\n".join(lines) or "none")
        run.number("disks_seen", len(lines))
    finally:
        await close_all(seen)
    missing = [f"{n} does not see {a}" for a in run.site.devices for n in run.site.cluster_nodes
               if n not in seen.get(a, {})]
    if missing:
        return failed(f"{missing[0]}: {problems[0] if problems else 'no path logs in'}")
    return judged([], problems, f"{len(run.site.devices)} disk(s), each seen by all "
                                f"{len(run.site.cluster_nodes)} cluster node(s)")


@check(STORAGE, "List Potential Cluster Disks",
       "List the disks that can be clustered: seen by every node as one disk (the same "
       "VPD 83h identity on all its paths), iSCSI, and not held by another cluster "
       "(no persistent reservation key registered).")
async def list_potential_cluster_disks(run: CheckRun) -> Outcome:
    seen, problems = await visible_disks(run)
    potential, excluded = [], []
    try:
        for alias in run.site.devices:
            by_node = seen.get(alias, {})
            absent = [n for n in run.site.cluster_nodes if n not in by_node]
            if absent:
                excluded.append(f"{alias}: not visible from {', '.join(absent)}")
                continue
            ids = {}
            for _node, disk in by_node.items():
                for path in disk.paths:
                    ids[path.name] = await lu_identity(path)
            if len(set(ids.values())) != 1:
                excluded.append(f"{alias}: not one disk: its paths report "
                                f"{len(set(ids.values()))} different identities")
                continue
            keys = await next(iter(by_node.values())).paths[0].read_keys()
            if keys.keys:
                excluded.append(f"{alias}: in use: {len(keys.keys)} PR registration(s) held")
                continue
            potential.append(alias)
    finally:
        await close_all(seen)
    run.add("Potential cluster disks", "\n".join(potential) or "none")
    if excluded:
        run.add("Excluded", "\n".join(excluded))
    run.number("potential_disks", len(potential))
    held = [e for e in excluded if ": in use:" in e]
    if not potential and excluded and len(held) == len(excluded) and not problems:
        # as the wizard does with disks online in a clustered role: nothing to test on
        return warning("every disk is in use (held by a cluster): " + "; ".join(held)
                       + "; stop its role to validate it")
    if not potential:
        return failed("no disk can be clustered: " + "; ".join(excluded or problems))
    warnings = [f"{e} (excluded)" for e in excluded] + problems
    return judged([], warnings, f"{len(potential)} potential cluster disk(s): "
                                f"{', '.join(potential)}")


async def lu_identity(path: Any) -> tuple[str, ...]:
    """The LU designators and serial one path reports (VPD 83h and 80h)."""
    r83 = await path.run(scsi_cdb.Inquiry(evpd=True, page_code=0x83, allocation_length=4096),
                         expected_in=4096, label="INQUIRY VPD 83h")
    ids: list[str] = []
    if r83.good:
        page = DeviceIdentification.decode(r83.data)
        ids = [f"{DesignatorType(d.designator_type).name}:{d.text}"
               for d in page.logical_unit_ids()]
        path.run_log.step(f"{path.name}:   83h {ids}")
    r80 = await path.run(scsi_cdb.Inquiry(evpd=True, page_code=0x80, allocation_length=255),
                         expected_in=255, label="INQUIRY VPD 80h")
    serial = UnitSerialNumber.decode(r80.data).serial.strip() if r80.good else "(no 80h)"
    path.run_log.step(f"{path.name}:   80h serial {serial!r}")
    return (*sorted(ids), f"serial:{serial}")


@check(STORAGE, "Validate SCSI device Vital Product Data (VPD)",
       "Validate that every disk reports a unique identity (VPD 83h with an NAA, EUI-64 or "
       "SCSI name string designator, and the 80h serial) that is the same on every path, "
       "every node and every replica, and different from every other disk's.")
async def validate_vpd(run: CheckRun) -> Outcome:
    seen, problems = await visible_disks(run)
    per_device: dict[str, dict[str, tuple[str, ...]]] = {}
    try:
        for alias, by_node in seen.items():
            for disk in by_node.values():
                for path in disk.paths:
                    per_device.setdefault(alias, {})[f"{path.name}"] = await lu_identity(path)
    finally:
        await close_all(seen)
    faults: list[str] = []
    owners: dict[str, str] = {}
    for alias, by_path in sorted(per_device.items()):
        for name, ids in by_path.items():
            usable = [i for i in ids if i.split(":", 1)[0] in
                      {t.name for t in UNIQUE_DESIGNATORS}]
            if not usable:
                faults.append(f"{alias} through {name} reports no NAA, EUI-64 or SCSI name "
                              f"designator in VPD 83h (only {list(ids)}); the cluster cannot "
                              "identify it")
        distinct = sorted(set(by_path.values()))
        if len(distinct) > 1:
            by_replica: dict[tuple[str, ...], list[str]] = {}
            for name, ids in by_path.items():
                by_replica.setdefault(ids, []).append(name.split("/")[-1])
            which = "; ".join(f"{sorted(set(hosts))} present {', '.join(ids)}"
                              for ids, hosts in by_replica.items())
            faults.append(f"{alias} has {len(distinct)} identities across its paths ({which}): "
                          "the replicas do not present one disk, so MPIO sees several disks")
        for ids in distinct:
            for ident in ids:
                unique = ident.split(":", 1)[0] in {t.name for t in UNIQUE_DESIGNATORS}
                if unique and owners.setdefault(ident, alias) != alias:
                    faults.append(f"{alias} and {owners[ident]} share the identifier "
                                  f"{ident}: different disks must not")
    run.add("Identity per path", "\n".join(
        f"{alias} {name}: {', '.join(ids)}" for alias, by_path in sorted(per_device.items())
        for name, ids in sorted(by_path.items())))
    run.number("paths_read", sum(len(v) for v in per_device.values()))
    if not per_device:
        return failed("no disk could be read: " + "; ".join(problems))
    return judged(faults, problems, f"{len(per_device)} disk(s): one unique identity each on "
                                    f"all {sum(len(v) for v in per_device.values())} paths")


@check(STORAGE, "Validate Disk Access Latency",
       "Validate that 512-byte raw reads and writes from each node complete within the "
       "inventory's threshold (budget disk_latency_s); report the maximum and average per node.")
async def validate_disk_access_latency(run: CheckRun) -> Outcome:
    site = run.site
    threshold = site.disk_latency_s
    run.number("threshold_ms", threshold * 1000)
    problems: list[str] = []
    warnings: list[str] = []
    reads_only: list[str] = []  # writes are measured only where the harness may write
    gate = asyncio.Semaphore(LATENCY_PARALLEL_DISKS)

    async def one(alias: str, device: Any) -> list[tuple[str, str, list[float], list[float]]]:
        writable = site.is_test_device(alias)
        if not writable:
            reads_only.append(f"{alias}: not marked test = true, so nothing is written")
        async with gate:
            disks = await asyncio.gather(*(open_node_disk(site.initiator(n), device, run)
                                           for n in site.cluster_nodes),
                                         return_exceptions=True)
            try:
                for d in disks:
                    if isinstance(d, BaseException):
                        raise d
                busy = await in_use(disks[0]) if writable else ""
                if busy:
                    writable = False
                    reads_only.append(f"{alias}: in use ({busy}), so nothing is written")
                out = []
                for d in disks:  # one node after the other
                    reads, writes = await _time_raw_io(d, writable)
                    out.append((d.node, alias, reads, writes))
                return out
            finally:
                await asyncio.gather(*(d.close() for d in disks if isinstance(d, NodeDisk)))

    measured = 0
    per_device = await asyncio.gather(*(one(a, d) for a, d in site.devices.items()))
    for node, alias, reads, writes in (row for rows in per_device for row in rows):
        for kind, samples in (("read", reads), ("write", writes)):
            if not samples:
                continue
            measured += 1
            worst_s, mean_s = max(samples), statistics.fmean(samples)
            key = f"{node}.{alias}.{kind}"
            run.number(f"{key}.count", len(samples))
            run.number(f"{key}.max_ms", round(worst_s * 1000, 3))
            run.number(f"{key}.avg_ms", round(mean_s * 1000, 3))
            if mean_s > threshold:
                problems.append(f"{node} {alias}: average {kind} latency "
                                f"{mean_s * 1000:.1f} ms exceeds {threshold * 1000:.0f} ms")
            elif worst_s > threshold:
                warnings.append(f"{node} {alias}: slowest {kind} took "
                                f"{worst_s * 1000:.1f} ms (threshold "
                                f"{threshold * 1000:.0f} ms)")
    if not measured:
        return not_applicable("no disk to measure")
    if reads_only:
        run.add("Reads only", "\n".join(reads_only))
    note = f" (reads only on {len(reads_only)} disk(s))" if reads_only else ""
    return judged(problems, warnings, f"{measured} series of {LATENCY_IOS} raw I/Os, all "
                                      f"within {threshold * 1000:.0f} ms{note}")


async def _time_raw_io(disk: NodeDisk, writable: bool) -> tuple[list[float], list[float]]:
    """Raw one-block reads (and writes of the same bytes back) at the scratch sector."""
    reads: list[float] = []
    writes: list[float] = []
    lba = scratch_lba(disk)
    for i in range(LATENCY_IOS):
        path = disk.paths[i % len(disk.paths)]
        r = await path.read_blocks(lba, 1, disk.block_size)
        if not r.good:
            raise_for(path, r, "READ")
        reads.append(r.latency_ns / 1e9)
        if writable:
            w = await path.write_blocks(lba, r.data, disk.block_size)
            if not w.good:
                raise_for(path, w, "WRITE")
            writes.append(w.latency_ns / 1e9)
    return reads, writes


def raise_for(path: Any, result: Any, what: str) -> None:
    from harness.validation.paths import ValidationScsiError

    raise ValidationScsiError(f"{path.name}: {what} failed: {status_text(result)}")


@check(STORAGE, "Validate Microsoft MPIO-based disks",
       "Validate that every node reaches every disk over more than one path, that MPIO "
       "claims each disk as one disk (the same VPD 83h identity on every path) and reads "
       "through its policy, and that all nodes use the same MPIO load-balance policy.")
async def validate_mpio(run: CheckRun) -> Outcome:
    site = run.site
    seen, problems = await visible_disks(run)
    warnings: list[str] = []
    try:
        for alias, by_node in sorted(seen.items()):
            for node, disk in sorted(by_node.items()):
                expected = len(site.initiator(node).path_specs(site.devices[alias]))
                run.number(f"{node}.{alias}.paths", len(disk.paths))
                run.step(f"{node}: {alias} over {len(disk.paths)} of {expected} path(s)")
                if len(disk.paths) < 2:
                    warnings.append(f"{node} reaches {alias} over {len(disk.paths)} path: a "
                                    "single point of failure")
                elif len(disk.paths) < expected:
                    warnings.append(f"{node} reaches {alias} over {len(disk.paths)} of "
                                    f"{expected} paths")
    finally:
        await close_all(seen)
    claims = await asyncio.gather(*(claim(run, node, alias) for alias, by_node in seen.items()
                                    for node in by_node))
    problems += [c for c in claims if c]
    policies = await asyncio.to_thread(node_policies, run)
    run.add("MPIO policy per node", "\n".join(f"{n}: {p}" for n, p in policies.items()))
    distinct = set(policies.values())
    if len(distinct) > 1:
        problems.append("the nodes use different MPIO policies: "
                        + ", ".join(f"{n} {p}" for n, p in policies.items()))
    return judged(problems, warnings, f"every disk on every node has several paths; policy "
                                      f"{', '.join(sorted(distinct)) or 'n/a'} on all nodes")


async def claim(run: CheckRun, node: str, alias: str) -> str:
    """Let the harness's MPIO claim ``alias`` on ``node`` (every path logged in and proven
    one disk by VPD 83h) and read one block through its policy; "" or what went wrong."""
    from harness.errors import SplitbrainError

    device = run.site.initiator(node).multipath(alias)
    try:
        await device.open()
        healthy = [p.name for p in device.paths if p.state.healthy]
        done = await device.read(0, 1)
        run.step(f"{node}: MPIO claimed {alias} as one disk over {len(healthy)} path(s) "
                 f"(identity {', '.join(device.identity)}), policy {device.policy.name}; "
                 f"READ(16) LBA 0 went through {done.path}")
        return ""
    except SplitbrainError as exc:
        return f"{node}: MPIO does not claim {alias} as one disk: {' '.join(str(exc).split())}"
    finally:
        await device.close()


def node_policies(run: CheckRun) -> dict[str, str]:
    """Each cluster node's MPIO load-balance policy: MSDSM's on a real Windows node,
    the harness initiator's (the inventory's ``[mpio] policy``) for an emulated node."""
    site = run.site
    out: dict[str, str] = {}
    for node in site.cluster_nodes:
        host = site.inventory.host(node)
        if site.is_lab or host.access is None or host.access.os != "windows":
            out[node] = f"{site.inventory.mpio.policy} (harness initiator, [mpio] policy)"
            continue
        with site.remote(node) as remote:
            policy = remote.msdsm_default_policy()
        run.step(f"{node}: Get-MSDSMGlobalDefaultLoadBalancePolicy -> {policy}")
        out[node] = MSDSM_POLICIES.get(policy, policy)
    return out


MSDSM_POLICIES = {"RR": "round-robin", "FOO": "failover-only", "LQD": "least-queue-depth",
                  "LB": "least-blocks", "None": "none"}
