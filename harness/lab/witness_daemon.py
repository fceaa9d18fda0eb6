"""The lab's witness process: the node-majority witness as a lab node with a ready file.

``python -m harness.lab.witness_daemon --listen ADDRESS:PORT --state FILE
--ready-file FILE`` runs the reference target's ``Witness`` (what ``splitbrain
target witness`` runs) and, once it listens, writes the lab's ready-file
contract (``{"event": "ready", "witness": "ADDRESS:PORT", "pid": N}``, written
atomically) so the lab starts, restarts and stops it like any storage node
(``harness.lab.node_process``). Its grants persist in ``--state``, in the lab's
state directory: a witness restarted by a fault never grants a generation twice.
SIGTERM/SIGINT stop it and remove the ready file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

from harness.errors import SplitbrainError
from harness.lab.ha_wiring import WitnessPlan
from harness.lab.node_process import NodeProcess, NodeProcessError
from harness.target.ha.witness import Witness


class WitnessDaemonError(SplitbrainError):
    """The witness process cannot start as asked."""


def split_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise WitnessDaemonError(f"--listen {text!r} is not ADDRESS:PORT; e.g. 127.10.0.30:0")
    return host.strip("[]"), int(port)


async def serve(listen: tuple[str, int], state: Path, ready_file: Path) -> None:
    witness = Witness(state)
    try:
        bound = await witness.start(*listen)
    except OSError as exc:
        raise WitnessDaemonError(
            f"witness cannot listen on {listen[0]}:{listen[1]}: {exc.strerror}; pick a free port"
        ) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    record = {"event": "ready", "witness": f"{bound[0]}:{bound[1]}", "pid": os.getpid()}
    tmp = ready_file.with_suffix(ready_file.suffix + ".tmp")
    tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
    os.replace(tmp, ready_file)
    print(json.dumps(record), flush=True)
    try:
        await stop.wait()
    finally:
        await witness.close()
        with contextlib.suppress(FileNotFoundError):
            ready_file.unlink()


def start_witness(plan: WitnessPlan, home: Path, log: Path) -> NodeProcess:
    """Start the witness of ``plan`` as a lab process (state and ready file in ``home``)."""
    import sys

    home.mkdir(parents=True, exist_ok=True)
    process = NodeProcess(
        host=plan.host,
        argv=(
            sys.executable,
            "-m",
            "harness.lab.witness_daemon",
            "--listen",
            f"{plan.address}:{plan.port}",
            "--state",
            str(home / "witness-grants.json"),
            "--ready-file",
            str(home / "ready.json"),
        ),
        cwd=str(home),
        log=str(log),
        ready_file=str(home / "ready.json"),
    )
    try:
        return process.start()
    except NodeProcessError as exc:
        raise WitnessDaemonError(f"witness {plan.host} did not start: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.lab.witness_daemon", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT")
    parser.add_argument("--state", required=True, help="file that keeps the grants")
    parser.add_argument("--ready-file", required=True, help="written once listening")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(split_address(args.listen), Path(args.state), Path(args.ready_file)))
    except (WitnessDaemonError, ValueError) as exc:  # ValueError: a damaged state file
        print(f"splitbrain witness: {exc}", flush=True)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
