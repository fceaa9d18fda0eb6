"""A VM role as a process: guest memory it keeps dirtying, and a workload on its disk.

``python -m harness.cluster.vm --config vm.json --ready ready.json`` runs one
VM on the cluster node that started it (the node's initiator identity and
reservation key are in the config; the node sets ``PR_SET_PDEATHSIG`` so the VM
dies with its node, as a VM dies with its host). Modes:

- ``start``: a cold start from disk state: fresh memory, the workload continues
  the VM's run in a new history segment (a failover restart is a cold start);
- ``incoming``: a skeleton waiting for a live migration on its migration
  listener (``harness.cluster.migration``), resumed when the last copy arrives;
- ``restore``: quick migration's second half, from the saved state file.

Control operations: ``status``, ``migrate`` (live, to an incoming skeleton),
``save`` (quick migration's first half: pause, write memory and device state to
a file on shared storage, stop) and ``stop``. After a VM hands itself over
(``migrate``/``save``) it unregisters its storage sessions' reservation keys,
closes them and exits: the source is cleaned up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.cluster.announce import announce_move
from harness.cluster.control import ControlServer
from harness.cluster.errors import ClusterError
from harness.cluster.guest import GuestWorkload, VirtualDisk, close_csv, open_csv, segments
from harness.cluster.memory import GuestMemory
from harness.cluster.migration import MigrationReport, migrate_in, migrate_out
from harness.workload.generator import WorkloadSpec
from harness.workload.history import HistoryHeader
from harness.workload.writers import header_for

ZERO_CHUNK = 1 << 20


def die_with_parent() -> None:
    """SIGKILL this process when the process that started it dies (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def workload_spec(d: dict[str, Any], disk_bytes: int) -> WorkloadSpec:
    spec = WorkloadSpec(
        seed=int(d.get("seed", 0)), writers=int(d.get("writers", 2)),
        queue_depth=int(d.get("queue_depth", 2)),
        block_sizes=tuple(int(b) for b in d.get("block_sizes", (4096,))),
        read_ratio=float(d.get("read_ratio", 0.0)), rate=d.get("rate"),
        duration=1e9, op_timeout=float(d.get("op_timeout", 30.0)),
        flush_every=int(d.get("flush_every", 0)),
    )
    return spec


class VirtualMachine:
    """One VM process: memory, disk, workload, and the migration endpoints."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.name = str(config["name"])
        self.node = str(config["node"])
        self.memory = GuestMemory(int(config["memory_bytes"]),
                                  page_size=int(config.get("page_size", 4096)),
                                  dirty_rate=float(config.get("dirty_rate", 0.0)),
                                  seed=int(config.get("seed", 0)))
        self.state = "Starting"
        self.csv: Any = None
        self.disk: VirtualDisk | None = None
        self.guest: GuestWorkload | None = None
        self.spec: WorkloadSpec | None = None
        self.header: HistoryHeader | None = None
        self.migration_port = 0
        self.done = asyncio.Event()
        self.last_report: dict[str, Any] | None = None
        self._incoming_busy = False
        self.control_ready = False

    # -- storage and workload --------------------------------------------------

    async def attach_storage(self) -> None:
        csv = self.config["csv"]
        self.csv = await open_csv(csv["paths"], csv.get("timers", {}), f"{self.node}:{self.name}",
                                  int(self.config.get("node_key", 0)) or None)
        d, bs = self.config["disk"], self.csv.block_size
        self.disk = VirtualDisk(self.csv, int(d["offset"]) // bs, int(d["length"]) // bs,
                                self.name)
        self.spec = workload_spec(self.config.get("workload", {}),
                                  self.disk.num_blocks * self.disk.block_size)

    async def first_header(self) -> HistoryHeader:
        """The run's header; the VM's very first start zeroes its disk (initial = zero)."""
        assert self.disk is not None and self.spec is not None
        hdir = self.config["history_dir"]
        initial = "unknown"
        if not segments(hdir):
            zeros = bytes(ZERO_CHUNK)
            per = ZERO_CHUNK // self.disk.block_size
            for lba in range(0, self.disk.num_blocks, per):
                n = min(per, self.disk.num_blocks - lba)
                await self.disk.write(lba, zeros[: n * self.disk.block_size])
            await self.disk.flush()
            initial = "zero"
        elif self.config.get("initial"):
            initial = str(self.config["initial"])
        return header_for(self.disk, self.spec, name=f"vm:{self.name}", initial=initial,
                          generation=int(self.config["generation"]),
                          options={"vm": self.name})

    def run_guest(self, header: HistoryHeader) -> int:
        assert self.disk is not None and self.spec is not None
        self.header = header
        self.guest = GuestWorkload(self.disk, self.spec, header, self.config["history_dir"],
                                   self.node)
        self.memory.run_guest()
        self.guest.start()
        self.state = "Running"
        self.mark_running()
        return time.monotonic_ns()

    def mark_running(self) -> None:
        """Tell the node this VM is its role now (once the VM can be asked about it)."""
        if self.control_ready and self.state == "Running" and self.config.get("running_file"):
            Path(self.config["running_file"]).touch()

    async def pause(self) -> dict[str, Any]:
        """Pause the guest: memory stops changing, every I/O in flight completes."""
        self.state = "Paused"
        await self.memory.pause_guest()
        assert self.guest is not None and self.header is not None
        result = await self.guest.pause()
        return {"pause_ns": time.monotonic_ns(), "header": self.header.to_record(),
                "segment": self.guest.segment, "workload": asdict(result),
                "memory_counter": self.memory.counter}

    async def resume_here(self) -> None:
        assert self.header is not None
        self.run_guest(self.header)

    async def cleanup(self) -> None:
        """The VM left this node: drop its storage handles and end the process."""
        self.state = "Off"
        if self.config.get("running_file"):  # no longer this node's role
            Path(self.config["running_file"]).unlink(missing_ok=True)
        if self.csv is not None:
            await close_csv(self.csv, unregister=True)
        self.done.set()

    # -- control ---------------------------------------------------------------

    async def op_status(self, _: dict[str, Any]) -> dict[str, Any]:
        w = self.guest.workload.result if self.guest else None
        return {"vm": self.name, "node": self.node, "state": self.state,
                "segment": self.guest.segment if self.guest else None,
                "ops": asdict(w) if w else None, "memory_counter": self.memory.counter,
                "migration_port": self.migration_port, "last_report": self.last_report}

    async def op_migrate(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.state != "Running":
            raise ClusterError(f"VM {self.name} is {self.state}, not Running; cannot migrate it")
        self.state = "Migrating"
        report = MigrationReport(self.name, "live", self.node, str(req["destination"]),
                                 time.monotonic_ns(), 0, 0, 0,
                                 memory_bytes=self.memory.size)
        hello = {"vm": self.name, "memory_bytes": self.memory.size,
                 "page_size": self.memory.page_size, "source": self.node}
        try:
            await migrate_out(self.memory, (req["host"], int(req["port"])), hello=hello,
                              pause_vm=self.pause, resume_here=self.resume_here,
                              pass_limit=int(req.get("pass_limit", 5)),
                              stop_pages=int(req.get("stop_pages", 64)),
                              link_rate_bps=req.get("link_rate_bps"), report=report)
        except ClusterError:
            if self.state == "Migrating":
                self.state = "Running"
            raise
        report.finished_ns = time.monotonic_ns()
        await self.cleanup()
        report.finished_ns = time.monotonic_ns()
        self.last_report = report.to_json()
        return {"report": self.last_report}

    async def op_save(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.state != "Running":
            raise ClusterError(f"VM {self.name} is {self.state}, not Running; cannot save it")
        started = time.monotonic_ns()
        state = await self.pause()
        state["digest"] = self.memory.digest()
        path = Path(req["path"])
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            blob = json.dumps(state).encode()
            fh.write(len(blob).to_bytes(8, "big") + blob + bytes(self.memory.data))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        await self.cleanup()
        return {"pause_ns": state["pause_ns"], "started_ns": started,
                "saved_ns": time.monotonic_ns(), "memory_bytes": self.memory.size}

    async def op_stop(self, _: dict[str, Any]) -> dict[str, Any]:
        if self.guest is not None and self.guest.running:
            await self.pause()
        await self.cleanup()
        return {}

    # -- incoming --------------------------------------------------------------

    def accept(self, hello: dict[str, Any]) -> str | None:
        if self._incoming_busy or self.state != "Incoming":
            return f"VM {self.name} on {self.node} is {self.state}, not waiting for a migration"
        if hello.get("vm") != self.name or int(hello["memory_bytes"]) != self.memory.size:
            return f"this skeleton is {self.name} with {self.memory.size} bytes, not {hello}"
        self._incoming_busy = True
        return None

    async def resume_from(self, state: dict[str, Any]) -> dict[str, Any]:
        self.memory.counter = int(state.get("memory_counter", 0))
        header = HistoryHeader.from_record(state["header"], "migration state")
        resume_ns = self.run_guest(header)
        c = self.config
        how = {"kind": "garp", "iface": c["announce_iface"], "ip": c["address"],
               "mac": c["mac"]} if c.get("announce_iface") and c.get("address") else {}
        announce = await announce_move(how)
        return {"resume_ns": resume_ns, "announce": announce}

    async def serve_incoming(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        try:
            answer = await migrate_in(reader, writer, self.memory, accept=self.accept,
                                      resume=self.resume_from)
            if answer is None and self.state == "Incoming":
                self._incoming_busy = False
        except (OSError, asyncio.IncompleteReadError, ValueError):
            if self.state == "Incoming":
                self._incoming_busy = False
        finally:
            writer.close()

    async def restore(self, path: Path) -> int:
        raw = path.read_bytes()
        n = int.from_bytes(raw[:8], "big")
        state = json.loads(raw[8:8 + n])
        self.memory.data[:] = raw[8 + n:]
        if self.memory.digest() != state["digest"]:
            raise ClusterError(f"saved state {path} does not match its digest; not resuming")
        self.memory.counter = int(state.get("memory_counter", 0))
        return self.run_guest(HistoryHeader.from_record(state["header"], str(path)))


async def main_async(config: dict[str, Any], ready_file: str) -> int:
    vm = VirtualMachine(config)
    server = ControlServer({"status": vm.op_status, "migrate": vm.op_migrate,
                            "save": vm.op_save, "stop": vm.op_stop})
    await vm.attach_storage()
    mode = config.get("mode", "start")
    extra: dict[str, Any] = {"vm": vm.name, "mode": mode}
    listener = None
    if mode == "incoming":
        host = config.get("migration_host", "127.0.0.1")
        listener = await asyncio.start_server(vm.serve_incoming, host, 0)
        vm.migration_port = listener.sockets[0].getsockname()[1]
        vm.state = "Incoming"
        extra["migration"] = [host, vm.migration_port]
    elif mode == "restore":
        extra["resume_ns"] = await vm.restore(Path(config["restore_file"]))
    else:
        extra["resume_ns"] = vm.run_guest(await vm.first_header())
    await server.start(ready_file, unix_path=config.get("control_socket"), **extra)
    vm.control_ready = True
    vm.mark_running()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, vm.done.set)
    await vm.done.wait()
    await asyncio.sleep(0.2)  # let the last control answer go out
    await server.close()
    if listener is not None:
        listener.close()
    if vm.guest is not None and vm.guest.running:
        await vm.guest.pause()
    if vm.state != "Off" and vm.csv is not None:
        await close_csv(vm.csv, unregister=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.cluster.vm")
    parser.add_argument("--config", required=True)
    parser.add_argument("--ready", required=True)
    args = parser.parse_args(argv)
    die_with_parent()
    config = json.loads(Path(args.config).read_text())
    try:
        return asyncio.run(main_async(config, args.ready))
    except ClusterError as exc:
        print(f"vm {config.get('name')}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
