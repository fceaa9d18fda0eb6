"""The workload agent on a cluster node, driven over SSH, and the safety rules around it.

The model: the harness's own initiator exercises the storage from the
controller; the *agent* exercises it the way the site really uses it, from a
cluster node's own disk (its dm-multipath or plain block device), so the node's
initiator and MPIO stack carry every write. ``NodeAgent`` ships
``node_agent.py`` (standard library only) over SSH on each call
(``python3 -c <the script> <command> ...``, one quoted argument of about 12 kB):
the host needs ``python3`` and nothing of splitbrain.

Safety comes first, before anything is touched:

- only a device the inventory marks ``test = true`` may be written, reserved or
  broken (``require_test_device``), and the agent writes only the disk the
  inventory names for that device on that node;
- the agent's ``check`` must find the disk unused: no mount, no holder in
  ``/sys/block/*/holders`` (device mapper, LVM, md), no swap, and the kernel
  must grant an exclusive open; otherwise ``DeviceInUse`` is raised in one line,
  and the agent itself refuses again on the host before it writes.

Time: the agent stamps its records with the node's ``monotonic_ns``. The
controller measures the offset to its own clock by round trips (``clock``):
offset = node time - the midpoint of the round trip, uncertainty = half the
shortest round trip. ``AgentRun`` shifts the agent's records onto the
controller's timeline and adds the controller's fault records, so one history
file in the usual format holds both and the usual checkers judge it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SplitbrainError
from harness.remote.errors import OutputFormatError
from harness.workload.device import Completion

AGENT_SCRIPT = Path(__file__).with_name("node_agent.py")
EXIT_IN_USE = 3


class NotATestDevice(SplitbrainError):
    """The harness was asked to write, reserve or break a device not marked for testing."""


class DeviceInUse(SplitbrainError):
    """A disk holds something (a mount, a holder, a clustered role): the harness refuses it."""


class AgentError(SplitbrainError):
    """The node agent could not run or answered something unreadable."""


def require_test_device(inventory: Any, alias: str) -> Any:
    """The inventory's device ``alias`` if it is marked ``test = true``; else refuse."""
    device = inventory.device(alias)
    if not device.test:
        raise NotATestDevice(
            f"refused: device {alias} of {inventory.path} is not marked as a test device; "
            f"the harness writes, reserves and breaks only devices with test = true "
            f"(a dedicated test LUN), never one that may hold data")
    return device


def node_disk(inventory: Any, alias: str, node: str) -> str:
    """The disk of test device ``alias`` on cluster node ``node`` (``disks`` in the inventory)."""
    device = require_test_device(inventory, alias)
    try:
        return device.disks[node]
    except KeyError:
        raise NotATestDevice(
            f"refused: device {alias} names no disk on {node}; add "
            f'disks = {{ {node} = "/dev/..." }} to [devices.{alias}]') from None


@dataclass(frozen=True)
class ClockOffset:
    """The node's monotonic clock minus the controller's, with its uncertainty (ns)."""

    offset_ns: int
    uncertainty_ns: int
    samples: int

    def to_controller(self, node_ns: int) -> int:
        return node_ns - self.offset_ns


@dataclass(frozen=True)
class DiskUse:
    """What the agent's ``check`` found on a disk."""

    device: str
    real: str
    size: int
    logical_block_size: int
    mounts: tuple[str, ...]
    holders: tuple[str, ...]
    swaps: tuple[str, ...]
    exclusive: bool
    error: str | None

    @property
    def reason(self) -> str | None:
        """Why the disk may not be written (None: it is free)."""
        if self.mounts:
            return f"mounted ({'; '.join(self.mounts)})"
        if self.holders:
            return f"held by {', '.join(self.holders)}"
        if self.swaps:
            return "used as swap"
        if self.error:
            return self.error
        if not self.exclusive:
            return "the kernel refuses an exclusive open"
        return None


