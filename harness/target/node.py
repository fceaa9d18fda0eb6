"""The storage node process: portals, targets, sessions and the management API.

Model: a ``Node`` owns everything one storage server runs. Its *portals* accept
TCP connections (one asyncio server per address); each connection logs in
(``login``), then joins a ``Session`` of a target in the ``TargetTable``; the
``SessionTable`` enforces one session per I_T nexus (initiator name + ISID +
target), reinstating on a repeated login. The ``ManagementApi`` reads and changes
all of it. The node counts its connections and refuses more than the configured
cap, so a flood of half-open connections cannot exhaust it.

Lifecycle: ``start()`` opens the image files, binds the portals (port 0 = a free
port) and the management listener, writes ``<data_dir>/node.json`` and prints
one JSON line (``{"event": "ready", ...}``) on stdout for a parent to wait on.
``stop()`` (SIGTERM, SIGINT or ``POST /v1/shutdown``) closes the portals, drops
every connection, flushes and closes the logical units, and removes the ready file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from harness.errors import SplitbrainError
from harness.target.config import NodeConfig, parse_lun, parse_target
from harness.target.disk_faults import install_disk_fault_routes
from harness.target.ha.service import ha_status, install_ha_routes
from harness.target.management import ApiError, ManagementApi
from harness.target.portal import Portal
from harness.target.power_loss import install_power_loss_route
from harness.target.session import SessionTable
from harness.target.targets import TargetTable

log = logging.getLogger("splitbrain.target")

READY_FILE = "node.json"


class NodeError(SplitbrainError):
    """The node cannot start or serve (port taken, data directory unusable, no token)."""


class Node:
    """One storage node: what ``splitbrain target serve`` runs."""

    def __init__(self, config: NodeConfig, *, token: str | None = None) -> None:
        self.config = config
        self.limits = config.limits
        self.token = token if token is not None else os.environ.get(
            config.management.token_env, "")
        if not self.token:
            raise NodeError(f"{config.source}: management token variable "
                            f"{config.management.token_env} is not set; export it with a secret "
                            "value (the node has no default token)")
        self.sessions = SessionTable()
        self.targets = TargetTable(config, self.sessions)
        self.portals: list[Portal] = []
        self.management = ManagementApi(self, token=self.token, host=config.management.host,
                                        port=config.management.port)
        install_ha_routes(self)
        install_disk_fault_routes(self)  # /v1/faults/disk: slow, EIO, no space (in memory)
        install_power_loss_route(self)  # /v1/faults/power-loss (volatile_writes nodes)
        self.connections: set[Any] = set()   # harness.target.connection.Connection
        self.refused_connections = 0
        self._stopped = asyncio.Event()
        self._started_ns = time.monotonic_ns()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        """Open LUs, bind portals and the API; returns the ready record."""
        try:
            self.config.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NodeError(f"{self.config.source}: node.data_dir {self.config.data_dir}: "
                            f"{exc.strerror}; pick a writable directory") from None
        await self.targets.open_all()
        for pc in self.config.portals:
            portal = Portal(self, pc)
            try:
                await portal.start()
            except OSError as exc:
                await self.stop()
                raise NodeError(f"{self.config.source}: portal {pc.address}:{pc.port}: "
                                f"{exc.strerror}; choose another address or port 0") from None
            self.portals.append(portal)
        try:
            await self.management.start()
        except OSError as exc:
            await self.stop()
            raise NodeError(f"{self.config.source}: management.listen {self.management.host}:"
                            f"{self.management.port}: {exc.strerror}; use port 0") from None
        ready = self.ready_record()
        path = self.config.data_dir / READY_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(ready) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return ready

    def ready_record(self) -> dict[str, Any]:
        return {
            "event": "ready",
            "node": self.config.name,
            "pid": os.getpid(),
            "portals": [p.describe() for p in self.portals],
            "management": self.management.url,
            "token_env": self.config.management.token_env,
            "targets": [t.config.iqn for t in self.targets],
        }

    async def serve_forever(self) -> None:
        await self._stopped.wait()

    def request_shutdown(self) -> None:
        self._stopped.set()

    async def stop(self) -> None:
        """Graceful stop: no new connections, drop sessions, flush and close the LUs."""
        self._stopped.set()
        for portal in self.portals:
            await portal.close()
        for conn in list(self.connections):
            # RFC 7143 section 11.9.1, AsyncEvent 3: the session is about to be dropped;
            # the initiator may log in again after Time2Wait (to this node's partner).
            conn.announce_drop(time2wait=2, time2retain=0)
            conn.finish("node shutting down")
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.closed(), 5)
        await self.management.close()
        await self.targets.close_all()
        with contextlib.suppress(FileNotFoundError):
            (self.config.data_dir / READY_FILE).unlink()

    # -- connection accounting (called by Portal) -------------------------------------------

    def admit_connection(self) -> bool:
        if len(self.connections) >= self.limits.max_connections:
            self.refused_connections += 1
            return False
        return True

    # -- NodeControl (the management API) ---------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "node": self.config.name,
            "pid": os.getpid(),
            "uptime_s": (time.monotonic_ns() - self._started_ns) / 1e9,
            "portals": [p.describe() for p in self.portals],
            "management": self.management.url,
            "targets": len(self.targets),
            "luns": sum(len(t.luns) for t in self.targets),
            "sessions": len(self.sessions),
            "connections": len(self.connections),
            "refused_connections": self.refused_connections,
            "write_through": self.config.write_through,
            "defects": list(self.config.defects),
            "ha": ha_status(self),
        }

    def list_targets(self) -> list[dict[str, Any]]:
        return [t.describe() for t in self.targets]

    async def create_target(self, spec: dict[str, Any]) -> dict[str, Any]:
        target_cfg = parse_target(spec, data_dir=self.config.data_dir)
        if self.targets.get(target_cfg.iqn) is not None:
            raise ApiError(409, f"target {target_cfg.iqn} exists; delete it first")
        target = await self.targets.add(target_cfg)
        return target.describe()

    async def delete_target(self, iqn: str, force: bool) -> None:
        target = self._target(iqn)
        sessions = self.sessions.of_target(target.config.iqn)
        if sessions and not force:
            raise ApiError(409, f"target {iqn} has {len(sessions)} session(s); log them out "
                           "or pass force=1")
        for s in sessions:
            await s.close("target deleted")
        await self.targets.remove(target.config.iqn)

    async def create_lun(self, iqn: str, spec: dict[str, Any]) -> dict[str, Any]:
        target = self._target(iqn)
        lun_cfg = parse_lun(spec, target_iqn=target.config.iqn, data_dir=self.config.data_dir)
        if lun_cfg.lun in target.luns:
            raise ApiError(409, f"LUN {lun_cfg.lun} exists on {iqn}; delete it first")
        await target.add_lun(lun_cfg)
        for s in self.sessions.of_target(target.config.iqn):
            s.report_luns_changed()
        return target.describe()

    async def delete_lun(self, iqn: str, lun: int, force: bool) -> None:
        target = self._target(iqn)
        if lun not in target.luns:
            raise ApiError(404, f"no LUN {lun} on {iqn}")
        sessions = self.sessions.of_target(target.config.iqn)
        busy = [s for s in sessions if s.has_tasks_on(lun)]
        if busy and not force:
            raise ApiError(409, f"LUN {lun} of {iqn} has commands in flight; retry or force=1")
        await target.remove_lun(lun)
        for s in sessions:
            s.report_luns_changed()

    def list_sessions(self) -> list[dict[str, Any]]:
        return [s.describe() for s in self.sessions]

    def _target(self, iqn: str) -> Any:
        target = self.targets.get(iqn)
        if target is None:
            raise ApiError(404, f"no target {iqn} on node {self.config.name}")
        return target


def install_event_loop_policy() -> str:
    """Use uvloop when it is installed; returns the loop's name for the ready line."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


async def serve(config: NodeConfig, *, ready_file: Path | None = None,
                loop_name: str = "asyncio") -> int:
    """Run a node until SIGTERM/SIGINT or the API's shutdown; prints the ready line."""
    node = Node(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.request_shutdown)
    ready = await node.start()
    ready["loop"] = loop_name
    line = json.dumps(ready)
    if ready_file is not None:
        tmp = ready_file.with_suffix(ready_file.suffix + ".tmp")
        tmp.write_text(line + "\n", encoding="utf-8")
        os.replace(tmp, ready_file)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    try:
        await node.serve_forever()
    finally:
        await node.stop()
        if ready_file is not None:
            with contextlib.suppress(FileNotFoundError):
                ready_file.unlink()
    print(json.dumps({"event": "stopped", "node": config.name}), flush=True)
    return 0
