"""``splitbrain target``: run a reference target node and manage it.

``serve`` runs the node in the foreground (one JSON ready line on stdout, SIGTERM
stops it cleanly). ``status``, ``targets``, ``create-lun``, ``delete-lun`` and
``sessions`` talk to a running node's management API, found through ``--url`` or
through the ready file the node writes into its data directory (``--config``);
the token is read from the environment variable the config names (or
``--token-env``), never from the command line. ``ha`` (create, status,
mark-synchronized) and ``witness`` are the HA device commands
(harness.cli.target_ha).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from harness.cli.target_ha import add_ha_arguments
from harness.errors import SplitbrainError
from harness.target.node_process import add_serve_arguments, serve_node

HELP = "run the bundled reference iSCSI target node, or query and change a running one"


class TargetCommandError(SplitbrainError):
    """The command cannot find or reach the node it should talk to."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    serve = sub.add_parser("serve", help="run a node until SIGTERM (prints a JSON ready line)")
    add_serve_arguments(serve)
    serve.set_defaults(_action=serve_node)

    def client_args(p: argparse.ArgumentParser) -> None:
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--config", type=Path, help="the running node's TOML file")
        where.add_argument("--url", help="management URL, e.g. http://127.0.0.1:8080")
        p.add_argument("--token-env", help="environment variable holding the token "
                       "(default: the config's management.token_env)")

    p = sub.add_parser("status", help="node status (portals, targets, sessions)")
    client_args(p)
    p.set_defaults(_action=lambda a: _print(_client(a).status()))

    p = sub.add_parser("targets", help="list targets and their LUNs")
    client_args(p)
    p.set_defaults(_action=lambda a: _print(_client(a).targets()))

    p = sub.add_parser("sessions", help="list sessions: initiator, ISID, TSIH, connections")
    client_args(p)
    p.set_defaults(_action=lambda a: _print(_client(a).sessions()))

    p = sub.add_parser("create-lun", help="add a LUN (a sparse image file) to a target")
    client_args(p)
    p.add_argument("--target", required=True, help="target IQN")
    p.add_argument("--lun", required=True, type=int)
    p.add_argument("--size", required=True, help='size like "1GiB"')
    p.add_argument("--image", help="image path (default: <target-alias-or-lun>.img in data_dir)")
    p.add_argument("--serial")
    p.add_argument("--naa", help="NAA designator, hex")
    p.set_defaults(_action=_create_lun)

    p = sub.add_parser("delete-lun", help="remove a LUN from a target (the image file stays)")
    client_args(p)
    p.add_argument("--target", required=True, help="target IQN")
    p.add_argument("--lun", required=True, type=int)
    p.add_argument("--force", action="store_true", help="even with commands in flight")
    p.set_defaults(_action=lambda a: _print(_client(a).delete_lun(a.target, a.lun,
                                                                force=a.force)))

    add_ha_arguments(sub, client_args, _client)


def _client(args: argparse.Namespace) -> Any:
    from harness.target.management import ManagementClient

    token_env = args.token_env
    url = args.url
    if args.config is not None:
        from harness.target.config import load_config
        from harness.target.node import READY_FILE

        config = load_config(args.config)
        token_env = token_env or config.management.token_env
        ready = config.data_dir / READY_FILE
        try:
            url = json.loads(ready.read_text(encoding="utf-8"))["management"]
        except (OSError, ValueError, KeyError):
            raise TargetCommandError(f"{ready}: no ready file; is the node of {args.config} "
                                     "running? (start it with splitbrain target serve)") from None
    token_env = token_env or "SPLITBRAIN_TARGET_TOKEN"
    token = os.environ.get(token_env, "")
    if not token:
        raise TargetCommandError(f"environment variable {token_env} is not set; export the "
                                 "node's management token")
    return ManagementClient(url, token)


def _create_lun(args: argparse.Namespace) -> int:
    spec: dict[str, Any] = {"lun": args.lun, "size": args.size,
                            "image": args.image or _default_image(args.target, args.lun)}
    if args.serial:
        spec["serial"] = args.serial
    if args.naa:
        spec["naa"] = args.naa
    return _print(_client(args).create_lun(args.target, spec))


def _default_image(target_iqn: str, lun: int) -> str:
    stem = "".join(c if c.isalnum() or c in "-." else "-" for c in target_iqn.split(":")[-1])
    return f"{stem}-lun{lun}.img"


def _print(value: Any) -> int:
    print(json.dumps(value, indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    return int(args._action(args) or 0)
