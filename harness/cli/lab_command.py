"""``splitbrain lab up|down|status``: the bundled lab on this machine.

``up`` starts every storage node of the inventory and the fault proxy that all
links pass through, and prints where they listen; ``down`` stops everything and
removes the lab's state directory; ``status`` shows hosts, networks, links (with
their fault state and counters), devices and replica states, sessions, and the
faults that are still open in the lab's journal. ``down`` and ``status`` work
from any process: the lab's state directory says what runs.
"""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import SplitbrainError
from harness.lab.backends import lab_for, open_lab
from harness.lab.inventory import load
from harness.lab.state import default_state_dir

HELP = "start, stop or show the bundled lab (storage nodes and fault proxy on loopback)"


def lab_inventory() -> Path:
    """The lab inventory shipped with splitbrain (fixtures/inventories/lab.toml)."""
    return Path(str(resources.files("fixtures") / "inventories" / "lab.toml"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lab_action", metavar="ACTION", required=True)
    for name, text in (
        ("up", "bring the lab up"),
        ("down", "stop the lab and remove its state"),
        ("status", "show the running lab"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument(
            "--inventory",
            type=Path,
            default=None,
            help="lab inventory TOML (default: the bundled lab.toml)",
        )
        p.add_argument(
            "--state-dir",
            type=Path,
            default=None,
            help="lab state directory (default: from the inventory, else "
            "$SPLITBRAIN_LAB_DIR, else $XDG_RUNTIME_DIR or /tmp, "
            "in splitbrain-UID/SITE)",
        )
        if name in ("up", "status"):
            p.add_argument("--json", action="store_true", help="print JSON")


def _lab(args: argparse.Namespace) -> tuple[Any, Any]:
    inventory = load(args.inventory or lab_inventory())
    if inventory.lab is None:
        raise SplitbrainError(
            f"{inventory.path} has no [lab] table: it describes a real site, "
            "not a lab; pass a lab inventory with --inventory"
        )
    if args.state_dir is None and inventory.lab.state_dir is None:
        args.state_dir = default_state_dir(inventory.site.name)
    root = args.state_dir or inventory.lab.state_dir
    if args.lab_action == "up":
        return lab_for(inventory, root), inventory
    return open_lab(root), inventory


def run(args: argparse.Namespace) -> int:
    lab, inventory = _lab(args)
    if args.lab_action == "up":
        record = lab.up(inventory)
        if args.json:
            print(json.dumps(record.to_json(), indent=1))
            return 0
        print(f"lab {record.site!r} is up; state in {lab.state.root}")
        for host, node in record.nodes.items():
            print(f"  node {host}: pid {node.pid}")
        for name, link in record.links.items():
            print(
                f"  link {name}: {link.listen[0]}:{link.listen[1]} -> "
                f"{link.upstream[0]}:{link.upstream[1]} ({link.purpose})"
            )
        return 0
    if args.lab_action == "down":
        stopped = lab.down()
        print(
            f"lab at {lab.state.root} is down"
            + (f"; stopped {', '.join(stopped)}" if stopped else "; nothing was running")
        )
        return 0
    status = lab.status()
    from harness.faults.journal import FaultJournal

    status["faults"] = [
        {"id": f.id, "kind": f.kind, "target": f.target, "params": f.params}
        for f in FaultJournal(lab.state.journal_file).open_faults()
    ]
    if args.json:
        print(json.dumps(status, indent=1, default=str))
    else:
        print(render_status(status))
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def _replica_state(replicas: list[dict[str, Any]] | None, alias: str) -> str:
    """``Synchronized (partner Synchronized, sync up, heartbeat up)`` from a node's /v1/ha."""
    mine = next((r for r in replicas or [] if r.get("alias") == alias), None)
    if mine is None:
        return "not an HA replica here" if replicas is not None else "unknown (no HA status)"
    links = ", ".join(
        f"{k} {'up' if mine.get(f'{k}_link') else 'DOWN'}" for k in ("sync", "heartbeat")
    )
    resync = f", resync {mine['resync']}" if mine.get("resync") else ""
    return f"{mine.get('state')} (partner {mine.get('partner_state')}, {links}{resync})"


def render_status(s: dict[str, Any]) -> str:
    out = [f"lab {s['site']!r} at {s['state_dir']} (inventory {s['inventory']})"]
    if s.get("backend") == "netns":
        out.append("backend netns: namespaces " + ", ".join(s["namespaces"].values()))
    else:
        alive = "running" if s["proxy"]["alive"] else "DOWN"
        out.append(f"fault proxy: pid {s['proxy']['pid']} {alive}")
    out.append("hosts:")
    for name, host in s["hosts"].items():
        node = s["nodes"].get(name)
        state = f"node {node['state']} (pid {node['pid']})" if node else "no process"
        addresses = " ".join(f"{n}={a}" for n, a in host["addresses"].items())
        out.append(f"  {name:<12} {','.join(host['roles']):<18} {state:<26} {addresses}")
    out.append("networks:")
    for name, net in s["networks"].items():
        out.append(f"  {name:<12} {','.join(net['roles']):<18} {net['cidr']}")
    out.append("links:")
    for name, link in s["links"].items():
        proxy = link.get("proxy") or {}
        mode = proxy.get("state", {}).get("mode", "?")
        stats = proxy.get("stats", {})
        out.append(
            f"  {name:<22} {link['listen'][0]}:{link['listen'][1]:<6} -> "
            f"{link['upstream'][0]}:{link['upstream'][1]:<6} {mode:<9} "
            f"conns {stats.get('open', 0)}/{stats.get('accepted', 0)} "
            f"up {_size(stats.get('bytes_up', 0))} down {_size(stats.get('bytes_down', 0))}"
            + "".join(f" {word} {_size(stats[key])}"
                      for word, key in (("delayed", "delayed_bytes"),
                                        ("throttled", "throttled_bytes")) if stats.get(key))
        )
    out.append("devices:")
    for alias, dev in s["devices"].items():
        out.append(
            f"  {alias} {dev['purpose']} {_size(dev['size'])} LUN {dev['lun']} "
            f"strategy {dev['strategy']}"
        )
        for r in dev["replicas"]:
            node = s["nodes"].get(r["host"], {})
            state = _replica_state(node.get("replicas"), alias)
            out.append(
                f"    {r['host']} priority {r['priority']} {r['target']}: "
                f"node {node.get('state', '?')}, replica {state}"
            )
    out.append("sessions:")
    sessions = [(h, x) for h, n in s["nodes"].items() for x in n.get("sessions", [])]
    out += [f"  {h}: {json.dumps(x)}" for h, x in sessions] or ["  none"]
    out.append("active faults:")
    out += [
        f"  {f['kind']} {f['target']} ({f['id']}) {json.dumps(f['params'])}" for f in s["faults"]
    ] or ["  none"]
    return "\n".join(out)
