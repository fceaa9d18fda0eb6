"""``splitbrain check``: judge a recorded history (and the device it was recorded on).

Always checks the reads recorded during the run (register semantics), the
timing and, per fault window, the honest numbers (longest gap with no
completion, longest operation, stalled operations, caller errors, time until
every path carries I/O and until the replicas are synchronized again), printed
as a table and judged by ``--budget`` limits or an ``--inventory``'s budgets.
With ``--device`` it reads the whole device back through every path given
(each ``iscsi://`` URL is read on its own) and checks every block; with two or
more ``--replica`` (image files or device paths) it compares the replicas and
reports divergence or split brain. Exits 1 when any problem is found, 0 when the run is clean.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

HELP = "check a workload history: lost, stale, torn, misplaced, corrupt blocks, timing"

KIND_WIDTH = 14


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("history", metavar="FILE", help="history written by `workload`")
    parser.add_argument("--device", action="append", default=[], metavar="PATH|URL",
                        help="read the device back and check every block; repeat for every "
                             "path (each iscsi:// URL is read on its own)")
    parser.add_argument("--replica", action="append", default=[], metavar="PATH|URL",
                        help="a replica's image file, or an iscsi:// URL of a path to that "
                             "replica; give two or more to compare")
    parser.add_argument("--budget", action="append", default=[], metavar="NAME=LIMIT",
                        help="timing budget, over the inventory's: the inventory's names "
                             "(path_failover_s, node_failover_s, io_pause_s, op_latency_s, "
                             "stall_s, heal_to_all_paths_s, resync_s in seconds; "
                             "caller_errors_max, stalled_ops_max as counts) or io_pause, "
                             "failover, heal_to_all_paths, heal_to_synchronized, caller_errors")
    parser.add_argument("--inventory", metavar="FILE",
                        help="take the timing budgets from this inventory's [budgets] "
                             "(--budget-profile picks the profile)")
    parser.add_argument("--budget-profile", default="default", metavar="NAME",
                        help="budget profile of --inventory (default: default)")
    parser.add_argument("--bin", type=float, default=1.0, metavar="S",
                        help="timing bin width in seconds (default 1)")
    parser.add_argument("--json", action="store_true",
                        help="print every problem with kind, offset, length and history "
                             "records as JSON")
    parser.add_argument("--pcap", metavar="FILE",
                        help="iSCSI capture of the run: compute failover times from the PDUs "
                             "and compare them with the history's")
    parser.add_argument("--iscsi-port", type=int, action="append", default=[], metavar="PORT",
                        help="TCP port(s) the capture's iSCSI portals listen on (default 3260)")
    parser.add_argument("--wire-tolerance", type=float, default=0.005, metavar="S",
                        help="allowed difference between capture and history times "
                             "(default 0.005)")
    parser.add_argument("--timeline", metavar="FILE",
                        help="also draw the timeline plot to FILE.png and FILE.svg")
    parser.add_argument("--limit", type=int, default=20, metavar="N",
                        help="problems listed per checker in the text output (default 20)")


def _budget(items: list[str]) -> dict[str, float]:
    from harness.workload.errors import WorkloadConfigError

    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise WorkloadConfigError(f"--budget {item!r} is not NAME=NUMBER "
                                      "(e.g. failover=30)") from None
    return out


async def _open_paths(specs: list[str], size_hint: int) -> dict[str, Any]:
    from harness.iscsi.names import is_iscsi_url, parse_iscsi_url
    from harness.workload.device import FileDevice
    from harness.workload.errors import DeviceUrlError
    from harness.workload.iscsi_device import open_iscsi_paths

    urls = [s for s in specs if is_iscsi_url(s)]
    if urls and len(urls) != len(specs):
        raise DeviceUrlError("cannot mix iscsi:// URLs and local paths in one --device list")
    if urls:
        return await open_iscsi_paths([parse_iscsi_url(u) for u in urls])
    return {s: FileDevice(s, readonly=True) for s in specs}


async def _replica_readers(specs: list[str], opened: dict[str, Any]) -> dict[str, Any]:
    """A chunk reader per replica: an image file read-only, or an iscsi:// path of it."""
    from harness.checks.divergence import device_reader, image_reader
    from harness.iscsi.names import is_iscsi_url, parse_iscsi_url
    from harness.workload.errors import DeviceError
    from harness.workload.iscsi_device import open_iscsi_paths

    readers: dict[str, Any] = {}
    for s in specs:
        if is_iscsi_url(s):
            (name, dev), = (await open_iscsi_paths([parse_iscsi_url(s)])).items()
            opened[f"replica {name}"] = dev
            readers[name] = device_reader(dev)
        elif os.path.exists(s):
            readers[s] = image_reader(s)
        else:
            raise DeviceError(f"replica {s} does not exist; pass each replica's image file "
                              "or an iscsi:// URL of a path to it")
    return readers


