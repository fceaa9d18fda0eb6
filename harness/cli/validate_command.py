"""``splitbrain validate``: the cluster validation wizard's checks against a lab or a site.

Runs the catalogue of ``harness.validation`` (the wizard's Storage, Network,
Inventory, System, Hyper-V and Cluster Configuration tests plus the HA-storage
checks) against the inventory's site: the bundled lab by default, adopted if
it is already up, else started for the run and taken down afterwards. Prints a
table per category and the wizard's closing words; writes every result as
JSON (``splitbrain report`` renders them); exits 1 when any test Failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HELP = "run the cluster validation wizard's checks (and the HA-storage ones) against a site"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inventory", type=Path, default=None, metavar="FILE",
                        help="inventory of the site (default: the bundled lab)")
    parser.add_argument("--include", action="append", default=[], metavar="NAME|CATEGORY",
                        help="run only these tests or categories (repeat, or comma-separate)")
    parser.add_argument("--ignore", action="append", default=[], metavar="NAME|CATEGORY",
                        help="skip these tests or categories (repeat, or comma-separate)")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON instead of tables")
    parser.add_argument("--results", type=Path, default=None, metavar="DIR",
                        help="results directory (default: reports/validation-<site>-<time>)")
    parser.add_argument("--list", action="store_true",
                        help="list the tests (category, name, description) and run nothing")
    parser.add_argument("--budget-profile", default="default",
                        help="budget profile of the inventory (disk latency threshold)")


def _names(values: list[str]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


@contextlib.contextmanager
def site_for(inventory: Any, budget_profile: str, say: Any) -> Iterator[Any]:
    """The ``ValidationSite`` of an inventory: its lab adopted or started, or a real site."""
    from fixtures.sut import SystemUnderTest
    from harness.validation.site import ValidationSite

    if inventory.lab is None:
        yield ValidationSite(SystemUnderTest(inventory, None, budget_profile))
        return
    from harness.lab.lifecycle import LabSite

    resync = inventory.budget(budget_profile).limits.get("resync_s", 120.0) \
        if inventory.budgets else 120.0
    with LabSite(inventory, resync_s=float(resync), say=say) as lab:
        yield ValidationSite(SystemUnderTest(inventory, lab.lab, budget_profile))


def run(args: argparse.Namespace) -> int:
    from fixtures.settings import LAB_INVENTORY
    from harness.checks.results import ResultsDir
    from harness.lab.inventory import load
    from harness.validation.model import select
    from harness.validation.runner import catalogue, validate

    include, ignore = _names(args.include), _names(args.ignore)
    chosen = select(catalogue(), include, ignore)  # refuses an unknown name before any lab
    if args.list:
        for c in chosen:
            print(f"{c.category:22} {c.name}\n{'':22} {c.description}")
        return 0
    inventory = load(args.inventory or LAB_INVENTORY)
    out = sys.stderr if args.json else sys.stdout
    results_path = args.results or Path("reports") / (
        f"validation-{inventory.site.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    results = ResultsDir(results_path)

    from harness.report.console import Console

    # progress: a bar and coloured result words on a terminal, plain lines in a log
    say, console = Console(out).line, Console(sys.stderr)
    t0, started = time.monotonic(), time.time()
    with site_for(inventory, args.budget_profile, say) as site:
        say(f"Validating site {inventory.site.name!r} ({inventory.path}, {site.backend}): "
            f"{len(chosen)} test(s)")
        with console.progress("validation checks", len(chosen), log_lines=False) as bar:
            done: list[Any] = []

            def progress(r: Any) -> None:
                done.append(r)
                bar.update(len(done), r.name)
                if not args.json:
                    console.result(str(r.result), f"{r.category} - {r.name}")

            report = validate(site, include=include, ignore=ignore, results=results,
                              command="splitbrain " + " ".join(sys.argv[1:]),
                              on_result=progress)
    if inventory.lab is None:  # a real site: its hosts' logs (redacted) join the results
        from harness.remote import evidence

        evidence.collect_into(results, inventory, started, say)
    elapsed = time.monotonic() - t0
    if args.json:
        print(json.dumps({"site": inventory.site.name, "summary": report.summary,
                          "elapsed_s": round(elapsed, 2), "results_dir": str(results_path),
                          "results": [r.to_json() for r in report.results]}, indent=2))
    else:
        print_tables(report.results)
        print(f"\nResults: {results_path}   ({elapsed:.1f} s)")
        print(report.summary)
    return 1 if report.failed else 0


def print_tables(results: list[Any]) -> None:
    from harness.validation.model import CATEGORIES

    for category in CATEGORIES:
        rows = [r for r in results if r.category == category]
        if not rows:
            continue
        width = max(len(r.name) for r in rows)
        print(f"\n{category}")
        print(f"  {'Test':<{width}}  {'Result':<15} Reason")
        for r in rows:
            print(f"  {r.name:<{width}}  {r.result!s:<15} {r.reason}")
