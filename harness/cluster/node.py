"""A cluster node's cluster service: membership, quorum, and the VM roles it hosts.

``python -m harness.cluster.node --config node.json --ready ready.json`` is the
lab's stand-in for the Windows cluster service on one cluster node (Demo1,
Demo2). It opens MPIO devices to the quorum (witness) and vm-storage (CSV) HA
devices with the node's own initiator identity, joins the witness arbitration
(``harness.cluster.quorum``), exchanges heartbeats with its peers
(``harness.cluster.membership``) and hosts VM role processes
(``harness.cluster.vm``) in its own process group, so killing the node kills
its VMs. When a peer goes silent it arbitrates: the winner fences the peer and
restarts the peer's roles from their disk state (cold start), the loser stops
its roles and its cluster service, as a Windows node that lost quorum does.

Control operations: ``status``, ``start_vm`` (config; returns the VM's control
endpoint, and its migration listener for an incoming skeleton), ``stop_vm``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tenacity import AsyncRetrying, RetryError, retry_if_result, stop_after_delay, wait_fixed

from harness.cluster.control import ControlServer, read_ready, request
from harness.cluster.errors import ClusterError
from harness.cluster.guest import open_csv
from harness.cluster.membership import HeartbeatEndpoint, HeartbeatSettings, Membership
from harness.cluster.quorum import DiskWitness, node_key
from harness.cluster.vm import die_with_parent

VM_START_S = 60.0


class ClusterService:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.name = str(config["name"])
        self.key = node_key(self.name)
        self.dir = Path(config["state_dir"])
        self.settings = HeartbeatSettings(**config.get("heartbeat", {}))
        peers = {p: (a[0], int(a[1])) for p, a in config.get("peers", {}).items()}
        self.membership = Membership(self.name, list(peers), self.settings)
        self.heartbeat = HeartbeatEndpoint(self.name, self.membership, peers, self.hosted_roles)
        self.roles: dict[str, dict[str, Any]] = {}
        self.quorum = True
        self.witness: DiskWitness | None = None
        self.stopped = asyncio.Event()
        self.events: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []

    def note(self, text: str) -> None:
        self.events.append(f"{time.monotonic_ns()} {text}")
        print(f"{self.name}: {text}", file=sys.stderr, flush=True)

    # -- startup ---------------------------------------------------------------

    async def start(self) -> None:
        w, c = self.config["witness"], self.config["csv"]
        witness = await open_csv(w["paths"], w.get("timers", {}), f"{self.name}:witness", None)
        csv = await open_csv(c["paths"], c.get("timers", {}), f"{self.name}:csv", None)
        self.witness = DiskWitness(self.name, witness.mpio, csv.mpio)
        await self.witness.join()
        await self.heartbeat.start(*self.config.get("heartbeat_listen", ("127.0.0.1", 0)))
        self._tasks = [asyncio.create_task(self._watch_peers()),
                       asyncio.create_task(self._watch_witness()),
                       asyncio.create_task(self._reap_roles())]

    # -- roles -----------------------------------------------------------------

    def hosted_roles(self) -> dict[str, Any]:
        """What our heartbeats say we host: running (not skeleton) VMs and their configs."""
        return {vm: r["config"] for vm, r in self.roles.items()
                if r["proc"].poll() is None and Path(r["config"]["running_file"]).exists()}

    async def start_vm(self, config: dict[str, Any]) -> dict[str, Any]:
        vm = str(config["name"])
        if not self.quorum:
            raise ClusterError(f"{self.name} has no quorum; it cannot host {vm}")
        old = self.roles.get(vm)
        if old is not None and old["proc"].poll() is None:
            if Path(old["config"]["running_file"]).exists():
                raise ClusterError(f"VM {vm} already runs on {self.name}")
            # it left this node (migrated away) and is cleaning up: let it finish
            try:
                await asyncio.to_thread(old["proc"].wait, 10)
            except subprocess.TimeoutExpired:
                old["proc"].kill()
        config = {**config, "node": self.name, "node_key": self.key, "csv": self.config["csv"],
                  "migration_host": self.config.get("migration_host", "127.0.0.1"),
                  "announce_iface": self.config.get("announce_iface")}
        vm_dir = self.dir / "vms"
        vm_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.monotonic_ns()
        cfg_file, ready = vm_dir / f"{vm}-{stamp}.json", vm_dir / f"{vm}-{stamp}.ready"
        config["running_file"] = str(vm_dir / f"{vm}-{stamp}.running")
        if self.config.get("socket_dir"):
            config["control_socket"] = str(Path(self.config["socket_dir"]) / f"{vm}-{stamp}.s")
        cfg_file.write_text(json.dumps(config))
        log = (self.dir / f"vm-{vm}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.cluster.vm", "--config", str(cfg_file),
             "--ready", str(ready)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        self.roles[vm] = {"config": config, "proc": proc, "ready": None}
        async def ready_or_none() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise ClusterError(f"VM {vm} exited with {proc.returncode} while starting on "
                                   f"{self.name}; see {self.dir / f'vm-{vm}.log'}")
            return read_ready(ready)

        try:
            found = await AsyncRetrying(stop=stop_after_delay(VM_START_S), wait=wait_fixed(0.05),
                                        retry=retry_if_result(lambda r: r is None))(ready_or_none)
        except RetryError:
            proc.kill()
            raise ClusterError(f"VM {vm} did not start on {self.name} in {VM_START_S:.0f} s; "
                               f"see {self.dir / f'vm-{vm}.log'}") from None
        found["name"] = f"VM {vm} on {self.name}"
        self.roles[vm]["ready"] = found
        self.note(f"VM {vm} started ({config.get('mode', 'start')})")
        return found

    def kill_roles(self) -> None:
        for vm, r in self.roles.items():
            if r["proc"].poll() is None:
                r["proc"].kill()
                self.note(f"VM {vm} stopped (no quorum)")
        for r in self.roles.values():
            with contextlib.suppress(Exception):
                r["proc"].wait(5)

    async def _reap_roles(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            for vm in [v for v, r in self.roles.items() if r["proc"].poll() is not None]:
                del self.roles[vm]

    # -- membership and quorum -------------------------------------------------

    async def _watch_peers(self) -> None:
        while True:
            await asyncio.sleep(self.settings.delay_s / 4)
            for peer in self.membership.newly_down(time.monotonic_ns()):
                self.note(f"{peer.name} missed {self.settings.threshold} heartbeats: down")
                assert self.witness is not None
                won = False
                with contextlib.suppress(Exception):
                    won = await self.witness.arbitrate(peer.name, self.settings.delay_s)
                for line in self.witness.log:
                    self.note(line)
                self.witness.log.clear()
                if not won:
                    await self.lose_quorum(f"lost the witness arbitration against {peer.name}")
                    return
                await self._fail_over(peer.roles, peer.name)

    async def _fail_over(self, roles: dict[str, Any], peer: str) -> None:
        for vm, config in roles.items():
            if vm in self.roles:
                continue
            try:
                await self.start_vm({**config, "mode": "start"})
                self.note(f"VM {vm} restarted here after {peer} went down")
            except ClusterError as exc:
                self.note(f"VM {vm} could not restart here: {exc}")

    async def _watch_witness(self) -> None:
        assert self.witness is not None
        while True:
            await asyncio.sleep(self.settings.delay_s)
            try:
                registered = await asyncio.wait_for(self.witness.registered(),
                                                    self.settings.delay_s * 4)
            except Exception:
                continue  # storage trouble is MPIO's to ride out, not a quorum verdict
            if not registered:
                await self.lose_quorum("its key is gone from the witness (fenced)")
                return

    async def lose_quorum(self, why: str) -> None:
        self.quorum = False
        self.note(f"lost quorum: {why}; stopping roles and the cluster service")
        self.kill_roles()
        self.stopped.set()

    # -- control ---------------------------------------------------------------

    async def op_status(self, _: dict[str, Any]) -> dict[str, Any]:
        holds = None
        if self.witness is not None:
            with contextlib.suppress(Exception):
                holds = await asyncio.wait_for(self.witness.holds_witness(), 2.0)
        return {"node": self.name, "quorum": self.quorum, "up": self.membership.up(),
                "witness_owner": holds, "events": self.events[-50:],
                "roles": {vm: {"mode": r["config"].get("mode", "start"), "ready": r["ready"],
                               "running": r["proc"].poll() is None
                               and Path(r["config"]["running_file"]).exists()}
                          for vm, r in self.roles.items()}}

    async def op_start_vm(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"vm": await self.start_vm(dict(req["config"]))}

    async def op_stop_vm(self, req: dict[str, Any]) -> dict[str, Any]:
        r = self.roles.get(str(req["vm"]))
        if r is None:
            raise ClusterError(f"no VM {req['vm']} on {self.name}")
        with contextlib.suppress(ClusterError):
            await asyncio.to_thread(request, r["ready"], "stop", timeout_s=30.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(r["proc"].wait, 10)
        if r["proc"].poll() is None:
            r["proc"].kill()
        return {}


async def main_async(config: dict[str, Any], ready_file: str) -> int:
    service = ClusterService(config)
    server = ControlServer({"status": service.op_status, "start_vm": service.op_start_vm,
                            "stop_vm": service.op_stop_vm})
    await service.start()
    socket_dir = config.get("socket_dir")
    await server.start(ready_file, node=service.name, heartbeat_port=service.heartbeat.port,
                       unix_path=str(Path(socket_dir) / f"{service.name}.s") if socket_dir
                       else None)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, service.stopped.set)
    await service.stopped.wait()
    service.kill_roles()
    await server.close()
    await service.heartbeat.close()
    return 0 if service.quorum else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.cluster.node")
    parser.add_argument("--config", required=True)
    parser.add_argument("--ready", required=True)
    args = parser.parse_args(argv)
    config = json.loads(Path(args.config).read_text())
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)  # the node and its VMs: one process group, killed together
    die_with_parent()  # a killed controller leaves no cluster behind
    try:
        return asyncio.run(main_async(config, args.ready))
    except ClusterError as exc:
        print(f"cluster node {config.get('name')}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
