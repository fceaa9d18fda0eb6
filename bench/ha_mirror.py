"""Benchmark: the HA device's mirroring cost and its I/O blackout under failures.

Throughput: 4 KiB random writes at queue depth 32 through one harness ``Session``
for ``--seconds`` per round, against (1) an HA device (two reference-target
node processes, write-through, sync link direct on loopback), (2) one
reference-target node (write-through), (3) tgtd (file-backed, through the page
cache: its default) and (4) tgtd with an O_SYNC backing file (``--bsoflags sync``:
as durable as the reference node), rounds alternating so a noisy neighbour hits
all alike; medians reported. Goals (issue 11): HA >= 0.7 x single node (synchronous
mirroring costs one round trip, as DRBD's protocol C does), single node >= tgtd.

Blackout: the HA pair with its sync and heartbeat links through the fault proxy
and the lab's timers (``harness.lab.ha_wiring.LAB_TIMEOUTS``); one
``MultipathDevice`` (round robin, tuned MPIO timers, both nodes' portals) under
closed-loop 4 KiB writers (queue depth 8). Faults: the sync link black-holed
(heartbeat alive), the primary killed (SIGKILL), the primary frozen (SIGSTOP).
Reported: the longest interval with no completed write after the fault (goal
<= 0.5 s for the first two) and errors the caller saw (MPIO should hide all).

    .venv/bin/python bench/ha_mirror.py [--rounds 3] [--seconds 5] [--write]

``--write`` replaces this benchmark's section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mpio_failover import TUNED, Load, _longest_gap, _until  # noqa: E402
from recording import machine, write_section  # noqa: E402

from harness.initiator.mpio.device import MultipathDevice  # noqa: E402
from harness.initiator.mpio.session_link import PathSpec, session_connector  # noqa: E402
from harness.initiator.session import Session  # noqa: E402
from harness.lab.ha_wiring import LAB_TIMEOUTS  # noqa: E402
from harness.lab.proxy import LinkSpec, LinkState, ProxyControl  # noqa: E402
from harness.lab.proxy_daemon import running_proxy  # noqa: E402
from harness.peers.reference_target import (  # noqa: E402
    NodeSpec,
    ReferenceTarget,
    ReferenceTargetFactory,
    lun_target,
)
from harness.peers.tgtd import start_tgtd  # noqa: E402
from tests.support.ha_pair import free_port  # noqa: E402

SECTION = "## HA device: mirroring cost and I/O blackout (`bench/ha_mirror.py`)"
DEPTH, BLOCKS, SIZE = 32, 8, 64 * 1024 * 1024
SERIAL, NAA = "HA1-BENCH-0001", "6001405" + "0" * 20 + "b3e7c"
INITIATOR = "iqn.2026-11.org.splitbrain.bench:initiator"
#: tgtd with its backing file opened O_SYNC (``--bsoflags sync``)
SYNC_TGTD = "tgtd (O_SYNC)"


def ha_pair(factory: ReferenceTargetFactory, sync: tuple[str, str],
            heartbeat: tuple[str, str], timers: dict[str, float]) -> list[ReferenceTarget]:
    """store1 listens on ``sync[0]``/``heartbeat[0]``; store2 dials ``sync[1]``/...[1]."""
    def spec(name: str, alias: str, address: str, ha: dict[str, Any]) -> NodeSpec:
        iqn = f"iqn.2026-11.lab.splitbrain:{name}.{alias.lower()}"
        return NodeSpec(name=name, addresses=(address,), targets=({
            "iqn": iqn, "alias": alias,
            "lun": [{"lun": 0, "image": "ha1.img", "size": SIZE, "serial": SERIAL, "naa": NAA}],
        },), ha_devices=({"alias": "HA1", "target": iqn, "lun": 0, **timers, **ha},))
    store1 = factory.start(spec("store1", "HA1", "127.0.0.1", {
        "priority": 1, "partner": "store2", "partner_priority": 2,
        "sync_listen": sync[0], "heartbeat_listen": heartbeat[0]}))
    store2 = factory.start(spec("store2", "HA1Partner", "127.0.0.3", {
        "priority": 2, "partner": "store1", "partner_priority": 1,
        "partner_sync": sync[1], "partner_heartbeat": heartbeat[1]}))
    nodes = [store1, store2]

    async def synchronized() -> None:
        def both() -> bool:
            return all(n.management.request("GET", "/v1/ha")[0]["partner_state"]
                       == "Synchronized" for n in nodes)
        if not await _until(both, 30):
            raise RuntimeError("the HA pair did not synchronize")
    asyncio.run(synchronized())
    return nodes


async def write_round(host: str, port: int, iqn: str, lun: int, seconds: float,
                      seed: int) -> int:
    """IOPS of 4 KiB random writes at queue depth 32 through one Session."""
    async with Session(host, port, iqn, lun=lun, initiator_name=INITIATOR) as session:
        slots = (await session.read_capacity()).num_blocks // BLOCKS
        done = 0
        stop_at = time.monotonic_ns() + int(seconds * 1e9)

        async def worker(rng: random.Random) -> None:
            nonlocal done
            while time.monotonic_ns() < stop_at:
                await session.write(rng.randrange(slots) * BLOCKS, rng.randbytes(4096))
                done += 1
        start = time.monotonic_ns()
        await asyncio.gather(*(worker(random.Random(seed + i)) for i in range(DEPTH)))
        return round(done * 1e9 / (time.monotonic_ns() - start))


def throughput(tmp: Path, rounds: int, seconds: float) -> dict[str, list[int]]:
    results: dict[str, list[int]] = {"HA device": [], "single node": [], "tgtd": [],
                                     SYNC_TGTD: []}
    factory = ReferenceTargetFactory(tmp / "throughput")
    daemon = start_tgtd()
    try:
        sync, hb = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        store1, _ = ha_pair(factory, (sync, sync), (hb, hb), {})
        single = factory.start(NodeSpec(name="single", addresses=("127.0.0.5",),
                                        targets=(lun_target(size="64MiB"),)))
        tgt = daemon.new_target(name="bench", lun_size=SIZE)
        durable = daemon.new_target(name="bench-sync", lun_size=SIZE, bsoflags="sync")
        targets = {"HA device": (*store1.portals[0], store1.iqn, 0),
                   "single node": (*single.portals[0], single.iqn, 0),
                   "tgtd": (tgt.host, tgt.port, tgt.iqn, tgt.lun),
                   SYNC_TGTD: (durable.host, durable.port, durable.iqn, durable.lun)}
        for index in range(rounds):
            for name, (host, port, iqn, lun) in targets.items():
                results[name].append(asyncio.run(write_round(host, port, iqn, lun, seconds,
                                                             index * 97)))
            print(f"round {index + 1}: " + ", ".join(f"{k} {v[-1]} IOPS"
                                                    for k, v in results.items()), flush=True)
    finally:
        daemon.stop()
        factory.close()
    return results


async def blackout_run(nodes: list[ReferenceTarget], proxy: ProxyControl,
                       fault: str) -> tuple[float, float, int, int]:
    """(base gap ms, blackout ms, ops, caller errors) of one fault."""
    specs = [PathSpec(*node.portals[0], node.iqn, lun=0, name=f"p{i + 1}")
             for i, node in enumerate(nodes)]
    async with MultipathDevice(specs, connector=session_connector, policy="round-robin",
                               timers=TUNED, queue_depth=8) as dev:
        load = Load(dev)
        start = time.monotonic_ns()
        load.start()
        await asyncio.sleep(1.0)
        fault_ns = time.monotonic_ns()
        if fault == "sync link black-holed":
            await asyncio.to_thread(proxy.set_state, ["sync"], LinkState(mode="blackhole"))
        elif fault == "primary killed":
            await asyncio.to_thread(nodes[0].kill9)
        else:
            nodes[0].process.send_signal(signal.SIGSTOP)
        await asyncio.sleep(4.0)
        end_ns = time.monotonic_ns()
        await load.stop()
    return (_longest_gap(load, start + int(0.2e9), fault_ns), _longest_gap(load, fault_ns, end_ns),
            len(load.ops), len(load.errors))


def blackout(tmp: Path, faults: list[str]) -> dict[str, tuple[float, float, int, int]]:
    results = {}
    for n, fault in enumerate(faults):
        factory = ReferenceTargetFactory(tmp / f"blackout{n}")
        sync_up, hb_up = free_port(), free_port()
        links = [LinkSpec("sync", "127.0.0.1", 0, "127.0.0.1", sync_up),
                 LinkSpec("heartbeat", "127.0.0.1", 0, "127.0.0.1", hb_up)]
        try:
            with running_proxy(links) as proxy:
                nodes = ha_pair(factory, (f"127.0.0.1:{sync_up}",
                                          f"127.0.0.1:{proxy.link('sync').port}"),
                                (f"127.0.0.1:{hb_up}",
                                 f"127.0.0.1:{proxy.link('heartbeat').port}"), LAB_TIMEOUTS)
                control = ProxyControl.from_endpoint(proxy.endpoint())
                results[fault] = asyncio.run(blackout_run(nodes, control, fault))
                if fault == "primary frozen":
                    nodes[0].process.send_signal(signal.SIGCONT)
            print(f"{fault}: base gap {results[fault][0]:.0f} ms, blackout "
                  f"{results[fault][1]:.0f} ms, {results[fault][3]} caller errors", flush=True)
        finally:
            factory.close()
    return results


def section(tp: dict[str, list[int]], bo: dict[str, tuple[float, float, int, int]],
            seconds: float) -> str:
    med = {k: statistics.median(v) for k, v in tp.items() if v}
    lines = [SECTION, "", "Goals (issue 11): HA >= 0.7 x single node, single node >= tgtd; "
             "blackout <= 0.5 s for sync-link loss and a killed primary.", "",
             f"Machine: {machine()}. Run: `.venv/bin/python bench/ha_mirror.py --write`.", ""]
    if med:
        lines += [f"4 KiB random writes, queue depth 32, one harness `Session`, {seconds:g} s "
                  f"per round, {len(next(iter(tp.values())))} rounds alternating "
                  "(median IOPS):", "",
                  "| target | IOPS | rounds |", "|---|---:|---|"]
        lines += [f"| {k} | {med[k]:,.0f} | {', '.join(map(str, tp[k]))} |" for k in tp]
        lines += ["", f"HA / single node = {med['HA device'] / med['single node']:.2f} "
                  "(goal >= 0.7); single node / tgtd = "
                  f"{med['single node'] / med['tgtd']:.2f} (goal >= 1.0)."]
        if med.get(SYNC_TGTD):
            lines += [f"Single node / {SYNC_TGTD} = "
                      f"{med['single node'] / med[SYNC_TGTD]:.2f} (both durable before "
                      "they acknowledge)."]
        lines += [""]
    if bo:
        timers = ", ".join(f"{k} = {v:g} s" for k, v in LAB_TIMEOUTS.items())
        lines += [f"I/O blackout with the lab's timers ({timers}); MPIO round robin over "
                  "both nodes, tuned timers, 8 closed-loop 4 KiB writers:", "",
                  "| fault | base gap ms | blackout ms | ops | caller errors |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {k} | {b:.0f} | {g:.0f} | {o} | {e} |" for k, (b, g, o, e) in bo.items()]
    lines += ["", NOTES]
    return "\n".join(lines)


NOTES = """Reading it:
- Before issue 11 a black-holed sync link stopped all I/O for about 2.2 s: silence
  detection (one sync timeout, 1 s, checked every third of it), then the fence, a second
  full sync timeout that waits until the partner has surely noticed. Now the survivor asks
  the live partner over the heartbeat link to stop (FENCE), and the partner answers once its
  Not synchronized state is persisted (FENCED), so the fence ends at once; with the lab's
  0.5 s sync timeout the pause is detection plus a heartbeat round trip.
