"""The witness: the third vote of the node-majority failover strategy.

When two partners lose each other, each asks the witness for the device's
*next generation*. The witness grants every (device, generation) to exactly
one node, the first to ask, and remembers its grants on disk (atomic rename
and fsync) so a restarted witness never grants the same generation twice.
The node that gets the grant carries on alone; the other stops serving. A
node that can reach neither its partner nor the witness has no majority and
stops too.

Run one with ``splitbrain target witness --listen HOST:PORT --state FILE``.
The wire format is the sync channel's framing with JSON HELLO/REFUSED frames:

    request  HELLO {"op": "claim", "device": D, "node": N, "generation": G}
    answer   HELLO {"granted": true|false, "holder": NODE}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

from harness.target.ha import protocol
from harness.target.ha.protocol import MessageKind


class Witness:
    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self._grants: dict[str, str] = {}
        if state_file.exists():
            self._grants = json.loads(state_file.read_text())
        self._server: asyncio.Server | None = None
        self.address: tuple[str, int] | None = None

    def claim(self, device: str, node: str, generation: int) -> tuple[bool, str]:
        """Grant ``generation`` of ``device`` to ``node`` unless someone has it."""
        key = f"{device}@{generation}"
        holder = self._grants.get(key)
        if holder is None:
            self._grants[key] = holder = node
            self._save()
        return holder == node, holder

    def _save(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(self._grants, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_file)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port)
        sock = self._server.sockets[0].getsockname()
        self.address = (sock[0], sock[1])
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            msg = await asyncio.wait_for(protocol.read_message(reader), timeout=5)
            body = msg.json()
            if msg.kind is not MessageKind.HELLO or body.get("op") != "claim":
                raise protocol.SyncProtocolError("witness expects a claim")
            granted, holder = self.claim(str(body["device"]), str(body["node"]),
                                         int(body["generation"]))
            writer.write(protocol.encode(protocol.control(
                MessageKind.HELLO, {"granted": granted, "holder": holder})))
            await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, protocol.SyncProtocolError,
                KeyError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()


async def claim_generation(address: tuple[str, int], *, device: str, node: str,
                           generation: int, timeout_s: float) -> bool | None:
    """Ask the witness for ``generation``: True/False, or None if unreachable."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(*address)
            try:
                writer.write(protocol.encode(protocol.control(
                    MessageKind.HELLO,
                    {"op": "claim", "device": device, "node": node, "generation": generation})))
                await writer.drain()
                answer = await protocol.read_message(reader)
                return bool(answer.json().get("granted"))
            finally:
                writer.close()
    except (OSError, TimeoutError, asyncio.IncompleteReadError, protocol.SyncProtocolError):
        return None
