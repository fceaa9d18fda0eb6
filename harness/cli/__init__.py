"""The ``splitbrain`` command: one sub-command per module in this package.

Each sub-command module defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``. Only the chosen module is imported, so ``splitbrain
probe`` does not pay for matplotlib. Errors a user can cause
(``SplitbrainError``) print one line and exit non-zero; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from harness import __version__
from harness.errors import SplitbrainError

# name -> module under harness.cli; listed in the order ``--help`` shows them.
COMMANDS: tuple[str, ...] = (
    "run",
    "validate",
    "chaos",
    "cluster",
    "probe",
    "target",
    "lab",
    "heal",
    "workload",
    "check",
    "report",
)


def _module_name(command: str) -> str:
    return f"harness.cli.{command.replace('-', '_')}_command"


def available_commands() -> list[str]:
    """The sub-commands whose module exists in this installation."""
    return [c for c in COMMANDS if importlib.util.find_spec(_module_name(c)) is not None]


EXIT_CODES = """\
exit codes (each command's --help lists its own):
  0    done, and nothing was found wrong
  1    a check or scenario failed, or an error the message explains
  2    bad command line
  128+N  stopped by signal N after healing (130 Ctrl-C, 143 SIGTERM)

Errors are one line: what happened, where, and what to do. Progress is drawn on a
terminal and written as plain timestamped lines elsewhere (CI logs); colour only on
a terminal, never with NO_COLOR set."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splitbrain",
        description="Validation and chaos-testing harness for highly available iSCSI storage.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"splitbrain {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in available_commands():
        if command is not None and name != command:
            sub.add_parser(name, add_help=False)
            continue
        module = importlib.import_module(_module_name(name))
        sp = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except SplitbrainError as exc:
        _error(args.command, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"splitbrain {args.command}: interrupted", file=sys.stderr)
        return 130


def _error(command: str, message: str) -> None:
    """One line on stderr; ``error:`` in red only on a terminal (and not with NO_COLOR)."""
    red = sys.stderr.isatty() and not os.environ.get("NO_COLOR") \
        and os.environ.get("TERM", "") != "dumb"
    word = "\x1b[1;31merror:\x1b[0m" if red else "error:"
    print(f"splitbrain {command}: {word} {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
