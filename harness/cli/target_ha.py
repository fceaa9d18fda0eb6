"""``splitbrain target ha ...`` and ``splitbrain target witness``: HA devices.

``ha create`` is the Add Target wizard for an HA device: it takes this node
(``--config`` or ``--url``) and its partner (``--partner-url`` with the
partner's token in ``--partner-token-env``), derives one device identity
(serial and NAA designator) for both replicas, names the targets after the
wizard (``<alias>`` here, ``<alias>Partner`` there), shows a summary of both
sides, and on confirmation creates the replica on both nodes through their
management APIs (``POST /v1/ha``). ``ha status`` shows every replica with its
state, the partner's state, links and resync progress; a replica that is
synchronizing is flagged the way the seed's console shows a yellow warning
triangle. ``ha mark-synchronized`` is the administrator override after a
double failure.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable
from typing import Any

from harness.errors import SplitbrainError

IQN_PREFIX = "iqn.2026-11.org.splitbrain"
WARNING = "\u26a0"  # the console's yellow warning triangle


class WizardError(SplitbrainError):
    """The HA device cannot be created as asked."""

    exit_code = 2


def add_ha_arguments(sub: Any, client_args: Callable[[argparse.ArgumentParser], None],
                     client: Callable[[argparse.Namespace], Any]) -> None:
    ha = sub.add_parser("ha", help="HA devices: create (the wizard), status, mark-synchronized")
    ha_sub = ha.add_subparsers(dest="ha_action", metavar="HA-ACTION", required=True)

    p = ha_sub.add_parser("create", help="create an HA device on this node and its partner")
    client_args(p)
    p.add_argument("--alias", required=True, help="device name, e.g. HA1")
    p.add_argument("--size", required=True, help='size of the image, e.g. "1GiB"')
    p.add_argument("--lun", type=int, default=0)
    p.add_argument("--image", help="image file name (default: <alias>.img in each data_dir)")
    p.add_argument("--partner-url", required=True, help="the partner node's management URL")
    p.add_argument("--partner-token-env", required=True,
                   help="environment variable holding the partner's management token")
    p.add_argument("--sync-address", required=True,
                   help="HOST:PORT the primary listens on for the sync channel")
    p.add_argument("--heartbeat-address",
                   help="HOST:PORT the primary listens on for the heartbeat (another network)")
    p.add_argument("--priority", choices=["primary", "secondary"], default="primary",
                   help="this node's role; the partner gets the other one")
    p.add_argument("--initial-sync", choices=["clear", "from-partner", "none"], default="none")
    p.add_argument("--initial-source", choices=["this", "partner"], default="this",
                   help="with --initial-sync from-partner: whose data is copied")
    p.add_argument("--strategy", choices=["heartbeat", "node-majority"], default="heartbeat")
    p.add_argument("--witness", help="HOST:PORT of the witness (node-majority)")
    p.add_argument("--yes", action="store_true", help="create without asking for confirmation")
    p.set_defaults(_action=lambda a: _create(a, client))

    p = ha_sub.add_parser("status", help="replicas, states, links and resync progress")
    client_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(_action=lambda a: _status(a, client))

    p = ha_sub.add_parser("mark-synchronized",
                          help="make this replica the source after a double failure")
    client_args(p)
    p.add_argument("--alias", required=True)
    p.add_argument("--yes", action="store_true")
    p.add_argument("--force", action="store_true",
                   help="mark even when the partner is known to hold newer data (its disk "
                        "is lost for good)")
    p.set_defaults(_action=lambda a: _mark(a, client))

    w = sub.add_parser("witness", help="run the node-majority witness until SIGTERM")
    w.add_argument("--listen", required=True, help="HOST:PORT")
    w.add_argument("--state", required=True, help="file that keeps the grants")
    w.set_defaults(_action=_witness)


def replica_specs(*, alias: str, size: str, lun: int, image: str | None, here: str,
                  partner: str, primary_here: bool, sync: str, heartbeat: str | None,
                  initial_sync: str, initial_source: str, strategy: str,
                  witness: str | None, serial: str, naa: str) -> dict[str, dict[str, Any]]:
    """The ``POST /v1/ha`` bodies for this node and the partner (pure, tested)."""
    if strategy == "node-majority" and not witness:
        raise WizardError("--strategy node-majority needs --witness HOST:PORT")
    primary, secondary = (here, partner) if primary_here else (partner, here)
    source = here if initial_source == "this" else partner
    specs = {}
    for node in (primary, secondary):
        target_alias = alias if node == here else f"{alias}Partner"
        iqn = f"{IQN_PREFIX}:{node.lower()}.{target_alias.lower()}"
        is_primary = node == primary
        device: dict[str, Any] = {
            "alias": alias, "target": iqn, "lun": lun,
            "priority": 1 if is_primary else 2, "partner_priority": 2 if is_primary else 1,
            "partner": secondary if is_primary else primary, "strategy": strategy,
            "initial_sync": initial_sync, "group": 1 if is_primary else 2,
            "partner_group": 2 if is_primary else 1,
        }
        if initial_sync == "from-partner":
            device["initial_source"] = source
        if witness:
            device["witness"] = witness
        channel_key = "{}_listen" if is_primary else "partner_{}"
        device[channel_key.format("sync")] = sync
        if heartbeat:
            device[channel_key.format("heartbeat")] = heartbeat
        specs[node] = {
            "target": {"iqn": iqn, "alias": target_alias,
                       "lun": [{"lun": lun, "image": image or f"{alias.lower()}.img",
                                "size": size, "serial": serial, "naa": naa}]},
            "ha_device": device,
        }
    return specs


def new_identity(alias: str) -> tuple[str, str]:
    """A serial and a locally assigned NAA (type 3) designator for a new device."""
    return f"{alias.upper()[:8]}-{secrets.token_hex(4).upper()}", "3" + secrets.token_hex(8)[:15]


def summary(specs: dict[str, dict[str, Any]]) -> str:
    lines = ["HA device summary:"]
    for node, spec in specs.items():
        dev, lun = spec["ha_device"], spec["target"]["lun"][0]
        role = "primary" if dev["priority"] == 1 else "secondary"
        lines += [f"  {node} ({role}, priority {dev['priority']}, ALUA group {dev['group']})",
                  f"    target   {spec['target']['iqn']}  LUN {lun['lun']}",
                  f"    image    {lun['image']}  {lun['size']}",
                  f"    identity serial {lun['serial']}  NAA {lun['naa']}"]
        for key in ("sync_listen", "partner_sync", "heartbeat_listen", "partner_heartbeat"):
            if key in dev:
                lines.append(f"    {key.replace('_', ' '):<17}{dev[key]}")
    first = next(iter(specs.values()))["ha_device"]
    lines.append(f"  strategy {first['strategy']}, initial synchronization "
                 f"{first['initial_sync']}")
    return "\n".join(lines)


def _partner_client(args: argparse.Namespace) -> Any:
    from harness.target.management import ManagementClient

    token = os.environ.get(args.partner_token_env, "")
    if not token:
        raise WizardError(f"environment variable {args.partner_token_env} is not set; export "
                          "the partner node's management token")
    return ManagementClient(args.partner_url, token)


def _create(args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]) -> int:
    here, there = client(args), _partner_client(args)
    here_name, there_name = here.status()["node"], there.status()["node"]
    if here_name == there_name:
        raise WizardError(f"this node and the partner are both {here_name}; "
                          "--partner-url must name the other storage node")
    serial, naa = new_identity(args.alias)
    specs = replica_specs(
        alias=args.alias, size=args.size, lun=args.lun, image=args.image, here=here_name,
        partner=there_name, primary_here=args.priority == "primary", sync=args.sync_address,
        heartbeat=args.heartbeat_address, initial_sync=args.initial_sync,
        initial_source=args.initial_source, strategy=args.strategy, witness=args.witness,
        serial=serial, naa=naa)
    print(summary(specs))
    if not args.yes:
        if not sys.stdin.isatty():
            raise WizardError("no terminal to confirm on: pass --yes to create the device")
        if input("Create this HA device on both nodes? [y/N] ").strip().lower() not in {"y",
                                                                                     "yes"}:
            print("nothing created")
            return 1
    # The primary listens: create it first so the partner finds it.
    order = sorted(specs, key=lambda n: specs[n]["ha_device"]["priority"])
    clients = {here_name: here, there_name: there}
    for node in order:
        clients[node].request("POST", "/v1/ha", specs[node])
        print(f"created {specs[node]['target']['iqn']} on {node}")
    return 0


def status_lines(devices: list[dict[str, Any]]) -> list[str]:
    lines = []
    for d in devices:
        flag = WARNING if "Synchronizing" in (d["state"], d["partner_state"]) else " "
        progress = ""
        if d.get("resync"):
            r = d["resync"]
            pct = f"{r['percent']}%" if r.get("percent") is not None else "..."
            progress = f"  resync {r['mode']} {pct}"
        lines.append(f"{flag} {d['alias']:<8} {d['node']:<12} {d['state']:<17} partner "
                     f"{d['partner']} {d['partner_state']:<17} gen {d['generation']}"
                     f"{'  ALONE' if d['alone'] else ''}  sync "
                     f"{'up' if d['sync_link'] else 'DOWN'}  heartbeat "
                     f"{'up' if d['heartbeat_link'] else 'DOWN'}{progress}")
    return lines or ["no HA devices on this node"]


def _status(args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]) -> int:
    import json

    devices = client(args).request("GET", "/v1/ha")
    print(json.dumps(devices, indent=2) if args.json else "\n".join(status_lines(devices)))
    return 0


def _mark(args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]) -> int:
    if not args.yes:
        raise WizardError("marking a replica synchronized discards whatever its partner "
                          "wrote since; pass --yes if that is what you want")
    body = {"force": True} if args.force else None
    result = client(args).request("POST", f"/v1/ha/{args.alias}/mark-synchronized", body)
    print("\n".join(status_lines([result])))
    return 0


def _witness(args: argparse.Namespace) -> int:
    import asyncio
    import signal
    from pathlib import Path

    from harness.target.ha.witness import Witness

    host, _, port = args.listen.rpartition(":")
    if not port.isdigit():
        raise WizardError(f"--listen {args.listen!r} is not HOST:PORT")

    async def serve() -> None:
        witness = Witness(Path(args.state))
        bound = await witness.start(host, int(port))
        print(f'{{"event": "ready", "witness": "{bound[0]}:{bound[1]}"}}', flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await witness.close()

    asyncio.run(serve())
    return 0
