"""``splitbrain run``: the main job: a seeded chaos run on the bundled lab, checked end to end.

A thin wrapper over the chaos runner (``harness.chaos``): brings the lab up (or
reuses one already up), runs the stamped workload over MPIO on the lab's
vm-storage HA device while the seeded nemesis cuts an iSCSI path, black-holes
the sync channel and kills the secondary storage node (one at a time, each
healed before the next), waits until both replicas are Synchronized, then
checks integrity through every path, divergence and split brain between the
replicas, and timing against the inventory's budgets. Writes history.jsonl,
schedule.json, verdict.json, summary.txt and timeline.png/svg to ``--output``
(default ``reports/run-<UTC time>-<seed>/``). Every fault is healed and a lab
the run started is taken down on every way out. Exits 0 only when no problem
was found; otherwise prints one line per problem and exits 1.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

HELP = "the main job: chaos run on the lab (workload + faults over MPIO), then every check"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inventory", type=Path, default=None, metavar="PATH",
                        help="lab inventory TOML (default: the bundled lab.toml)")
    parser.add_argument("--seed", type=int, default=None, metavar="N",
                        help="seed of the fault schedule and the workload (default: random, "
                             "printed)")
    parser.add_argument("--duration", type=float, default=20.0, metavar="S",
                        help="seconds of workload; faults fit inside it (default 20)")
    parser.add_argument("--output", type=Path, default=None, metavar="DIR",
                        help="where to write the run's files (default "
                             "reports/run-<UTC time>-<seed>/)")
    parser.add_argument("--keep-lab", action="store_true",
                        help="leave a lab this run started up afterwards")
    parser.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                        help="lab state directory (default: as `splitbrain lab up`)")
    parser.add_argument("--device", default=None, metavar="ALIAS",
                        help="HA device to exercise (default: the first vm-storage device)")
    parser.add_argument("--faults", default=None, metavar="KIND[,KIND...]",
                        help="fault kinds to draw from: path-cut, sync-blackhole, "
                             "secondary-kill (default: all), or none")
    parser.add_argument("--max-faults", type=int, default=None, metavar="N",
                        help="schedule at most N faults")
    parser.add_argument("--writers", type=int, default=4, help="workload writers (default 4)")
    parser.add_argument("--qd", type=int, default=4, help="queue depth per writer (default 4)")
    parser.add_argument("--budget-profile", default="default", metavar="NAME",
                        help="the inventory's [budgets.NAME] to judge timing by")


def lab_only(inventory: Any) -> None:
    """``splitbrain run`` drives the loopback lab (its initiator connects from here)."""
    from harness.chaos.runner import RunError

    if inventory.lab is None:
        raise RunError(
            f"{inventory.path} has no [lab] table: `splitbrain run` drives a lab; "
            "pass a lab inventory with --inventory (the default is the bundled lab), "
            "or use `splitbrain chaos` for a real site"
        )
    if inventory.lab.backend != "loopback":
        raise RunError(
            f"{inventory.path}: lab.backend is {inventory.lab.backend!r}; "
            "`splitbrain run` drives the loopback lab (its initiator connects from this "
            "namespace); use an inventory with backend = \"loopback\""
        )


def run(args: argparse.Namespace) -> int:
    from harness.chaos.runner import RunSettings, check_settings
    from harness.chaos.schedule import parse_kinds
    from harness.cli.chaos_site import execute_run
    from harness.cli.lab_command import lab_inventory
    from harness.lab.inventory import load

    inventory = load(args.inventory or lab_inventory())
    lab_only(inventory)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    settings = RunSettings(
        seed=seed,
        duration_s=args.duration,
        output=args.output,
        device=args.device,
        fault_kinds=parse_kinds(args.faults),
        max_faults=args.max_faults,
        writers=args.writers,
        queue_depth=args.qd,
        budget_profile=args.budget_profile,
    )
    check_settings(inventory, settings)
    return execute_run(inventory, settings, command="run", state_dir=args.state_dir,
                       keep_lab=args.keep_lab, out=sys.stdout)
