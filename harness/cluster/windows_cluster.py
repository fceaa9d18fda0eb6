"""A real Windows failover cluster behind the same verbs as the lab's: ``sut.cluster`` on a site.

The cmdlets run on one cluster node through the Windows driver
(``harness.remote.windows``; a password logon there, since the cluster cmdlets
cannot take a second hop): ``Get-ClusterNode`` for the nodes and their state,
``Get-ClusterGroup`` for the VM roles (groups of type ``VirtualMachine``) and
their owners, ``Move-ClusterVirtualMachineRole -MigrationType Live|Quick`` to
move one. Bad requests are refused before anything is sent, in the lab's words.

What the controller can measure here is the move's total time (the cmdlet
waits for the move); the blackout is the hypervisor's, not visible from
outside, so reports say it was not measured (the guest workload's own history
shows the I/O gap). Failing a node is ``Stop-Computer`` on it, refused unless
the inventory says ``destructive = true``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from harness.cluster.errors import ClusterError
from harness.cluster.lab_cluster import NodeStatus, RoleStatus
from harness.cluster.migration import MigrationReport

VM_GROUP = "VirtualMachine"


class WindowsCluster:
    """Cluster verbs over the cmdlets, run on ``run_on`` (a cluster node's driver)."""

    def __init__(self, node_names: Sequence[str], driver: Callable[[str], Any], *,
                 run_on: str | None = None, destructive: bool = False) -> None:
        if not node_names:
            raise ClusterError("the inventory has no cluster-node host; add the Hyper-V nodes")
        self.node_names = list(node_names)
        self.driver = driver
        self.run_on = run_on or self.node_names[0]
        self.destructive = destructive

    @property
    def host(self) -> Any:
        return self.driver(self.run_on)

    def nodes(self) -> list[NodeStatus]:
        groups = self._vm_groups()
        return [NodeStatus(n.name, n.state, None,
                           tuple(sorted(g.name for g in groups if g.owner_node == n.name)))
                for n in self.host.cluster_nodes()]

    def _vm_groups(self) -> list[Any]:
        return [g for g in self.host.cluster_groups() if g.group_type == VM_GROUP]

    def roles(self) -> list[RoleStatus]:
        return [RoleStatus(g.name, g.owner_node or None, g.state) for g in self._vm_groups()]

    def owner(self, vm: str) -> str | None:
        return next((r.owner for r in self.roles() if r.name == vm), None)

    def move(self, vm: str, node: str, kind: str = "live") -> MigrationReport:
        if kind not in ("live", "quick"):
            raise ClusterError(f"migration type {kind!r} is not Live or Quick")
        states = {n.name: n.state for n in self.host.cluster_nodes()}
        if node not in states:
            raise ClusterError(f"{node!r} is not a node of this cluster (nodes: "
                               f"{', '.join(sorted(states))})")
        if states[node] != "Up":
            raise ClusterError(f"cluster node {node} is {states[node]}; bring it up or pick "
                               "another node")
        role = next((r for r in self.roles() if r.name == vm), None)
        if role is None:
            raise ClusterError(f"no VM role {vm!r} in the cluster (Get-ClusterGroup lists "
                               f"{', '.join(r.name for r in self.roles()) or 'none'})")
        if role.owner == node:
            raise ClusterError(f"VM {vm} already runs on {node}; pick the other node")
        started = time.monotonic_ns()
        group = self.host.move_vm(vm, node, migration="Live" if kind == "live" else "Quick")
        finished = time.monotonic_ns()
        if group.owner_node != node:
            raise ClusterError(f"Move-ClusterVirtualMachineRole returned {vm} on "
                               f"{group.owner_node}, not {node}")
        return MigrationReport(vm, kind, str(role.owner), node, started, -1, -1, finished,
                               announce="done by Hyper-V (not observed from the controller)")

    def fail_node(self, node: str) -> None:
        if node not in self.node_names:
            raise ClusterError(f"{node!r} is not a node of this cluster")
        if not self.destructive:
            raise ClusterError(f"failing {node} powers it off; refused: the inventory does not "
                               "say destructive = true")
        self.driver(node).stop_computer()

    def stop(self) -> None:
        """Nothing to stop: the cluster is the site's."""
