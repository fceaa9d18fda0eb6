"""``splitbrain heal``: undo every fault a run left behind, from the fault journal.

Reads each journal, heals every fault that was injected (or about to be) and
never marked healed, newest first, and marks each healed. Safe to run at any
time and any number of times: healing what is not broken does nothing. Exit
status 0 when nothing is left broken, 1 when some fault could not be healed
(each is printed with the reason; they stay open for the next attempt).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from harness.faults.guard import heal_journal
from harness.faults.journal import FaultJournal, default_journal_path

HELP = "heal every fault left open in a fault journal (after a crashed or killed run)"


def default_journals() -> list[Path]:
    """The default journal plus the journal of every lab under the default lab base."""
    paths = [default_journal_path()]
    if os.environ.get("SPLITBRAIN_LAB_DIR"):
        paths.append(Path(os.environ["SPLITBRAIN_LAB_DIR"]) / "faults.jsonl")
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / f"splitbrain-{os.getuid()}"
    paths += sorted(base.glob("*/faults.jsonl"))
    return [p for p in dict.fromkeys(paths) if p.exists()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--journal",
        action="append",
        type=Path,
        metavar="PATH",
        help="fault journal to heal (repeatable; default: the default journal "
        "and every lab's journal)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to keep retrying each heal (default 30)",
    )


def run(args: argparse.Namespace) -> int:
    journals = args.journal or default_journals()
    failed = healed = 0
    for path in journals:
        for outcome in heal_journal(FaultJournal(path), args.deadline):
            if outcome.healed:
                healed += 1
                print(f"healed {outcome.kind} {outcome.target} ({outcome.id}) [{path}]")
            else:
                failed += 1
                print(f"NOT healed {outcome.kind} {outcome.target} ({outcome.id}): {outcome.error}")
    if not healed and not failed:
        print(
            "nothing to heal: no open faults in " + (", ".join(map(str, journals)) or "any journal")
        )
    return 1 if failed else 0
