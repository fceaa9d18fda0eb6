"""The fault proxy as a process of its own, or on a background thread.

The lab runs the proxy as a daemon (``python -m harness.lab.proxy_daemon``) so it
outlives the harness process that injects faults: if that process is killed in
the middle of a black-hole fault, the proxy keeps the link black-holed (as a
real switch would) until ``splitbrain heal`` resets it through the control
endpoint published in the endpoint file. ``running_proxy`` runs the same proxy
on a thread of the calling process, for tests and one-process tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.lab.proxy import FaultProxy, LinkSpec


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (a lab link forwards several times faster), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@contextlib.contextmanager
def running_proxy(specs: list[LinkSpec]) -> Iterator[FaultProxy]:
    """Run a ``FaultProxy`` on its own loop in a background thread (tests, one process)."""
    loop = new_event_loop()
    proxy = FaultProxy(specs)
    ready = threading.Event()
    failure: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(proxy.start())
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(proxy.close())
        loop.close()

    thread = threading.Thread(target=main, name="fault-proxy", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        thread.join()
        raise failure[0]
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def write_private_json(path: Any, data: Any) -> None:
    """Write JSON atomically (temp file + rename), readable by the owner only."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


async def serve(specs: list[LinkSpec], endpoint_file: Any) -> None:
    """Run the proxy until SIGTERM/SIGINT; publish its endpoint once listening."""
    proxy = FaultProxy(specs)
    await proxy.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    from harness.lab.node_process import process_start_ticks

    me = os.getpid()  # pid and start time: a reused pid is never taken for this proxy
    write_private_json(
        endpoint_file, proxy.endpoint() | {"pid": me, "start_ticks": process_start_ticks(me)}
    )
    try:
        await stop.wait()
    finally:
        await proxy.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.lab.proxy_daemon --links links.json --endpoint proxy.json``"""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m harness.lab.proxy_daemon", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--links", required=True, help="JSON list of link specs")
    parser.add_argument("--endpoint", required=True, help="where to write the control endpoint")
    args = parser.parse_args(argv)
    specs = [LinkSpec.from_json(d) for d in json.loads(Path(args.links).read_text())]
    loop = new_event_loop()
    try:
        loop.run_until_complete(serve(specs, args.endpoint))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
