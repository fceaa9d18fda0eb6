"""``python -m harness.target serve --config node.toml``: the node process.

The same entry as ``splitbrain target serve``; kept importable without the rest
of the CLI so a lab can start nodes with the smallest possible import graph.
"""

from __future__ import annotations

import argparse
import sys

from harness.errors import SplitbrainError


def main(argv: list[str] | None = None) -> int:
    from harness.cli import target_command

    parser = argparse.ArgumentParser(prog="python -m harness.target",
                                     description=target_command.HELP)
    target_command.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return target_command.run(args)
    except SplitbrainError as exc:
        print(f"splitbrain target: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
