"""``python -m harness.target serve --config node.toml``: the node process.

The same as ``splitbrain target serve`` (both are :mod:`harness.target.node_process`),
without the rest of the CLI, so a lab starts nodes with the smallest import graph.
Querying a running node is ``splitbrain target status|targets|sessions|...``.
"""

from __future__ import annotations

import argparse
import sys

from harness.errors import SplitbrainError
from harness.target.node_process import add_serve_arguments, serve_node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.target",
                                     description="run a bundled reference iSCSI target node")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_serve_arguments(sub.add_parser(
        "serve", help="run a node until SIGTERM (prints a JSON ready line)"))
    args = parser.parse_args(argv)
    try:
        return serve_node(args)
    except SplitbrainError as exc:
        print(f"splitbrain target: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
