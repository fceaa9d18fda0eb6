"""Benchmark: how long the fault drivers take to act, on the lab and over SSH.

A fault's injection time is part of every failover time the harness measures
(the clock starts when the fault is asked for, the rule lands a little later),
so it has to be known and small next to the budgets (seconds). Measured with
``time.monotonic_ns()``, each operation repeated and reported as median / p95:

- netns (local, root): build a three-namespace, two-bridge topology; sweep it;
  ``ip link`` down+up; an nft black hole (4 rules) added and healed in a namespace;
- ssh (Debian's sshd in a netns host, key login, ed25519): connect; one command
  round trip (``true``); a black hole added, and healed, through ``LinuxHost``.

Run as root: ``.venv/bin/python -m bench.remote_latency [--repeat 20]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: a checkout's

from harness.lab import netns
from harness.remote.linux import LinuxHost
from tests.support.netns import NetnsRun, make_pair
from tests.support.sshd import running_sshd, sshd_missing


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Milliseconds of ``repeat`` calls of ``fn``."""
    out = []
    for _ in range(repeat):
        start = time.monotonic_ns()
        fn()
        out.append((time.monotonic_ns() - start) / 1e6)
    return out


def row(name: str, ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"| {name} | {statistics.median(ms):.1f} ms | {p95:.1f} ms | {len(ms)} |"


def bench_netns(repeat: int) -> list[str]:
    rows = []
    run = NetnsRun(run=netns.new_run_id())

    def build() -> None:
        switch = run.namespace("switch")
        hosts = [run.namespace(h) for h in ("h1", "h2", "h3")]
        netns.attach(hosts[0], "a0", switch, "br-a", "h1-a", "10.77.0.1/24")
        netns.attach(hosts[1], "a0", switch, "br-a", "h2-a", "10.77.0.2/24")
        netns.attach(hosts[1], "b0", switch, "br-b", "h2-b", "10.78.0.2/24")
        netns.attach(hosts[2], "b0", switch, "br-b", "h3-b", "10.78.0.3/24")

    builds, sweeps = [], []
    try:
        for _ in range(max(3, repeat // 4)):
            builds += timed(build, 1)
            sweeps += timed(lambda: netns.sweep(run.prefix), 1)
        rows.append(row("netns: build 3 hosts on 2 bridges (switch namespace)", builds))
        rows.append(row("netns: sweep it all", sweeps))
        build()
        h1 = netns.Namespace(netns.namespace_name(run.run, "h1"))
        rows.append(row("netns: ip link down + up", timed(
            lambda: (h1.set_link("a0", up=False), h1.set_link("a0", up=True)), repeat)))
        rows.append(row("netns: nft black hole (4 rules) add", timed(
            lambda: (h1.nft.black_hole("b", peer="10.77.0.2", port=3260)), repeat // 2 or 1)))
        rows.append(row("netns: nft black hole heal by tag", timed(
            lambda: h1.nft.remove("b"), 1)))
    finally:
        netns.sweep(run.prefix)
    return rows


def bench_ssh(repeat: int) -> list[str]:
    run = NetnsRun(run=netns.new_run_id())
    rows = []
    try:
        pair = make_pair(run)
        with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp, \
                running_sshd(pair, Path(tmp)) as sshd:
            def connect() -> None:
                with LinuxHost(sshd.target(), sock_factory=sshd.sock_factory) as host:
                    host.connection  # noqa: B018 - the connect is what is measured

            rows.append(row("ssh: connect + key login", timed(connect, max(3, repeat // 2))))
            with LinuxHost(sshd.target(), sock_factory=sshd.sock_factory) as host:
                rows.append(row("ssh: one command round trip (true)",
                                timed(lambda: host.run(["true"]), repeat)))
                adds, heals = [], []
                for _ in range(max(3, repeat // 4)):
                    adds += timed(lambda: host.black_hole("b", peer=pair.client_address,
                                                          port=3260), 1)
                    heals += timed(lambda: host.heal("b"), 1)
                rows.append(row("ssh: LinuxHost.black_hole (table, chains, 4 rules, list)", adds))
                rows.append(row("ssh: LinuxHost.heal (list, 4 deletes, list, timer check)", heals))
    finally:
        netns.sweep(run.prefix)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.remote_latency needs root (network namespaces)", file=sys.stderr)
        return 2
    rows = ["| operation | median | p95 | runs |", "|---|---|---|---|"]
    rows += bench_netns(args.repeat)
    missing = sshd_missing()
    if missing:
        rows.append(f"| ssh: skipped | {missing} | | |")
    else:
        rows += bench_ssh(args.repeat)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
