"""Benchmark: the I/O pause a failed path costs, per MSDSM policy and timer set.

One reference target node with two portals on loopback; each path goes through
its own fault-proxy link. A closed loop of writers (queue depth 8, 4 KiB) runs
over a ``MultipathDevice``; after a warm-up, path p0 (the preferred path for
Failover Only) is *cut* (both ends see RST, as a failed switch port) or
*black-holed* (silence, as a pulled cable between switches). Then the link is
healed and the path must come back.

Reported per run (all from ``time.monotonic_ns()``):

- ``base gap``: the longest interval without a completion during the warm-up,
  before any fault: the noise floor of this machine and target (write-through
  fdatasync on a shared disk), to read the pause against;
- ``detect``: fault to the path's FAILED event;
- ``pause``: the longest interval after the fault with no completion at all
  (what an application with nothing else to do would see);
- ``stall``: the longest latency of any op completed after the fault (an op
  caught on the failed path is held for the path hold, then re-driven): what
  the unluckiest I/O saw;
- ``errors``: errors the caller saw (MPIO should hide the failure: 0);
- ``back``: heal to the path's return to ACTIVE (reconnect back-off).

Run: ``.venv/bin/python -m bench.mpio_failover [--quick] [--policies RR,FOO]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from harness.initiator.mpio.device import MultipathDevice
from harness.initiator.mpio.policies import POLICIES
from harness.initiator.mpio.session_link import PathSpec, session_connector
from harness.initiator.mpio.status import PathState
from harness.initiator.mpio.timers import MpioTimers
from harness.lab.proxy import LinkSpec, LinkState, ProxyControl
from harness.lab.proxy_daemon import running_proxy
from harness.peers.reference_target import ReferenceTargetFactory

DEPTH = 8
WARMUP_S = 1.0
SETTLE_S = 1.0

TUNED = MpioTimers.from_mapping({
    "preset": "windows",
    "link_down_time_s": 1.0,        # vendors tune LinkDownTime down to 5 s and below
    "noop_out_interval_s": 1.0,     # EnableNOPOut with a short ping
    "noop_out_timeout_s": 1.0,
    "retry_interval_s": 0.2,
    "delay_between_reconnect_s": 1.0,
    "disk_timeout_s": 10.0,
})

TIMER_SETS = {
    "windows-default": MpioTimers.windows_default(),
    "open-iscsi-default": MpioTimers.open_iscsi_default(),
    "tuned": TUNED,
}


@dataclass
class Run:
    timers: str
    policy: str
    fault: str
    base_ms: float = float("nan")
    detect_ms: float = float("nan")
    pause_ms: float = float("nan")
    stall_ms: float = float("nan")
    back_ms: float = float("nan")
    ops: int = 0
    errors: list[str] = field(default_factory=list)


class Load:
    """Closed-loop writers recording (invoked, completed, path) of every op."""

    def __init__(self, dev: MultipathDevice) -> None:
        self.dev = dev
        self.ops: list[tuple[int, int, str]] = []
        self.in_flight: dict[int, int] = {}
        self.errors: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _worker(self, n: int) -> None:
        blocks = 4096 // self.dev.block_size
        span = self.dev.num_blocks // blocks
        seq = n
        while not self._stop.is_set():
            t0 = time.monotonic_ns()
            self.in_flight[n] = t0
            try:
                c = await self.dev.write((seq % span) * blocks, os.urandom(4096))
            except Exception as exc:  # counted: MPIO should have hidden it
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return
            finally:
                self.in_flight.pop(n, None)
            self.ops.append((t0, time.monotonic_ns(), c.path))
            seq += DEPTH

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._worker(n)) for n in range(DEPTH)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def _until(check, deadline_s: float) -> bool:
    try:
        async for attempt in AsyncRetrying(stop=stop_after_delay(deadline_s),
                                           wait=wait_fixed(0.01),
                                           retry=retry_if_exception_type(AssertionError),
                                           reraise=True):
            with attempt:
                assert check()
    except AssertionError:
        return False
    return True


async def one_run(specs: list[PathSpec], proxy: ProxyControl, timers_name: str, policy: str,
                  fault: str) -> Run:
    timers = TIMER_SETS[timers_name]
    result = Run(timers_name, policy, fault)
    async with MultipathDevice(specs, connector=session_connector, policy=policy,
                               timers=timers, queue_depth=DEPTH) as dev:
        load = Load(dev)
        start_ns = time.monotonic_ns()
        load.start()
        await asyncio.sleep(WARMUP_S)
        mode = "cut" if fault == "cut" else "blackhole"
        fault_ns = time.monotonic_ns()
        await asyncio.to_thread(proxy.set_state, ["p0"], LinkState(mode=mode))
        applied_ns = time.monotonic_ns()  # the fault is in place by now
        detect_deadline = timers.disk_timeout_s + (timers.probe_interval_s or 0) \
            + timers.probe_timeout_s + 5
        await _until(lambda: dev.path("p0").state != PathState.ACTIVE, detect_deadline)
        failed = [e for e in dev.events.for_path("p0") if e.new == PathState.FAILED]
        if failed:
            result.detect_ms = (failed[0].ns - fault_ns) / 1e6
        # every op that may have been caught must finish (held for the path hold,
        # then re-driven) before the heal, or the heal would cut the hold short
        await _until(lambda: all(t0 > applied_ns for t0 in load.in_flight.values())
                     or load.errors,
                     timers.path_hold_s + timers.disk_timeout_s + 5)
        await asyncio.sleep(SETTLE_S)
        heal_ns = time.monotonic_ns()
        await asyncio.to_thread(proxy.set_state, ["p0"], LinkState())
        back = await _until(
            lambda: dev.path("p0").state == PathState.ACTIVE
            and dev.events.for_path("p0")[-1].ns > heal_ns,
            timers.reconnect_backoff_max_s + timers.login_timeout_s + 5)
        if back:
            result.back_ms = (dev.events.for_path("p0")[-1].ns - heal_ns) / 1e6
        await load.stop()
        result.pause_ms = _longest_gap(load, fault_ns, heal_ns)
        result.base_ms = _longest_gap(load, start_ns + int(0.2e9), fault_ns)
        stalls = [c - i for i, c, _ in load.ops if c > fault_ns]
        result.stall_ms = max(stalls, default=0) / 1e6
        result.ops = len(load.ops)
        result.errors = load.errors
    return result


def _longest_gap(load: Load, from_ns: int, to_ns: int) -> float:
    """The longest interval in [from, to] without a completion, in ms."""
    done = sorted(c for _, c, _ in load.ops if from_ns < c < to_ns)
    edges = [from_ns, *done, to_ns]
    return max(b - a for a, b in itertools.pairwise(edges)) / 1e6


def _ms(v: float) -> str:
    return "-" if v != v else f"{v:,.0f}"


def table(runs: list[Run]) -> str:
    lines = ["| timers | policy | fault | base gap ms | detect ms | pause ms | stall ms | "
             "back ms | caller errors |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r.timers} | {r.policy} | {r.fault} | {_ms(r.base_ms)} | "
                     f"{_ms(r.detect_ms)} | "
                     f"{_ms(r.pause_ms)} | {_ms(r.stall_ms)} | {_ms(r.back_ms)} | "
                     f"{len(r.errors)} |")
    return "\n".join(lines)


async def bench(args: argparse.Namespace, specs: list[PathSpec],
                proxy: ProxyControl) -> list[Run]:
    runs = []
    for timers_name in args.timers:
        for policy in args.policies:
            for fault in args.faults:
                if fault == "blackhole" and TIMER_SETS[timers_name].probe_interval_s is None \
                        and policy != "round-robin":
                    continue  # detection by disk timeout alone: one policy shows it
                run = await one_run(specs, proxy, timers_name, policy, fault)
                print(table([run]).splitlines()[-1], flush=True)
                runs.append(run)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", default=",".join(TIMER_SETS),
                        help="comma-separated timer sets: " + ", ".join(TIMER_SETS))
    parser.add_argument("--policies", default=",".join(POLICIES),
                        help="comma-separated policies (MSDSM names work)")
    parser.add_argument("--faults", default="cut,blackhole", help="cut, blackhole")
    parser.add_argument("--quick", action="store_true",
                        help="tuned timers, cut only (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.timers, args.faults = "tuned", "cut"
    args.timers = args.timers.split(",")
    args.policies = args.policies.split(",")
    args.faults = args.faults.split(",")
    # SIGTERM unwinds like Ctrl-C, so the node process and temp dir are cleaned up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="mpio-bench-") as tmp:
        factory = ReferenceTargetFactory(Path(tmp))
        try:
            node = factory.start()
            links = [LinkSpec(f"p{i}", "127.0.0.1", 0, host, port)
                     for i, (host, port) in enumerate(node.portals)]
            with running_proxy(links) as proxy:
                specs = [PathSpec("127.0.0.1", proxy.link(f"p{i}").port, node.iqn,
                                  lun=node.lun, name=f"p{i}", preferred=(i == 0))
                         for i in range(len(links))]
                print(table([]), flush=True)
                runs = asyncio.run(bench(args, specs, ProxyControl.from_endpoint(proxy.endpoint())))
        finally:
            factory.close()
    print()
    print(table(runs))
    return 1 if any(r.errors for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
