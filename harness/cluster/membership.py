"""Cluster membership by heartbeat: who is up, as one node sees it.

The model is the Windows failover cluster's: every node sends a heartbeat to
every other node each ``delay_s`` (``SameSubnetDelay``) over the cluster's
private (heartbeat) network, and declares a peer down after ``threshold``
(``SameSubnetThreshold``) heartbeats in a row went missing. Defaults follow the
reference notes (validation-and-ha.md, 1.7: SameSubnetDelay 1000 ms,
SameSubnetThreshold 5 as documented for WS2012; later releases raise the
threshold, which is why both are settings).

A heartbeat here is a JSON line on a TCP connection the sender opens to the
receiver's heartbeat address, answered by an ``ack`` line on the same
connection; in the lab that address is the fault proxy's ``heartbeat/<node>``
link. As in Windows, where heartbeats are request and response, a route counts
only if it works both ways: a peer is up while we hear its heartbeats *and* it
acknowledges ours, so cutting ``heartbeat/<node>`` (the node's way in) makes
both sides see each other down. Each heartbeat carries the roles the sender
hosts, so a survivor knows what to restart.

``Membership`` is the pure part (times in, views out); ``HeartbeatEndpoint``
is the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HeartbeatSettings:
    """How often heartbeats go out, and how many missed ones make a peer down."""

    delay_s: float = 1.0
    threshold: int = 5

    def __post_init__(self) -> None:
        if self.delay_s <= 0 or self.threshold < 1:
            from harness.cluster.errors import ClusterConfigError

            raise ClusterConfigError(
                f"heartbeat delay {self.delay_s} s and threshold {self.threshold} must be "
                "positive; Windows allows delay 0.25-2 s and threshold 3-120")

    @property
    def timeout_ns(self) -> int:
        return int(self.delay_s * self.threshold * 1e9)


@dataclass
class PeerView:
    name: str
    last_heard_ns: int | None = None  # its heartbeat reached us
    last_acked_ns: int | None = None  # it acknowledged ours
    roles: dict[str, Any] = field(default_factory=dict)
    down_since_ns: int | None = None

    @property
    def joined(self) -> bool:
        return self.last_heard_ns is not None and self.last_acked_ns is not None

    @property
    def last_both_ways_ns(self) -> int:
        assert self.last_heard_ns is not None and self.last_acked_ns is not None
        return min(self.last_heard_ns, self.last_acked_ns)


class Membership:
    """One node's view: each peer is up until ``threshold`` heartbeats were missed."""

    def __init__(self, me: str, peers: list[str], settings: HeartbeatSettings) -> None:
        self.me = me
        self.settings = settings
        # a peer is a member from its first heartbeat on (it joined); never heard: not up
        self.peers = {p: PeerView(p) for p in peers if p != me}

    def heard(self, peer: str, now_ns: int, roles: dict[str, Any] | None = None) -> None:
        view = self.peers.get(peer)
        if view is None or view.down_since_ns is not None:
            return  # a peer once declared down stays down (it must rejoin by restarting)
        view.last_heard_ns = now_ns
        if roles is not None:
            view.roles = dict(roles)

    def acked(self, peer: str, now_ns: int) -> None:
        view = self.peers.get(peer)
        if view is not None and view.down_since_ns is None:
            view.last_acked_ns = now_ns

    def newly_down(self, now_ns: int) -> list[PeerView]:
        """Joined peers not heard, or not acknowledging us, for ``threshold`` x ``delay``;
        marks them down."""
        out = []
        for view in self.peers.values():
            if view.down_since_ns is None and view.joined \
                    and now_ns - view.last_both_ways_ns > self.settings.timeout_ns:
                view.down_since_ns = now_ns
                out.append(view)
        return out

    def up(self) -> list[str]:
        return sorted([self.me] + [p for p, v in self.peers.items()
                                   if v.joined and v.down_since_ns is None])


class HeartbeatEndpoint:
    """Receives heartbeats on a listener and sends ours to every peer's address."""

    def __init__(self, me: str, membership: Membership, peer_addresses: dict[str, tuple[str, int]],
                 roles: Callable[[], dict[str, Any]]) -> None:
        self.me = me
        self.membership = membership
        self.peer_addresses = peer_addresses
        self.roles = roles
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._seq = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._receive, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._tasks = [asyncio.create_task(self._send(p, a))
                       for p, a in self.peer_addresses.items()]
        return self.port

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()

    async def _receive(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    beat = json.loads(line)
                except ValueError:
                    return
                self.membership.heard(str(beat.get("node")), time.monotonic_ns(),
                                      beat.get("roles"))
                writer.write(json.dumps({"ack": beat.get("seq"), "node": self.me}).encode()
                             + b"\n")
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _send(self, peer: str, address: tuple[str, int]) -> None:
        delay = self.membership.settings.delay_s
        while True:
            writer = None
            acks = None
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), delay)
                acks = asyncio.create_task(self._acks(peer, reader))
                while True:
                    self._seq += 1
                    beat = {"node": self.me, "seq": self._seq, "roles": self.roles()}
                    writer.write(json.dumps(beat).encode() + b"\n")
                    # a black-holed link stalls the drain: that heartbeat is simply late
                    await asyncio.wait_for(writer.drain(), delay)
                    await asyncio.sleep(delay)
            except (OSError, TimeoutError, ConnectionError):
                await asyncio.sleep(delay)
            finally:
                if acks is not None:
                    acks.cancel()
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(writer.wait_closed(), 0.1)

    async def _acks(self, peer: str, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.readline():
                self.membership.acked(peer, time.monotonic_ns())
