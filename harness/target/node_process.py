"""The node as a process: ``serve --config node.toml [--ready-file F] [--log-level L]``.

One storage node runs as its own process until SIGTERM, printing (and, with
``--ready-file``, writing) one JSON ready line once its portals listen. Both
``python -m harness.target serve`` (what a lab starts, with the smallest import
graph) and ``splitbrain target serve`` parse and run it here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="node TOML file")
    parser.add_argument("--ready-file", type=Path,
                        help="also write the ready line to this file (removed on exit)")
    parser.add_argument("--log-level",
                        default=os.environ.get("SPLITBRAIN_NODE_LOG_LEVEL", "WARNING"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def configure_logging(level: str) -> None:
    """The node's log on stderr at ``level``; the HA device's state changes, link losses
    and stalls are rare and are its audit trail (what a chaos run's node log must show
    to explain a decision), so they are logged at INFO whatever the level."""
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("splitbrain.target.ha").setLevel(
        min(logging.getLevelName(level), logging.INFO))


def serve_node(args: argparse.Namespace) -> int:
    """Run the node of ``args.config`` until SIGTERM; return its exit status."""
    from harness.target.config import load_config
    from harness.target.node import install_event_loop_policy, serve

    configure_logging(args.log_level)
    config = load_config(args.config)
    loop_name = install_event_loop_policy()
    return asyncio.run(serve(config, ready_file=args.ready_file, loop_name=loop_name))
