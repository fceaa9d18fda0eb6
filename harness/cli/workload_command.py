"""``splitbrain workload``: run the verifiable block workload and record its history.

Writes stamped blocks (and reads them back at ``--read-ratio``) on a file, a
local block device or an iSCSI LUN (one ``iscsi://`` URL per path; several
make one multipath device), and records every operation to ``--history`` as
JSON lines while it runs. Check the result with ``splitbrain check``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

HELP = "run the stamped block workload on a device and record its history"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", action="append", required=True, metavar="PATH|URL",
                        help="file, block device, or iscsi://[user:secret@]host:port/iqn/lun "
                             "(repeat the URL once per path for multipath)")
    parser.add_argument("--history", required=True, metavar="FILE",
                        help="where to write the history (JSON lines)")
    parser.add_argument("--duration", type=float, default=10.0, metavar="S",
                        help="seconds to run (default 10)")
    parser.add_argument("--ops", type=int, default=None, metavar="N",
                        help="stop each writer after N operations (with or without --duration)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the operation plan")
    parser.add_argument("--writers", type=int, default=4, help="writers (default 4)")
    parser.add_argument("--qd", type=int, default=4, help="queue depth per writer (default 4)")
    parser.add_argument("--bs", default="4k", metavar="SIZE[,SIZE...]",
                        help="block sizes; the smallest is the checker block (default 4k)")
    parser.add_argument("--read-ratio", type=float, default=0.25, metavar="R",
                        help="fraction of operations that are reads (default 0.25)")
    parser.add_argument("--pattern", choices=("random", "sequential"), default="random")
    parser.add_argument("--region", default=None, metavar="OFFSET:LENGTH",
                        help="part of the device to use, e.g. 0:64M (default: all of it)")
    parser.add_argument("--shared", action="store_true",
                        help="all writers share the region (overlapping writes) instead of "
                             "each owning a slice")
    parser.add_argument("--rate", type=float, default=None, metavar="OPS",
                        help="operations per second over all writers (default unlimited)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="per-operation timeout; a timed-out write is recorded info")
    parser.add_argument("--flush-every", type=int, default=0, metavar="N",
                        help="SYNCHRONIZE CACHE / fdatasync after every N writes per writer")
    parser.add_argument("--size", default=None, metavar="SIZE",
                        help="create the file with this size if it does not exist (e.g. 1G)")
    parser.add_argument("--generation", default=None, metavar="HEX",
                        help="run id stamped into every block (default: random)")
    parser.add_argument("--no-direct", action="store_true", help="do not try O_DIRECT")


def _spec(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from harness.workload.generator import WorkloadSpec, parse_region, parse_size

    offset, length = parse_region(args.region) if args.region else (0, None)
    return WorkloadSpec(
        seed=args.seed,
        writers=args.writers,
        queue_depth=args.qd,
        block_sizes=tuple(sorted(parse_size(s) for s in args.bs.split(","))),
        read_ratio=args.read_ratio,
        pattern=args.pattern,
        region_mode="shared" if args.shared else "private",
        region_offset=offset,
        region_length=length,
        rate=args.rate,
        duration=args.duration if args.duration > 0 else None,
        ops_per_writer=args.ops,
        op_timeout=args.timeout,
        flush_every=args.flush_every,
    )


async def _run(args: argparse.Namespace) -> int:
    from harness.workload.device import FileDevice
    from harness.workload.device_spec import open_device
    from harness.workload.errors import WorkloadConfigError
    from harness.workload.generator import parse_size
    from harness.workload.history import History
    from harness.workload.iscsi_device import mirror_path_events
    from harness.workload.writers import Workload, header_for

    spec = _spec(args)
    try:
        generation = int(args.generation, 16) if args.generation else None
    except ValueError:
        raise WorkloadConfigError(f"--generation {args.generation!r} is not hex") from None
    size = parse_size(args.size) if args.size else None
    device = await open_device(args.device, size=size, direct=not args.no_direct)
    try:
        try:
            spec = spec.validate(device.num_blocks * device.block_size, device.block_size)
        except WorkloadConfigError:
            if isinstance(device, FileDevice) and device.created:
                os.unlink(device.path)  # refused: leave nothing behind
            raise
        created = isinstance(device, FileDevice) and device.created
        header = header_for(
            device, spec, name=" ".join(str(d) for d in _shown(args.device)),
            initial="zero" if created else "unknown", generation=generation,
            options={k: v for k, v in vars(args).items()
                     if not k.startswith("_") and k != "device"},
        )
        with History(args.history, header) as history:
            workload = Workload(device, spec, history)
            unsubscribe = mirror_path_events(device, history)
            loop = asyncio.get_running_loop()
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGINT, workload.stop)
                loop.add_signal_handler(signal.SIGTERM, workload.stop)
            direct = getattr(device, "direct", None)
            mode = "" if direct is None else (" O_DIRECT" if direct else " buffered")
            print(f"workload: {spec.writers} writers x qd {spec.queue_depth} on "
                  f"{header.device} ({device.num_blocks * device.block_size / 2**20:.1f} MiB"
                  f"{mode}), seed {spec.seed}, generation {header.generation:08x}",
                  flush=True)
            try:
                result = await workload.run()
            finally:
                unsubscribe()
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signal.SIGINT)
                    loop.remove_signal_handler(signal.SIGTERM)
    finally:
        await device.close()
    print(f"workload: {result.summary()}")
    print(f"history: {args.history}")
    shown = " ".join(f"--device {d}" for d in _shown(args.device))
    print(f"check it: splitbrain check {args.history} {shown}")
    return 0


def _shown(specs: list[str]) -> list[str]:
    """Device specs as they may be printed (no CHAP secret)."""
    from harness.iscsi.names import is_iscsi_url, parse_iscsi_url

    return [str(parse_iscsi_url(s)) if is_iscsi_url(s) else s for s in specs]


def run(args: argparse.Namespace) -> int:
    code = asyncio.run(_run(args))
    sys.stdout.flush()
    return code
