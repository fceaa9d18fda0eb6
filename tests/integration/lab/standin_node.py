"""A stand-in storage node for tests of the lab's own mechanics (processes, links, faults).

It honours the reference target's process contract and nothing more: read the
node TOML, bind every portal (port 0 = any) and every HA ``sync_listen`` /
``heartbeat_listen`` endpoint, write the ready file
(``{"event": "ready", "portals": [...], "management": null, ...}``), echo every
byte a portal receives, and exit cleanly on SIGTERM, removing the ready file.
The lab tests run it so they do not depend on the iSCSI target's progress; the
reference target itself is exercised by the lab test that starts the real thing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tomllib
from pathlib import Path


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(config_path: str, ready_file: str) -> None:
    config = tomllib.loads(Path(config_path).read_text())
    servers = [
        await asyncio.start_server(echo, p["address"], p.get("port", 0))
        for p in config.get("portal", [])
    ]
    portals = [
        {"address": s.sockets[0].getsockname()[0], "port": s.sockets[0].getsockname()[1]}
        for s in servers
    ]
    for device in config.get("ha_device", []):  # the listener side of HA channels echoes too
        for key in ("sync_listen", "heartbeat_listen"):
            if key in device:
                host, _, port = device[key].rpartition(":")
                servers.append(await asyncio.start_server(echo, host, int(port)))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    ready = {
        "event": "ready",
        "node": config["node"]["name"],
        "pid": os.getpid(),
        "portals": portals,
        "management": None,
        "targets": [t["iqn"] for t in config.get("target", [])],
    }
    tmp = Path(ready_file + ".tmp")
    tmp.write_text(json.dumps(ready))
    os.replace(tmp, ready_file)
    await stop.wait()
    for s in servers:
        s.close()
    Path(ready_file).unlink(missing_ok=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
