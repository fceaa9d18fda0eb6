"""``splitbrain cluster``: the failover cluster's nodes and roles, moves, and live migration
under load.

- ``status``: each node's state and each VM role's owner (a real site: through
  ``Get-ClusterNode`` / ``Get-ClusterGroup``; the lab: its cluster started for the
  look and stopped again);
- ``move VM NODE [--quick]``: ``Move-ClusterVirtualMachineRole`` on a real site
  (the lab's VMs live only inside a run: use ``live-migration``);
- ``live-migration [--scenario NAME ...] [--moves N] [--output DIR]``: the chaos
  family on the lab (harness.cluster.scenario), one Chaos result per scenario in
  the results directory; exit 1 if any failed.

A site that does not say ``destructive = true`` is refused for ``move`` and
``live-migration`` in one line, before anything is touched.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import SplitbrainError

HELP = "failover cluster: node and role status, move a VM, live migration under load"


class ClusterCommandError(SplitbrainError):
    """A cluster command that cannot run on this site as asked."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inventory", type=Path, default=None, metavar="FILE",
                        help="inventory TOML (default: the bundled lab)")
    parser.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                        help="the lab's state directory (adopts a running lab there)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("status", help="nodes and their state, VM roles and their owners")
    move = sub.add_parser("move", help="move a VM role to a node (real sites)")
    move.add_argument("vm")
    move.add_argument("node")
    move.add_argument("--quick", action="store_true", help="quick migration instead of live")
    lm = sub.add_parser("live-migration", help="the live-migration chaos family on the lab")
    lm.add_argument("--scenario", action="append", default=None, metavar="NAME",
                    help="run only these scenarios (repeatable; default: all)")
    lm.add_argument("--moves", type=int, default=6, metavar="N",
                    help="migrations per scenario (default 6)")
    lm.add_argument("--output", type=Path, default=None, metavar="DIR",
                    help="results directory (default: a new temporary one, printed)")


def run(args: argparse.Namespace) -> int:
    from fixtures.settings import LAB_INVENTORY
    from harness.cli.chaos_site import open_site
    from harness.lab.inventory import load

    inventory = load(args.inventory or LAB_INVENTORY)
    out = sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    if args.action == "status":
        return _status(inventory, args, say)
    if args.action == "move" and inventory.lab is not None:
        raise ClusterCommandError(
            "the lab's VMs live only inside a run; use `splitbrain cluster live-migration` "
            "(or sut.cluster in a suite) to move them")
    if args.action == "live-migration":
        from harness.cluster.scenario import catalogue

        if inventory.lab is None:
            raise ClusterCommandError(
                f"{inventory.path} is a real site; live-migration drives the lab's own "
                "cluster (on a real site: `splitbrain cluster move` with the guest agent)")
        if args.moves < 1:
            raise ClusterCommandError(f"--moves {args.moves}: at least one migration")
        known = catalogue(args.moves)
        unknown = [n for n in args.scenario or [] if n not in known]
        if unknown:
            raise ClusterCommandError(f"no live-migration scenario {', '.join(unknown)}; "
                                      f"scenarios: {', '.join(known)}")
    with open_site(inventory, command=f"cluster {args.action}", state_dir=args.state_dir,
                   say=say) as site:
        if args.action == "move":
            report = site.sut.cluster.move(args.vm, args.node,
                                           "quick" if args.quick else "live")
            say(f"{args.vm}: {report.source} -> {report.destination} ({report.kind}) in "
                f"{report.total_s:.1f} s")
            return 0
        return _live_migration(site.sut, args, say)


def _status(inventory: Any, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    from fixtures.sut import SystemUnderTest
    from harness.cli.chaos_site import open_site

    def show(sut: Any) -> None:
        try:
            for node in sut.cluster.nodes():
                owner = " (witness owner)" if node.witness_owner else ""
                say(f"node {node.name}: {node.state}{owner}")
            for role in sut.cluster.roles():
                say(f"role {role.name}: {role.state} on {role.owner or '-'}")
        finally:
            sut.close()

    if inventory.lab is None:  # reading a real site's state changes nothing
        show(SystemUnderTest(inventory, None))
        return 0
    with open_site(inventory, command="cluster status", state_dir=args.state_dir,
                   say=say) as site:
        show(site.sut)
    return 0


def _live_migration(sut: Any, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    from harness.checks.results import ResultsDir, ResultWord
    from harness.cluster.scenario import catalogue, run_scenario

    output = args.output or Path(tempfile.mkdtemp(prefix="splitbrain-live-migration-"))
    results = ResultsDir(output)
    say(f"splitbrain cluster live-migration: results in {output}/")
    scenarios = catalogue(args.moves)
    failed = 0
    try:
        for name in args.scenario or list(scenarios):
            result = run_scenario(sut, sut.cluster, scenarios[name], results)
            failed += result.result is ResultWord.FAILED
            say(f"{result.name}: {result.result}: {result.reason}")
    finally:
        sut.close()
    return 1 if failed else 0
