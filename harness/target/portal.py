"""A network portal: one listening address of the node (RFC 7143 section 4.4.2).

Model: a ``Portal`` is an address, a TCP port and the target portal group tag it
belongs to. Each accepted socket gets a ``Connection`` protocol counted by the
node; beyond the node's connection cap a new socket is closed at once, so a flood of
half-open connections costs a bounded amount of memory. Port 0 binds a free
port, reported by ``describe()`` and in the node's ready line.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from harness.target.config import PortalConfig
from harness.target.connection import Connection

if TYPE_CHECKING:
    from harness.target.node import Node


class Portal:
    def __init__(self, node: Node, config: PortalConfig) -> None:
        self.node, self.config = node, config
        self.address, self.port, self.tpgt = config.address, config.port, config.tpgt
        self._server: asyncio.base_events.Server | None = None

    @property
    def name(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @property
    def target_address(self) -> str:
        """The TargetAddress value for SendTargets: ``addr:port,tpgt``."""
        return f"{self.name},{self.tpgt}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self.node, self), self.address, self.config.port,
            reuse_address=True, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 0.1)
            self._server = None

    def describe(self) -> dict[str, Any]:
        return {"address": self.address, "port": self.port, "tpgt": self.tpgt}