async def _check(args: argparse.Namespace) -> Any:
    from harness.checks.faults_report import inventory_budget_names
    from harness.checks.stream_check import check_run_file
    from harness.workload.errors import DeviceUrlError
    from harness.workload.history_stream import outline

    given = inventory_budget_names(_budget(args.budget))
    head = outline(args.history)
    budget: dict[str, float] = {}
    if args.inventory:
        from harness.lab.inventory import load

        budget.update(load(args.inventory).budget(args.budget_profile).limits)
    budget.update(given)
    if len(args.replica) == 1:
        raise DeviceUrlError("one --replica given; give every replica (two or more) to compare")
    devices: dict[str, Any] = {}
    try:
        if args.device:
            devices = await _open_paths(args.device, head.header.size)
        replicas = await _replica_readers(args.replica, devices) if args.replica else None
        paths = {k: v for k, v in devices.items() if not k.startswith("replica ")}
        result, _reports = await check_run_file(
            args.history, devices=paths or None, replicas=replicas, budget=budget,
            pcap=args.pcap, iscsi_ports=tuple(args.iscsi_port or [3260]),
            wire_tolerance_s=args.wire_tolerance)
    finally:
        for dev in devices.values():
            await dev.close()
    history = None
    if args.pcap:  # the older capture comparison still loads the history into memory
        from harness.workload.history import load_history

        history = load_history(args.history)
    if args.pcap:
        from harness.checks.packet_timing import compare_with_history, read_pdus, wire_timing
        from harness.checks.timing import measure

        assert history is not None
        wire = wire_timing(read_pdus(args.pcap, ports=tuple(args.iscsi_port or [3260])),
                           history)
        result.verdicts.append(compare_with_history(wire, measure(history, bin_s=args.bin),
                                                    tolerance_s=args.wire_tolerance))
    return head, result


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"


def _fault_rows(rows: list[dict[str, Any]], problems: list[Any]) -> list[Any]:
    """``FaultReport``s again from the verdict's stats (for the table)."""
    from harness.checks.faults_report import FaultReport

    out = []
    for row in rows:
        mine = [p for p in problems if p.detail.get("fault") == row["name"]]
        out.append(FaultReport(**{**row, "problems": mine}))
    return out


def _print_text(head: Any, result: Any, limit: int) -> None:
    h = head.header
    reg = result.verdict("register")
    st = reg.stats if reg is not None else {}
    print(f"history    {result.history}: {st.get('operations', 0)} operations "
          f"({st.get('writes', 0)} writes), {len(head.faults)} faults, seed {h.seed}, "
          f"generation {h.generation:08x}, {_fmt_bytes(h.size)} device, {h.block_size}-byte "
          "blocks" + (" (torn last line ignored)" if st.get("torn_tail") else ""))
    for v in result.verdicts:
        status = "ok" if v.valid else f"{len(v.problems)} problems"
        if v.checker == "integrity":
            for name, st in v.stats["devices"].items():
                rate = st.get("verify_bytes_per_s")
                speed = f" at {rate / 1e9:.2f} GB/s" if rate else ""
                print(f"integrity  {name}: {st['blocks']} blocks ({_fmt_bytes(st['bytes'])}) "
                      f"checked{speed}, {st['written_blocks']} written by runs")
            print(f"integrity  {status}")
        elif v.checker == "register":
            print(f"reads      {v.stats['reads']} reads, {v.stats['blocks']} blocks: {status}")
        elif v.checker == "timing":
            s = v.stats
            print(f"timing     longest I/O pause {s['longest_pause_s']:.3f} s, "
                  f"{s['caller_errors']} caller errors over the whole run: {status}")
        elif v.checker == "packet_timing":
            rows = "; ".join(
                f"{r['fault']} {r['measure']}: wire "
                + ("never" if r["wire_s"] is None else f"{r['wire_s']:.4f} s")
                + ", history " + ("never" if r["history_s"] is None else f"{r['history_s']:.4f} s")
                for r in v.stats["comparison"])
            print(f"wire       {len(v.stats['paths'])} paths in the capture"
                  + (f"; {rows}" if rows else "") + f": {status}")
        elif v.checker == "packet_faults":
            from harness.checks.packet_timing import beside_lines

            print(f"wire       each fault's numbers, history beside capture: {status}")
            for line in beside_lines(v):
                print(f"  {line}")
        elif v.checker == "monotonic":
            print(f"monotonic  {v.stats['reads']} reads, {v.stats['blocks']} blocks read "
                  f"against the earlier reads: {status}")
        elif v.checker == "faults":
            rows = v.stats["faults"]
            print(f"faults     {len(rows)} fault windows (seconds; gap: longest with no "
                  f"completion, paths/sync: after the heal): {status}")
            if rows:
                from harness.checks.faults_report import table_lines

                for line in table_lines(_fault_rows(rows, v.problems)):
                    print(f"  {line}")
        elif v.checker == "divergence":
            word = "SPLIT BRAIN" if v.stats.get("split_brain") else status
            print(f"replicas   {', '.join(v.stats['replicas'])}: "
                  f"{_fmt_bytes(v.stats['differing_bytes'])} differ: {word}")
        for p in v.problems[:limit]:
            print(f"  {p.kind:<{KIND_WIDTH}} {p.message}")
        if len(v.problems) > limit:
            print(f"  ... {len(v.problems) - limit} more (use --json for all)")
    if result.verdict("integrity") is None:
        print("integrity  not checked: pass --device PATH|URL (every path) to read the data back")
    problems = result.problems
    if not problems:
        print("RESULT     ok: no problems")
        return
    counts: dict[str, int] = {}
    for p in problems:
        counts[p.kind] = counts.get(p.kind, 0) + 1
    parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    print(f"RESULT     FAILED: {len(problems)} problems ({parts})")


def run(args: argparse.Namespace) -> int:
    head, result = asyncio.run(_check(args))
    if args.timeline:
        from harness.report.timeline import plot_timeline

        files = plot_timeline(args.history, args.timeline, bin_s=args.bin)
        print("timeline   " + ", ".join(str(f) for f in files),
              file=sys.stderr if args.json else sys.stdout)
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print_text(head, result, args.limit)
    return 0 if result.valid else 1