- Primary killed: the partner sees the reset at once, but nothing proves the primary is
  dead rather than cut off (through the lab's proxy a killed node and a cut link look
  alike: accepted, then reset), so it waits out the fence (one sync timeout) before it
  carries on alone. The writes it had forwarded to the dead sequencer are refused the
  moment their link is lost (their answer could only come back on it), so MPIO's retry
  interval (0.2 s tuned) runs during the fence, not after it: ~0.75 s before, ~0.52-0.58 s
  now (paired runs, same load: 920/776 ms old, 575/515 ms new). The rest is the fence
  itself; going below it needs proof of death or read leases, not a shorter timer.
- Primary frozen: silence detection plus the fence (no heartbeat answer, so no FENCED).
- tgtd acknowledges writes from its page cache (its LU reports a write cache); the
  reference node and the HA device are write-through (fdatasync per write, group
  commit), so the single-node/tgtd ratio compares durable with cached writes. The
  O_SYNC row is tgtd made as durable (each pwrite synchronous in its worker threads).
- HA / single node depends on the machine's spare CPU: each mirrored write costs two
  node processes' event loops (the sequencer's and the partner's, in py-spy profiles
  about 0.75 and 0.5 of a core at 6,700 writes/s) besides the client's, on two cores.
  Measured on a quiet machine (load 1.5) it is 0.56; an earlier run at load 8.5, where
  every target was slowed alike, gave 0.71. The goal (>= 0.7) is not met on a quiet
  two-core machine."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--skip", choices=("throughput", "blackout"), default=None)
    parser.add_argument("--faults", default="sync link black-holed,primary killed,"
                                            "primary frozen")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="splitbrain-ha-bench-") as tmp:
        tp = {} if args.skip == "throughput" else throughput(Path(tmp), args.rounds,
                                                               args.seconds)
        bo = {} if args.skip == "blackout" else blackout(Path(tmp), args.faults.split(","))
    text = section(tp, bo, args.seconds)
    print(text)
    if args.write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
