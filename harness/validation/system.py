"""Inventory, System Configuration, Hyper-V Configuration, Cluster Configuration: host facts.

These checks read the hosts themselves through the remote drivers
(``harness.remote``: ``WindowsHost`` PowerShell, ``LinuxHost`` shell): OS version
and edition, processor architecture, software updates, required services, the
Hyper-V role, the cluster's quorum. Nodes must match one another. The lab's
hosts are emulated (no operating system of their own, no Windows facts), so on
a lab every one of these is Not Applicable with that reason; a host the
inventory gives no ``access`` is named as not read. A host that does not answer
fails the check with the driver's one line, and the other hosts still count.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from harness.errors import SplitbrainError
from harness.validation.model import CheckRun, Outcome, check, judged, not_applicable

INVENTORY = "Inventory"
SYSTEM = "System Configuration"
HYPERV = "Hyper-V Configuration"
CLUSTER = "Cluster Configuration"

LAB_REASON = ("the lab's hosts are emulated by harness processes: they have no operating "
              "system of their own and no Windows facts to read")
#: services a cluster node needs, by OS
REQUIRED_SERVICES = {"windows": ("ClusSvc", "MSiSCSI"), "linux": ("iscsid", "multipathd")}


@dataclass
class HostFacts:
    host: str
    os: str  # "windows" | "linux"
    version: str = ""
    edition: str = ""
    architecture: str = ""
    updates: tuple[str, ...] = ()
    services: dict[str, str] = field(default_factory=dict)
    #: how each service's state was read (e.g. systemctl, or its process without systemd)
    service_reads: dict[str, str] = field(default_factory=dict)
    features: dict[str, str] = field(default_factory=dict)
    error: str = ""


def read_facts(site: Any, name: str, *, updates: bool = False,
               services: bool = False) -> HostFacts:
    entry = site.inventory.host(name)
    os_name = entry.access.os
    facts = HostFacts(name, os_name)
    try:
        with site.remote(name) as remote:
            if os_name == "windows":
                f = remote.facts()
                facts.version, facts.edition = f"{f.version} (build {f.build_number})", f.caption
                facts.architecture, facts.features = f.architecture, dict(f.features)
                if updates:
                    rows = remote.powershell("Get-HotFix | Select-Object HotFixID",
                                             operation="Get-HotFix")
                    facts.updates = tuple(sorted(str(r.get("HotFixID")) for r in rows))
                if services:
                    for svc in entry.services or REQUIRED_SERVICES["windows"]:
                        try:
                            facts.services[svc] = remote.service(svc).status
                        except SplitbrainError:
                            facts.services[svc] = "not installed"
            else:
                f = remote.facts()
                facts.version = f"{f.os_version} (kernel {f.kernel})"
                facts.edition, facts.architecture = f.os_name, f.architecture
                if updates:
                    pkgs = remote.packages()
                    facts.updates = tuple(sorted(f"{k}={v}" for k, v in pkgs.items()))
                if services:
                    for svc in entry.services or REQUIRED_SERVICES["linux"]:
                        facts.services[svc], facts.service_reads[svc] = \
                            remote.service_state(svc)
    except SplitbrainError as exc:
        facts.error = " ".join(str(exc).split())
    return facts


async def gather_facts(run: CheckRun, hosts: list[str], **what: bool
                       ) -> tuple[list[HostFacts], list[str], Outcome | None]:
    """Facts of ``hosts`` that have access (in parallel), hosts not read, or why none."""
    site = run.site
    if site.is_lab:
        return [], [], not_applicable(LAB_REASON)
    reachable = [h for h in hosts if site.inventory.host(h).access is not None]
    skipped = [f"{h}: no access in the inventory" for h in hosts if h not in reachable]
    if not reachable:
        return [], skipped, not_applicable("no host has access in the inventory: "
                                           + "; ".join(skipped))
    facts = await asyncio.gather(*(asyncio.to_thread(read_facts, site, h, **what)
                                   for h in reachable))
    for f in facts:
        run.step(f"{f.host}: " + (f"error: {f.error}" if f.error else
                                  f"{f.edition} {f.version} {f.architecture}"))
    return list(facts), skipped, None


def unreachable(facts: list[HostFacts]) -> list[str]:
    return [f"{f.host}: {f.error}" for f in facts if f.error]


def all_hosts(run: CheckRun) -> list[str]:
    return sorted(run.site.inventory.hosts)


def _same(facts: list[HostFacts], attr: str, what: str) -> list[str]:
    values = {f.host: getattr(f, attr) for f in facts if not f.error}
    if len(set(values.values())) > 1:
        return [f"the nodes differ in {what}: "
                + ", ".join(f"{h} {v!r}" for h, v in sorted(values.items()))]
    return []


@check(INVENTORY, "List Operating System Information",
       "List the operating system, version and architecture of every host.")
async def list_os_information(run: CheckRun) -> Outcome:
    facts, skipped, none = await gather_facts(run, all_hosts(run))
    if none:
        return none
    run.add("Operating systems", "\n".join(
        f"{f.host}: {f.edition} {f.version} {f.architecture}" for f in facts if not f.error))
    return judged(unreachable(facts), skipped, f"{len(facts)} host(s) listed")


@check(INVENTORY, "List Software Updates",
       "List the software updates (Windows hot fixes, Linux packages) installed on each node.")
async def list_software_updates(run: CheckRun) -> Outcome:
    facts, skipped, none = await gather_facts(run, run.site.cluster_nodes, updates=True)
    if none:
        return none
    for f in facts:
        if not f.error:
            run.add(f"{f.host} updates", "\n".join(f.updates) or "none")
            run.number(f"{f.host}.updates", len(f.updates))
    return judged(unreachable(facts), skipped, f"{len(facts)} node(s) listed")


@check(SYSTEM, "Validate Operating System Version",
       "Validate that every cluster node runs the same operating system version.")
async def validate_os_version(run: CheckRun) -> Outcome:
    facts, skipped, none = await gather_facts(run, run.site.cluster_nodes)
    if none:
        return none
    return judged(unreachable(facts) + _same(facts, "version", "OS version"), skipped,
                  "every node runs the same OS version")


@check(SYSTEM, "Validate Operating System Edition",
       "Validate that every cluster node runs the same operating system edition.")
async def validate_os_edition(run: CheckRun) -> Outcome:
    facts, skipped, none = await gather_facts(run, run.site.cluster_nodes)
    if none:
        return none
    return judged(unreachable(facts) + _same(facts, "edition", "OS edition"), skipped,
                  "every node runs the same OS edition")


@check(SYSTEM, "Validate Same Processor Architecture",
       "Validate that every cluster node has the same processor architecture.")
async def validate_processor_architecture(run: CheckRun) -> Outcome:
    facts, skipped, none = await gather_facts(run, run.site.cluster_nodes)
    if none:
        return none
    return judged(unreachable(facts) + _same(facts, "architecture", "processor architecture"),
                  skipped, "every node has the same processor architecture")


@check(SYSTEM, "Validate Software Update Levels",
       "Validate that every cluster node has the same software updates installed.")
async def validate_update_levels(run: CheckRun) -> Outcome:
    facts, skipped, none = await gather_facts(run, run.site.cluster_nodes, updates=True)
    if none:
        return none
    ok = [f for f in facts if not f.error]
    warnings = list(skipped)
    if ok:
        union = set().union(*(set(f.updates) for f in ok))
        for f in ok:
            missing = sorted(union - set(f.updates))
            if missing:
                warnings.append(f"{f.host} lacks {len(missing)} update(s) other nodes have "
                                f"(e.g. {', '.join(missing[:3])})")
    return judged(unreachable(facts), warnings, "every node has the same updates")


@check(SYSTEM, "Validate Required Services",
       "Validate that the services a cluster node needs run on every node (Windows: ClusSvc, "
       "MSiSCSI; Linux: iscsid, multipathd; or the host's services in the inventory; on a "
       "Linux host whose init is not systemd, by its running process).")
async def validate_required_services(run: CheckRun) -> Outcome:
    facts, skipped, none = await gather_facts(run, run.site.cluster_nodes, services=True)
    if none:
        return none
    problems = unreachable(facts)
    for f in facts:
        for svc, state in f.services.items():
            how = f.service_reads.get(svc)
            run.step(f"{f.host}: {svc} {state}" + (f" [{how}]" if how else ""))
            if state.split(" (")[0].lower() not in ("running", "active"):
                problems.append(f"{f.host}: service {svc} is {state}")
    return judged(problems, skipped, "every required service runs on every node")


@check(HYPERV, "Validate Hyper-V Role Installed",
       "Validate that the Hyper-V role is installed on every cluster node.")
async def validate_hyperv_role(run: CheckRun) -> Outcome:
    facts, skipped, none = await gather_facts(run, run.site.cluster_nodes)
    if none:
        return none
    windows = [f for f in facts if f.os == "windows"]
    if not windows:
        return not_applicable("no cluster node runs Windows: Hyper-V does not apply")
    problems = unreachable(facts)
    for f in windows:
        if not f.error and f.features.get("Hyper-V") != "Installed":
            problems.append(f"{f.host}: Hyper-V is {f.features.get('Hyper-V') or 'absent'}, "
                            "not Installed")
    return judged(problems, skipped, "Hyper-V installed on every node")


def _windows_nodes(site: Any) -> list[str]:
    return [n for n in site.cluster_nodes if site.inventory.host(n).access is not None
            and site.inventory.host(n).access.os == "windows"]


def _cluster_state(site: Any, node: str) -> tuple[list[Any], list[Any]]:
    with site.remote(node) as remote:
        return remote.cluster_nodes(), remote.cluster_groups()


async def cluster_state(run: CheckRun) -> tuple[list[Any], list[Any], Outcome | None]:
    """(cluster nodes, clustered roles) from the first Windows cluster node, or why not."""
    site = run.site
    if site.is_lab:
        return [], [], not_applicable(LAB_REASON + "; the lab runs no Windows failover "
                                                   "cluster")
    nodes = _windows_nodes(site)
    if not nodes:
        return [], [], not_applicable("no Windows cluster node with access: no failover "
                                      "cluster to ask")
    try:
        members, groups = await asyncio.to_thread(_cluster_state, site, nodes[0])
    except SplitbrainError as exc:
        return [], [], judged([f"{nodes[0]}: {' '.join(str(exc).split())}"], [], "")
    for m in members:
        run.step(f"{nodes[0]}: Get-ClusterNode -> {m.name} {m.state}")
    for g in groups:
        run.step(f"{nodes[0]}: Get-ClusterGroup -> {g.name} ({g.group_type}) {g.state} on "
                 f"{g.owner_node}")
    return members, groups, None


@check(CLUSTER, "List Clustered Roles",
       "List the cluster's roles (groups), their type, state and owner node.")
async def list_clustered_roles(run: CheckRun) -> Outcome:
    members, groups, none = await cluster_state(run)
    if none:
        return none
    run.add("Clustered roles", "\n".join(f"{g.name} ({g.group_type}): {g.state} on "
                                          f"{g.owner_node}" for g in groups) or "none")
    return judged([], [], f"{len(groups)} role(s) on {len(members)} node(s)")


@check(CLUSTER, "Validate Resource Status",
       "Validate that every cluster node is Up and every clustered role is Online.")
async def validate_resource_status(run: CheckRun) -> Outcome:
    members, groups, none = await cluster_state(run)
    if none:
        return none
    problems = [f"role {g.name} is {g.state}" for g in groups if g.state == "Failed"]
    warnings = [f"node {m.name} is {m.state}" for m in members if m.state != "Up"]
    warnings += [f"role {g.name} is {g.state}" for g in groups
                 if g.state not in ("Online", "Failed")]
    return judged(problems, warnings, f"{len(members)} node(s) Up, {len(groups)} role(s) "
                                      "Online")


def _quorum(site: Any, node: str) -> dict[str, str]:
    with site.remote(node) as remote:
        rows = remote.powershell(
            "Get-ClusterQuorum | Select-Object @{n='Type';e={[string]$_.QuorumType}}, "
            "@{n='Resource';e={[string]$_.QuorumResource}}", operation="Get-ClusterQuorum")
    return dict(rows[0]) if rows else {}


@check(CLUSTER, "Validate Quorum Configuration",
       "Validate that the cluster has a quorum configuration with a witness (the seed's disk "
       "witness on the quorum device).")
async def validate_quorum_configuration(run: CheckRun) -> Outcome:
    site = run.site
    if site.is_lab:
        return not_applicable(LAB_REASON + "; the lab runs no Windows failover cluster")
    nodes = _windows_nodes(site)
    if not nodes:
        return not_applicable("no Windows cluster node with access: no failover cluster to ask")
    try:
        quorum = await asyncio.to_thread(_quorum, site, nodes[0])
    except SplitbrainError as exc:
        return judged([f"{nodes[0]}: {' '.join(str(exc).split())}"], [], "")
    run.step(f"{nodes[0]}: Get-ClusterQuorum -> {quorum}")
    if not quorum.get("Resource"):
        return judged([], [f"quorum type {quorum.get('Type')} has no witness"], "")
    return judged([], [], f"quorum {quorum.get('Type')} with witness {quorum.get('Resource')}")
