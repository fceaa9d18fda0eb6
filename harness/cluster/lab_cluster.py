"""The lab's failover cluster, driven from the controller: what ``sut.cluster`` is on a lab.

``LabCluster`` starts one cluster service (``harness.cluster.node``) per
cluster node of the inventory, each with its own initiator identity (the
node's IQN) and MPIO devices to the quorum and vm-storage HA devices, points
the lab's ``heartbeat/<node>`` links at their heartbeat listeners, and then
speaks the failover cluster's verbs in its words:

- ``nodes()``: each node ``Up`` (its service answers and has quorum) or
  ``Down``; ``roles()``: each VM role, its owner node and ``Online``/``Offline``;
- ``add_vm``: a new VM role on a node, its virtual disk the next free region of
  the CSV (zeroed, so the checker knows its initial content);
- ``move(vm, node, "live"|"quick")``: a live migration (skeleton on the
  destination, pre-copy from the source, ``harness.cluster.migration``) or a
  quick migration (save to the CSV-side state file, start from it); returns the
  ``MigrationReport`` with blackout (downtime) and total time;
- ``fail_node``: kill the node's service and its VMs (one process group); the
  survivor restarts its roles from their disk state.

Bad requests (a node that is not in the cluster or is down, a VM that does not
exist, a VM already on that node) raise ``ClusterError`` in one line before
anything moves, so the VM keeps running where it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.cluster.control import ControlError, read_ready, request
from harness.cluster.errors import ClusterConfigError, ClusterError, MigrationFailed
from harness.cluster.membership import HeartbeatSettings
from harness.cluster.migration import HYPER_V_PASS_LIMIT, MigrationReport

NODE_START_S = 60.0
MIB = 1 << 20
CLUSTER_PORT = 3343  # the Windows cluster service's port, for heartbeats in the netns lab


@dataclass(frozen=True)
class VmSpec:
    """A VM role: memory, how fast its guest dirties it, its disk, its workload."""

    name: str
    memory_mib: int = 32
    dirty_rate: float = 2000.0  # pages per second
    disk_mib: int = 8
    workload: dict[str, Any] = field(default_factory=lambda: {
        "writers": 2, "queue_depth": 2, "block_sizes": [4096], "rate": 200.0})
    seed: int = 0


@dataclass(frozen=True)
class NodeStatus:
    name: str
    state: str  # "Up" or "Down"
    witness_owner: bool | None = None
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoleStatus:
    name: str
    owner: str | None
    state: str  # "Online" or "Offline"


@dataclass(frozen=True)
class MigrationSettings:
    pass_limit: int = HYPER_V_PASS_LIMIT
    stop_pages: int = 64
    link_rate_bps: float | None = None

    def __post_init__(self) -> None:
        if self.pass_limit < 1 or self.stop_pages < 0:
            raise ClusterConfigError(
                f"pass limit {self.pass_limit} must be at least 1 and stop pages "
                f"{self.stop_pages} not negative (Hyper-V: 5 passes)")


def _spec_dict(spec: Any) -> dict[str, Any]:
    return {"host": spec.host, "port": spec.port, "target": spec.target, "lun": spec.lun,
            "initiator": spec.initiator, "name": spec.name}


class LabCluster:
    """The cluster nodes of a lab inventory as running cluster services."""

    def __init__(self, sut: Any, root: str | os.PathLike[str], *,
                 heartbeat: HeartbeatSettings | None = None,
                 migration: MigrationSettings | None = None) -> None:
        from harness.lab.inventory import HostRole, Purpose

        self.sut = sut
        self.root = Path(root)
        settings = sut.inventory.cluster  # [cluster] of the inventory, Windows defaults
        self.heartbeat = heartbeat or HeartbeatSettings(settings.same_subnet_delay_s,
                                                        settings.same_subnet_threshold)
        self.migration = migration or MigrationSettings(
            pass_limit=settings.live_migration_pass_limit)
        self.node_names = [h.name for h in sut.inventory.hosts_with_role(HostRole.CLUSTER_NODE)]
        by_purpose = {d.purpose: d.alias for d in sut.inventory.devices.values()}
        try:
            self.witness_device = by_purpose[Purpose.QUORUM]
            self.csv_device = by_purpose[Purpose.VM_STORAGE]
        except KeyError as exc:
            raise ClusterConfigError(
                f"{sut.inventory.path} needs a quorum and a vm-storage device for a cluster "
                f"(missing purpose {exc}); add one under [devices]") from None
        self.vms: dict[str, dict[str, Any]] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._ready: dict[str, dict[str, Any]] = {}
        self.netns = sut.lab is not None and hasattr(sut.lab, "namespace")
        self._socket_dir: str | None = None

    def _address(self, node: str, role: str) -> str:
        from harness.lab.inventory import NetworkRole

        host = self.sut.inventory.host(node)
        for net, address in sorted(host.addresses.items()):
            if self.sut.inventory.network(net).has_role(NetworkRole(role)):
                return str(address)
        raise ClusterConfigError(f"cluster node {node} has no address on a {role} network; "
                                 "add one in the inventory")

    # -- lifecycle -------------------------------------------------------------

    def _device_config(self, node: str, alias: str) -> dict[str, Any]:
        initiator = self.sut.initiator(node)
        return {"paths": [_spec_dict(s) for s in initiator.path_specs(alias)],
                "timers": self.sut.mpio_timers().to_mapping()}

    def _heartbeat_links(self) -> dict[str, Any]:
        record = self.sut.lab.record()
        return {link.host: link for link in record.links.values()
                if link.purpose == "cluster-heartbeat"}

    def start(self) -> None:
        """Start every node's cluster service and wait until all are Up and hear each other."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.clear_reservations()
        if self.netns:  # nodes in their namespaces: heartbeats on the heartbeat bridge
            import tempfile

            self._socket_dir = tempfile.mkdtemp(prefix="sbc-")  # short paths for AF_UNIX
            links = {n: self._address(n, "heartbeat") for n in self.node_names}
        else:
            links = self._heartbeat_links()
        missing = [n for n in self.node_names if n not in links]
        if missing:
            raise ClusterConfigError(
                f"cluster node(s) {', '.join(missing)} have no heartbeat link in the lab; give "
                "them an address on the heartbeat network in the inventory")
        try:
            for node in self.node_names:  # one after the other: the first owns the witness
                self._start_node(node, links)
            self._wait(lambda: all(
                set(self._status(n)["up"]) == set(self.node_names) for n in self.node_names),
                "every node to hear every other", NODE_START_S)
        except BaseException:
            self.stop()
            raise

    def _start_node(self, node: str, links: dict[str, Any]) -> None:
        ndir = self.root / node
        ndir.mkdir(exist_ok=True)
        config: dict[str, Any] = {
            "name": node, "state_dir": str(ndir),
            "heartbeat": {"delay_s": self.heartbeat.delay_s,
                          "threshold": self.heartbeat.threshold},
            "witness": self._device_config(node, self.witness_device),
            "csv": self._device_config(node, self.csv_device),
        }
        if self.netns:
            from harness.lab.inventory import NetworkRole

            config.update(
                peers={p: [links[p], CLUSTER_PORT] for p in self.node_names if p != node},
                heartbeat_listen=[links[node], CLUSTER_PORT],
                migration_host=self._address(node, "public"), socket_dir=self._socket_dir,
                announce_iface=next(
                    self.sut.lab.record().extra["interfaces"][net]
                    for net in sorted(self.sut.inventory.host(node).addresses)
                    if self.sut.inventory.network(net).has_role(NetworkRole.PUBLIC)))
        else:
            config["peers"] = {p: list(links[p].listen) for p in self.node_names if p != node}
        (ndir / "node.json").write_text(json.dumps(config))
        ready = ndir / "ready.json"
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "harness.cluster.node", "--config",
                str(ndir / "node.json"), "--ready", str(ready)]
        log = (ndir / "node.log").open("ab")
        options: dict[str, Any] = {"stdout": log, "stderr": log, "stdin": subprocess.DEVNULL,
                                   "start_new_session": True, "cwd": str(ndir)}
        proc = (self.sut.lab.namespace(node).popen(argv, **options) if self.netns
                else subprocess.Popen(argv, **options))
        log.close()
        self._procs[node] = proc

        def found() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise ClusterError(f"cluster service of {node} exited with {proc.returncode} "
                                   f"while starting; see {ndir / 'node.log'}")
            return read_ready(ready)

        endpoint = self._wait(found, f"the cluster service of {node}", NODE_START_S)
        endpoint["name"] = f"cluster service of {node}"
        self._ready[node] = endpoint
        if not self.netns:
            self.sut.lab.retarget(links[node].name, "127.0.0.1", int(endpoint["heartbeat_port"]))

    def stop(self) -> None:
        """Stop every node's service and VMs; leave no reservation on the lab's devices."""
        for node, proc in self._procs.items():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            self._ready.pop(node, None)
        self._procs.clear()
        if self._socket_dir:
            import shutil

            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        self.clear_reservations()

    def clear_reservations(self) -> None:
        """CLEAR the persistent reservations of the witness and the CSV (as
        ``Clear-ClusterDiskReservation`` does), so the lab's devices are free again."""
        import asyncio

        from harness.cluster.quorum import node_key

        async def clear(alias: str) -> None:
            async with self.sut.multipath(alias) as dev:
                await dev.pr.register(node_key("splitbrain-controller"))
                await dev.pr.clear()

        for alias in (self.witness_device, self.csv_device):
            asyncio.run(clear(alias))

    @staticmethod
    def _wait(probe: Any, what: str, deadline_s: float) -> Any:
        try:
            return Retrying(stop=stop_after_delay(deadline_s), wait=wait_fixed(0.1),
                            retry=retry_if_result(lambda r: r is None or r is False))(probe)
        except RetryError:
            raise ClusterError(f"gave up after {deadline_s:.0f} s waiting for {what}") from None

    # -- state -----------------------------------------------------------------

    def _status(self, node: str) -> dict[str, Any]:
        endpoint = self._ready.get(node)
        proc = self._procs.get(node)
        if endpoint is None or proc is None or proc.poll() is not None:
            return {"node": node, "quorum": False, "up": [], "roles": {}}
        try:
            return request(endpoint, "status", timeout_s=10.0)
        except ControlError:
            return {"node": node, "quorum": False, "up": [], "roles": {}}

    def nodes(self) -> list[NodeStatus]:
        out = []
        for node in self.node_names:
            s = self._status(node)
            out.append(NodeStatus(node, "Up" if s["quorum"] else "Down", s.get("witness_owner"),
                                  tuple(sorted(v for v, r in s["roles"].items() if r["running"]))))
        return out

    def owner(self, vm: str) -> str | None:
        for node in self.node_names:
            r = self._status(node)["roles"].get(vm)
            if r and r["running"]:
                return node
        return None

    def roles(self) -> list[RoleStatus]:
        owners = {}
        for node in self.node_names:
            for vm, r in self._status(node)["roles"].items():
                if r["running"]:
                    owners[vm] = node
        return [RoleStatus(vm, owners.get(vm), "Online" if vm in owners else "Offline")
                for vm in self.vms]

    def history_dir(self, vm: str) -> Path:
        return Path(self._vm(vm)["config"]["history_dir"])

    def disk_region(self, vm: str) -> tuple[int, int]:
        d = self._vm(vm)["config"]["disk"]
        return int(d["offset"]), int(d["length"])

    # -- requests ----------------------------------------------------------------

    def _vm(self, vm: str) -> dict[str, Any]:
        from harness.lab.toml_source import did_you_mean

        if vm not in self.vms:
            raise ClusterError(f"no VM role {vm!r} in the cluster ({did_you_mean(vm, self.vms)})")
        return self.vms[vm]

    def _up_node(self, node: str) -> dict[str, Any]:
        from harness.lab.toml_source import did_you_mean

        if node not in self.node_names:
            raise ClusterError(f"{node!r} is not a node of this cluster "
                               f"({did_you_mean(node, self.node_names)})")
        status = self._status(node)
        if not status["quorum"]:
            raise ClusterError(f"cluster node {node} is Down; bring it up or pick another node "
                               f"({', '.join(n.name for n in self.nodes() if n.state == 'Up')})")
        return self._ready[node]

    def add_vm(self, spec: VmSpec, node: str) -> RoleStatus:
        """Create VM role ``spec.name`` on ``node`` and start it."""
        if spec.name in self.vms:
            raise ClusterError(f"a VM role named {spec.name!r} already exists; pick another name")
        endpoint = self._up_node(node)
        offset = MIB + sum(v["config"]["disk"]["length"] for v in self.vms.values())
        size = self.sut.device(self.csv_device).size
        if offset + spec.disk_mib * MIB > size:
            raise ClusterConfigError(
                f"VM {spec.name}'s {spec.disk_mib} MiB disk does not fit on the "
                f"{size // MIB} MiB CSV {self.csv_device}; use smaller VM disks")
        hdir = self.root / "vms" / spec.name
        hdir.mkdir(parents=True, exist_ok=True)
        config = {
            "name": spec.name, "memory_bytes": spec.memory_mib * MIB, "page_size": 4096,
            "dirty_rate": spec.dirty_rate, "seed": spec.seed,
            "disk": {"offset": offset, "length": spec.disk_mib * MIB},
            "workload": {"seed": spec.seed, **spec.workload},
            "history_dir": str(hdir), "generation": int.from_bytes(os.urandom(4), "little"),
            "mode": "start",
        }
        if self.netns:  # the VM's own address and MAC, announced after each live migration
            from harness.lab.inventory import NetworkRole

            public = next(n for n in self.sut.inventory.networks.values()
                          if n.has_role(NetworkRole.PUBLIC))
            number = len(self.vms) + 1
            config["address"] = str(public.cidr.network_address + 100 + number)
            config["mac"] = f"02:5b:00:00:00:{number:02x}"
        self.vms[spec.name] = {"config": config}
        try:
            request(endpoint, "start_vm", config=config, timeout_s=90.0)
        except ControlError as exc:
            del self.vms[spec.name]
            raise ClusterError(f"VM {spec.name} did not start on {node}: {exc}") from None
        return RoleStatus(spec.name, node, "Online")

    def _vm_endpoint(self, vm: str, node: str) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            role = self._status(node)["roles"].get(vm)
            if not role or not role["running"]:
                raise ClusterError(f"VM {vm} is not running on {node}")
            return role["ready"]  # None for a moment: the node is still recording it

        return self._wait(ready, f"the node {node} to record VM {vm}", 10.0)

    def vm_status(self, vm: str) -> dict[str, Any]:
        """What the VM's process says of itself: state, segment, workload counts (``ops``)."""
        self._vm(vm)
        owner = self.owner(vm)
        if owner is None:
            raise ClusterError(f"VM {vm} is not running on any node")
        return request(self._vm_endpoint(vm, owner), "status")

    def wait(self, probe: Any, what: str, deadline_s: float = 30.0) -> Any:
        """Wait until ``probe()`` returns something true (tenacity, explicit deadline)."""
        return self._wait(probe, what, deadline_s)

    def move(self, vm: str, node: str, kind: str = "live") -> MigrationReport:
        """Move VM role ``vm`` to ``node`` by ``kind`` ("live" or "quick") migration."""
        if kind not in ("live", "quick"):
            raise ClusterError(f"migration type {kind!r} is not Live or Quick")
        entry = self._vm(vm)
        dest = self._up_node(node)
        owner = self.owner(vm)
        if owner is None:
            raise ClusterError(f"VM {vm} is not running on any node; start it before moving it")
        if owner == node:
            raise ClusterError(f"VM {vm} already runs on {node}; pick the other node")
        source = self._vm_endpoint(vm, owner)
        if kind == "quick":
            return self._quick(vm, owner, node, entry, source, dest)
        started = time.monotonic_ns()
        try:
            skeleton = request(dest, "start_vm", config={**entry["config"], "mode": "incoming"},
                               timeout_s=90.0)["vm"]
        except ControlError as exc:
            raise MigrationFailed(f"live migration of {vm} to {node} failed: no skeleton VM "
                                  f"({exc}); the VM keeps running on {owner}") from None
        host, port = skeleton["migration"]
        m = self.migration
        try:
            answer = request(source, "migrate", host=host, port=port, destination=node,
                             pass_limit=m.pass_limit, stop_pages=m.stop_pages,
                             link_rate_bps=m.link_rate_bps, timeout_s=300.0)
        except ControlError as exc:
            with contextlib.suppress(ControlError):
                request(dest, "stop_vm", vm=vm, timeout_s=30.0)
            raise MigrationFailed(str(exc)) from None
        report = MigrationReport.from_json(answer["report"])
        report.started_ns = started
        return report

    def _quick(self, vm: str, owner: str, node: str, entry: dict[str, Any],
               source: dict[str, Any], dest: dict[str, Any]) -> MigrationReport:
        started = time.monotonic_ns()
        state_file = self.root / "vms" / f"{vm}.vmrs"
        saved = request(source, "save", path=str(state_file), timeout_s=120.0)
        try:
            ready = request(dest, "start_vm", timeout_s=90.0,
                            config={**entry["config"], "mode": "restore",
                                    "restore_file": str(state_file)})["vm"]
        except ControlError as exc:
            raise MigrationFailed(f"quick migration of {vm} to {node} failed after the save "
                                  f"({exc}); start it from {state_file}") from None
        return MigrationReport(vm, "quick", owner, node, started, int(saved["pause_ns"]),
                               int(ready["resume_ns"]), time.monotonic_ns(),
                               bytes_copied=int(saved["memory_bytes"]),
                               memory_bytes=int(saved["memory_bytes"]),
                               announce="Not Applicable: a quick migration restarts the VM")

    def stop_vm(self, vm: str) -> None:
        """Shut VM ``vm`` down where it runs (its I/O drained, its sessions logged out)."""
        self._vm(vm)
        owner = self.owner(vm)
        if owner is None:
            raise ClusterError(f"VM {vm} is not running on any node")
        request(self._ready[owner], "stop_vm", vm=vm, timeout_s=60.0)
        self._wait(lambda: self.owner(vm) is None, f"VM {vm} to stop", 30.0)

    def check_vm(self, vm: str, *, handed_over: set[int] | None = None,
                 errors_allowed: bool = True, budget: dict[str, float] | None = None) -> Any:
        """Every checker over the VM's joined history, its virtual disk read back through
        every path of the CSV; returns the ``RunVerdict`` (handover verdict included).

        ``handed_over``: the segments (in order, from 0) the VM left by migration; by
        default every segment but the last. ``budget``: the inventory's limits for the
        timing checker (the whole run's longest I/O pause, errors the caller saw).
        Stop the VM first."""
        import asyncio

        from harness.checks.compose import check_run
        from harness.cluster.guest import VirtualDisk, segments
        from harness.cluster.history import check_handover, load_vm_history
        from harness.initiator.mpio.session_link import SessionConnector
        from harness.workload.iscsi_device import IscsiDevice

        history = load_vm_history(self.history_dir(vm))
        if handed_over is None:
            handed_over = set(range(len(segments(self.history_dir(vm))) - 1))
        offset, length = self.disk_region(vm)
        initiator = self.sut.initiator(self.node_names[0])
        specs = initiator.path_specs(self.csv_device)
        connector = SessionConnector.for_timers(self.sut.mpio_timers(),
                                                sock_factory=initiator.sock_factory)

        async def run() -> Any:
            opened = []
            try:
                for i, spec in enumerate(specs):
                    isid = 0x80 << 40 | 0x5C << 32 | (os.getpid() & 0xFFFF) << 16 | i
                    dev = await IscsiDevice.open(replace(spec, isid=isid), connector)
                    opened.append(dev)
                devices = {d.name: VirtualDisk(d, offset // d.block_size,
                                               length // d.block_size, f"{vm}@{d.name}")
                           for d in opened}
                verdict = await check_run(history, name=f"vm:{vm}", devices=devices,
                                          budget=budget)
            finally:
                for d in opened:
                    await d.close()
            verdict.verdicts.append(check_handover(history, handed_over=handed_over,
                                                   errors_allowed=errors_allowed))
            return verdict

        return asyncio.run(run())

    def fail_node(self, node: str) -> None:
        """Kill the node's cluster service and every VM it hosts (SIGKILL, one process group)."""
        if node not in self.node_names:
            raise ClusterError(f"{node!r} is not a node of this cluster")
        proc = self._procs.get(node)
        if proc is None or proc.poll() is not None:
            raise ClusterError(f"cluster node {node} is already Down")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def wait_role(self, vm: str, owner: str, deadline_s: float = 60.0) -> None:
        """Wait until ``vm`` is Online on ``owner`` (after a failover)."""
        self._wait(lambda: self.owner(vm) == owner, f"VM {vm} to come Online on {owner}",
                   deadline_s)

    def wait_node_state(self, node: str, state: str, deadline_s: float = 60.0) -> None:
        self._wait(lambda: next(n for n in self.nodes() if n.name == node).state == state,
                   f"cluster node {node} to be {state}", deadline_s)