class DiskAgent:
    """What every node's agent shares, whatever its platform: refuse a disk in use, relate
    the node's clock to the controller's, read the disk back for the checkers. A
    platform gives ``check()`` (a ``DiskUse`` or ``WindowsDiskUse``: ``reason``, ``size``,
    ``logical_block_size``) and ``node_clock_ns()`` (one reading of the node's clock)."""

    node: str
    device: str
    alias: str

    def check(self) -> Any:
        raise NotImplementedError

    def node_clock_ns(self) -> int:
        raise NotImplementedError

    def read(self, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def refuse_if_in_use(self) -> Any:
        use = self.check()
        if use.reason is not None:
            raise DeviceInUse(f"refused: {self.device} on {self.node} ({self.alias}) is in use: "
                              f"{use.reason}; nothing was written")
        return use

    def clock(self, rounds: int = 5) -> ClockOffset:
        """The node's clock relative to the controller's, from the tightest round trip."""
        best: tuple[int, int] | None = None
        for _ in range(rounds):
            t0 = time.monotonic_ns()
            remote = self.node_clock_ns()
            t1 = time.monotonic_ns()
            rtt = t1 - t0
            if best is None or rtt < best[1]:
                best = (remote - (t0 + t1) // 2, rtt)
        assert best is not None
        return ClockOffset(best[0], best[1] // 2 + 1, rounds)

    def block_device(self, use: Any) -> AgentBlockDevice:
        return AgentBlockDevice(self, use.size, use.logical_block_size)


class NodeAgent(DiskAgent):
    """The agent on one Linux cluster node's disk, reached through a ``LinuxHost`` driver."""

    def __init__(self, driver: Any, node: str, device: str, *, python: str = "python3",
                 alias: str = "") -> None:
        self.driver, self.node, self.device, self.python = driver, node, device, python
        self.alias = alias or device

    def _call(self, *args: str, timeout: float | None = 120.0, check: bool = True) -> Any:
        return self.driver.run_argv([self.python, "-c", AGENT_SCRIPT.read_text(), *args],
                                    timeout=timeout, check=check)

    def check(self) -> DiskUse:
        out = self._call("check", self.device).stdout
        try:
            r = json.loads(out)
        except ValueError:
            raise AgentError(f"agent check on {self.node} printed no JSON: {out[:120]!r}") \
                from None
        return DiskUse(r["device"], r["real"], int(r["size"]), int(r["logical_block_size"]),
                       tuple(r["mounts"]), tuple(r["holders"]), tuple(r["swaps"]),
                       bool(r["exclusive"]), r.get("error"))

    def node_clock_ns(self) -> int:
        out = self.driver.run_argv([self.python, "-c",
                                    "import time; print(time.monotonic_ns())"]).stdout
        try:
            return int(out.strip())
        except ValueError:
            raise AgentError(f"{self.node} printed no clock: {out[:80]!r}") from None

    def run(self, *, generation: int, seed: int = 0, writers: int = 1, block_size: int = 4096,
            ops: int | None = None, duration_s: float | None = None, region_offset: int = 0,
            region_length: int = 0, timeout: float | None = None,
            on_record: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """Run the workload (blocking) and return its records (node times). The history is
        streamed: each record reaches the controller (and ``on_record``) as the agent
        prints it, so what ran before a lost connection or a killed run is kept."""
        args = ["run", self.device, "--generation", str(generation), "--seed", str(seed),
                "--writers", str(writers), "--block-size", str(block_size),
                "--region-offset", str(region_offset), "--region-length", str(region_length),
                "--node", self.node]
        if ops is not None:
            args += ["--ops", str(ops)]
        if duration_s is not None:
            args += ["--duration", str(duration_s)]
        records: list[dict[str, Any]] = []

        def line(text: str) -> None:
            if not text.strip():
                return
            try:
                rec = json.loads(text)
            except ValueError:
                raise OutputFormatError(f"agent history from {self.node}: line "
                                        f"{len(records) + 1} is not JSON") from None
            if not records and rec.get("type") != "header":
                raise OutputFormatError(f"agent history from {self.node} does not start "
                                        "with a header")
            records.append(rec)
            if on_record is not None:
                on_record(rec)

        argv = [self.python, "-c", AGENT_SCRIPT.read_text(), *args]
        if hasattr(self.driver, "stream_argv"):
            result = self.driver.stream_argv(argv, line, timeout=timeout, check=False)
        else:  # a driver that can only fetch the output at the end
            result = self.driver.run_argv(argv, timeout=timeout, check=False)
            for rec in parse_records(result.stdout, self.node):
                line(json.dumps(rec))
        if result.exit_status == EXIT_IN_USE:
            raise DeviceInUse(f"refused on {self.node}: {result.stderr.strip()}")
        if result.exit_status != 0 and not records:
            result.check()
        return records

    def read(self, offset: int, length: int) -> bytes:
        out = self._call("read", self.device, str(offset), str(length)).stdout
        try:
            return base64.b64decode(out.strip(), validate=True)
        except ValueError:
            raise AgentError(f"agent read on {self.node} printed no base64") from None



def parse_records(text: str, node: str) -> list[dict[str, Any]]:
    """The agent's JSON lines; a torn last line (the agent was cut off) is dropped."""
    records = []
    lines = [line for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                break
            raise OutputFormatError(f"agent history from {node}: line {i + 1} is not JSON") \
                from None
        records.append(rec)
    if records and records[0].get("type") != "header":
        raise OutputFormatError(f"agent history from {node} does not start with a header")
    return records


class AgentBlockDevice:
    """A read-only ``BlockDevice`` over the agent (for the integrity checker)."""

    def __init__(self, agent: DiskAgent, size: int, block_size: int) -> None:
        self.agent, self._size, self._bs = agent, size, block_size

    @property
    def block_size(self) -> int:
        return self._bs

    @property
    def num_blocks(self) -> int:
        return self._size // self._bs

    async def read(self, lba: int, count: int) -> Completion:
        import asyncio

        data = await asyncio.to_thread(self.agent.read, lba * self._bs, count * self._bs)
        return Completion(data, self.agent.node)

    async def write(self, lba: int, data: bytes) -> Completion:
        raise AgentError("the agent's device is read back only; writes go through run()")

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass
class AgentRun:
    """One agent run on the controller's timeline, with the controller's fault records."""

    node: str
    clock: ClockOffset
    records: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    _next_fault: int = 0
    _open: dict[str, list[int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fault_start(self, name: str, **attrs: Any) -> int:
        with self._lock:
            fid = self._next_fault
            self._next_fault += 1
            self._open.setdefault(name, []).append(fid)
            self.faults.append({"type": "fault", "f": "start", "fault": fid, "name": name,
                                "time": time.monotonic_ns(), **attrs})
        return fid

    def fault_stop(self, name: str, **attrs: Any) -> None:
        with self._lock:
            fid = self._open[name].pop(0)
            self.faults.append({"type": "fault", "f": "stop", "fault": fid, "name": name,
                                "time": time.monotonic_ns(), **attrs})

    @contextlib.contextmanager
    def fault(self, name: str, **attrs: Any) -> Iterator[None]:
        self.fault_start(name, **attrs)
        try:
            yield
        finally:
            self.fault_stop(name)

    def write(self, path: str | Path) -> Path:
        """The merged history file: agent records shifted onto the controller's clock."""
        if not self.records:
            raise AgentError(f"the agent on {self.node} recorded nothing")
        out = []
        for rec in self.records:
            rec = dict(rec)
            if rec["type"] == "header":
                rec["start_ns"] = self.clock.to_controller(int(rec["start_ns"]))
                rec["options"] = {**rec.get("options", {}),
                                  "clock_offset_ns": self.clock.offset_ns,
                                  "clock_uncertainty_ns": self.clock.uncertainty_ns}
            elif "time" in rec:
                rec["time"] = self.clock.to_controller(int(rec["time"]))
            out.append(rec)
        out += [dict(f) for f in self.faults]
        for i, rec in enumerate(out):
            rec["index"] = i
        path = Path(path)
        path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in out))
        return path
