"""The fault proxy: every lab link passes through it, so a link can be broken on purpose.

The model: a *link* is one TCP listener (the address peers use, e.g. a storage
node's portal on the iscsi1 network) forwarding every accepted connection to an
*upstream* on loopback (where the node really listens). Each link has a
``LinkState`` that can be changed at runtime and applies at once to existing and
new connections:

- ``pass``: bytes flow untouched.
- ``cut``: every connection is reset on both sides (SO_LINGER 0, so the peers see
  RST, as when a switch port or host firewall rejects), and new connections are
  reset as soon as they are accepted.
- ``blackhole``: silence, the hardest case. Connections stay open and new ones are
  accepted, but nothing is forwarded in either direction and no error is ever
  returned, like a cable pulled between switches; peers only notice by timeout.
  Bytes are *held*, not discarded: the proxy stops reading, the kernel buffers
  fill and the sender stalls, exactly as TCP does when every segment is dropped
  and retransmitted. On heal the stream resumes intact, as a real TCP connection
  would if it survived the outage (discarding bytes would corrupt a stream, which
  no network can do to TCP).
- ``delay``: every chunk is delivered ``delay_ms`` (+- uniform ``jitter_ms``) after
  it was read, without reordering.
- ``throttle``: each direction of the link carries at most ``rate_bps`` bytes/s.
- ``flap``: the link alternates black-holed and passing phases of ``period_s / 2``
  each, starting black-holed when the state is set.
- ``oneway``: one ``direction`` is black-holed (``up``: client to upstream,
  ``down``: upstream to client), the other passes: asymmetric loss.

Each link counts what it did (connections accepted/open/reset, bytes forwarded
each way, connections currently held, chunks and bytes a delay or a throttle held
back), so a test can observe a fault's effect. Every state set on a link opens a
new *epoch* (its number is the ``set`` request's answer); what the delay or the
throttle of an epoch actually held back (chunks, bytes, and the measured hold of
each chunk, from read to written: min, median, max in ms) is kept for the last
``EPOCHS_KEPT`` epochs and shown by ``status``, so a fault proves that it held
traffic back even after it was healed, and one that held nothing proves nothing.

Faults overlap: a node's power loss black-holes every link of the node while an
asymmetric sync fault is set on one of them, and either may heal first. A state set
by an *owner* (the fault's id) is a layer: the link is in the state of its most
recent layer, and clearing a layer (setting ``pass`` for its owner) returns the link
to the layers that remain, not to ``pass``. A state set without an owner replaces
every layer (``pass``: clears them all, as ``reset`` does).

The proxy is controlled in-process (``FaultProxy.set_state``) or through a tiny
JSON-lines endpoint on loopback with a random token (``ProxyControl``), which is
how faults in another process, and ``splitbrain heal`` after the harness was
killed, reach a proxy that the lab runs as its own daemon
(``python -m harness.lab.proxy_daemon``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import random
import secrets
import socket
import statistics
import struct
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from harness.errors import SplitbrainError

CHUNK = 64 * 1024
QUEUE_CHUNKS = 64
EPOCHS_KEPT = 8  # the held-back record of this many recent link states is kept
HOLD_SAMPLES = 4096  # measured holds kept per epoch for the median (min and max are exact)


class ProxyError(SplitbrainError):
    """A bad link state, an unknown link, or a proxy that cannot be reached."""


class LinkMode(StrEnum):
    PASS = "pass"
    CUT = "cut"
    BLACKHOLE = "blackhole"
    DELAY = "delay"
    THROTTLE = "throttle"
    FLAP = "flap"
    ONEWAY = "oneway"


@dataclass(frozen=True)
class LinkState:
    mode: LinkMode = LinkMode.PASS
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_bps: int = 0
    period_s: float = 0.0
    direction: str = ""  # oneway: the direction held ("up": client to upstream; "down")

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "mode", LinkMode(self.mode))
        except ValueError:
            raise ProxyError(
                f"unknown link mode {self.mode!r}; use one of "
                + ", ".join(m.value for m in LinkMode)
            ) from None
        if self.delay_ms < 0 or self.jitter_ms < 0 or self.rate_bps < 0 or self.period_s < 0:
            raise ProxyError(f"link state {self} has a negative parameter; use values >= 0")
        if self.mode is LinkMode.DELAY and self.delay_ms + self.jitter_ms == 0:
            raise ProxyError("delay needs delay_ms > 0 (or jitter_ms > 0)")
        if self.mode is LinkMode.THROTTLE and self.rate_bps <= 0:
            raise ProxyError("throttle needs rate_bps > 0")
        if self.mode is LinkMode.FLAP and self.period_s <= 0:
            raise ProxyError("flap needs period_s > 0")
        if self.mode is LinkMode.ONEWAY and self.direction not in ("up", "down"):
            raise ProxyError("oneway needs direction = \"up\" or \"down\"")

    def to_json(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, LinkMode) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinkState:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ProxyError(f"unknown link state field(s) {sorted(unknown)}")
        return cls(**data)


PASS = LinkState()


@dataclass(frozen=True)
class LinkSpec:
    """Where a link listens and where it forwards (port 0: any free port)."""

    name: str
    listen_host: str
    listen_port: int
    upstream_host: str
    upstream_port: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinkSpec:
        return cls(**data)


@dataclass
class LinkStats:
    accepted: int = 0
    open: int = 0
    reset: int = 0
    refused_upstream: int = 0
    bytes_up: int = 0  # peer -> upstream
    bytes_down: int = 0  # upstream -> peer
    held: int = 0  # pumps currently waiting for the link to forward
    delayed_chunks: int = 0  # chunks forwarded late by a delay (since the proxy started)
    delayed_bytes: int = 0
    throttled_chunks: int = 0  # chunks a throttle made wait for their turn
    throttled_bytes: int = 0


@dataclass
class HeldBack:
    """What one link state (epoch) held back: chunks, bytes, and each chunk's hold."""

    epoch: int
    mode: str
    chunks: int = 0
    bytes: int = 0
    min_ns: int = 0
    max_ns: int = 0
    holds: collections.deque[int] = field(
        default_factory=lambda: collections.deque(maxlen=HOLD_SAMPLES))

    def add(self, size: int, hold_ns: int) -> None:
        self.min_ns = hold_ns if not self.chunks else min(self.min_ns, hold_ns)
        self.max_ns = max(self.max_ns, hold_ns)
        self.chunks += 1
        self.bytes += size
        self.holds.append(hold_ns)

    def to_json(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "mode": self.mode, "chunks": self.chunks,
                "bytes": self.bytes, "hold_ms": {
                    "min": self.min_ns / 1e6, "max": self.max_ns / 1e6,
                    "median": statistics.median(self.holds) / 1e6 if self.holds else 0.0}}


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN (SO_LINGER on, timeout 0)."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Link:
    """One listener, its state, its live connections and its counters."""

    def __init__(self, spec: LinkSpec) -> None:
        self.spec = spec
        self.state = PASS
        #: owner (a fault's id; "" for a state set without one) -> its state, oldest first
        self.layers: dict[str, LinkState] = {}
        self.since_ns = time.monotonic_ns()
        self.epoch = 0  # +1 on every state set
        self.stats = LinkStats()
        self.held_back: dict[int, HeldBack] = {}  # epoch -> what it held (recent epochs)
        self.port = spec.listen_port
        self._changed = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_free_ns = {"up": 0, "down": 0}
        self._random = random.Random()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.spec.listen_host, self.spec.listen_port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for client, upstream in list(self._conns):
            _reset(client)
            if upstream is not None:
                _reset(upstream)
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in self._tasks if t is not current), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def set_layer(self, state: LinkState, owner: str | None = None) -> int:
        """Set ``owner``'s layer to ``state`` (``pass``: clear it; no owner: replace every
        layer) and put the link in its most recent layer's state; returns the epoch in
        effect (a new one whenever the state changes or a layer is set)."""
        if owner is None:
            self.layers = {} if state.mode is LinkMode.PASS else {"": state}
        else:
            self.layers.pop(owner, None)
            if state.mode is not LinkMode.PASS:
                self.layers[owner] = state
        top = next(reversed(self.layers.values()), PASS)
        if state.mode is LinkMode.PASS and owner is not None and top == self.state:
            return self.epoch  # the cleared layer was not the one in effect
        return self.set_state(top)

    def set_state(self, state: LinkState) -> int:
        """Apply ``state`` now; returns the epoch it opens."""
        self.state = state
        self.since_ns = time.monotonic_ns()
        self.epoch += 1
        self._changed.set()
        self._changed = asyncio.Event()
        if state.mode is LinkMode.CUT:
            for client, upstream in list(self._conns):
                self._reset_pair(client, upstream)
        return self.epoch

    def _held(self, epoch: int, mode: LinkMode, size: int, hold_ns: int) -> None:
        """Count a chunk that ``mode`` (the state of ``epoch``) held back for ``hold_ns``."""
        if mode is LinkMode.DELAY:
            self.stats.delayed_chunks += 1
            self.stats.delayed_bytes += size
        else:
            self.stats.throttled_chunks += 1
            self.stats.throttled_bytes += size
        log = self.held_back.get(epoch)
        if log is None:
            log = self.held_back[epoch] = HeldBack(epoch, mode.value)
            for old in sorted(self.held_back)[:-EPOCHS_KEPT]:
                del self.held_back[old]
        log.add(size, hold_ns)

    def _reset_pair(
        self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter | None
    ) -> None:
        self._conns.discard((client, upstream))
        _reset(client)
        if upstream is not None:
            _reset(upstream)
        self.stats.reset += 1

    def _closed_for_ns(self, direction: str | None = None) -> int:
        """0 if the link forwards now (in ``direction``), else ns until it may (-1: until
        changed)."""
        mode = self.state.mode
        if mode in (LinkMode.BLACKHOLE, LinkMode.CUT):
            return -1
        if mode is LinkMode.ONEWAY:
            return -1 if direction == self.state.direction else 0
        if mode is LinkMode.FLAP:
            half = int(self.state.period_s * 1e9 / 2)
            elapsed = time.monotonic_ns() - self.since_ns
            if (elapsed // half) % 2 == 0:  # first half-period is down
                return half - elapsed % half
        return 0

    async def _gate(self, pair: tuple[Any, Any], direction: str | None = None) -> None:
        """Return once the link forwards (or the connection is gone); count waits as held."""
        wait = self._closed_for_ns(direction)
        if wait == 0:
            return
        self.stats.held += 1
        try:
            while wait != 0 and pair in self._conns:
                changed = self._changed
                timeout = None if wait < 0 else wait / 1e9
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout)
                wait = self._closed_for_ns(direction)
        finally:
            self.stats.held -= 1

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # the proxy is closing (close() cancels every connection): end quietly
        with contextlib.suppress(asyncio.CancelledError):
            await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.accepted += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        if self.state.mode is LinkMode.CUT:
            self._reset_pair(writer, None)
            return
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter | None] = (writer, None)
        self._conns.add(pair)
        self.stats.open += 1
        try:
            await self._gate(pair)  # a black-holed link accepts but never reaches upstream
            if pair not in self._conns:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.spec.upstream_host, self.spec.upstream_port
                )
            except OSError:
                self.stats.refused_upstream += 1
                self._reset_pair(writer, None)
                return
            if pair not in self._conns:  # cut while connecting
                _reset(up_writer)
                return
            self._conns.discard(pair)
            pair = (writer, up_writer)
            self._conns.add(pair)
            await asyncio.gather(
                self._pump(reader, up_writer, "up", pair),
                self._pump(up_reader, writer, "down", pair),
            )
        finally:
            self.stats.open -= 1
            if task is not None:
                self._tasks.discard(task)
            if pair in self._conns:
                self._conns.discard(pair)
                for w in pair:
                    if w is not None:
                        w.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: str,
        pair: tuple[Any, Any],
    ) -> None:
        # (read at, due at (0: not delayed), epoch it was read in, data)
        queue: asyncio.Queue[tuple[int, int, int, bytes]] = asyncio.Queue(QUEUE_CHUNKS)
        sender = asyncio.ensure_future(self._send(queue, writer, direction, pair))
        self._tasks.add(sender)
        try:
            while pair in self._conns:
                await self._gate(pair, direction)
                try:
                    data = await reader.read(CHUNK)
                except (ConnectionError, OSError):
                    data = None
                if data is None:  # the far side reset: pass the reset on
                    await queue.join()
                    if pair in self._conns:
                        self._reset_pair(*pair)
                    return
                if not data:
                    await queue.put((0, 0, self.epoch, b""))
                    break
                now = time.monotonic_ns()
                await queue.put((now, self._due_ns(now), self.epoch, data))
            await queue.join()
        finally:
            sender.cancel()
            self._tasks.discard(sender)
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    def _due_ns(self, now: int) -> int:
        s = self.state
        if s.mode is not LinkMode.DELAY:
            return 0
        jitter = self._random.uniform(-s.jitter_ms, s.jitter_ms) if s.jitter_ms else 0.0
        return now + int(max(0.0, s.delay_ms + jitter) * 1e6)

    async def _send(
        self,
        queue: asyncio.Queue[tuple[int, int, int, bytes]],
        writer: asyncio.StreamWriter,
        direction: str,
        pair: tuple[Any, Any],
    ) -> None:
        last_due = 0
        while True:
            read_ns, due, epoch, data = await queue.get()
            try:
                if not data:  # peer half-closed: pass the FIN on
                    with contextlib.suppress(OSError, RuntimeError):
                        writer.write_eof()
                    continue
                delayed = due > 0
                due = max(due, last_due)  # jitter never reorders a byte stream
                last_due = due
                now = time.monotonic_ns()
                if due > now:
                    await asyncio.sleep((due - now) / 1e9)
                await self._gate(pair, direction)
                throttled = 0
                if self.state.mode is LinkMode.THROTTLE:
                    epoch = self.epoch
                    throttled = await self._throttle(direction, len(data))
                if pair not in self._conns:
                    continue
                sent = time.monotonic_ns()
                try:
                    writer.write(data)
                    await writer.drain()
                except (ConnectionError, OSError):
                    if pair in self._conns:
                        self._reset_pair(*pair)
                    continue
                if delayed:
                    self._held(epoch, LinkMode.DELAY, len(data), sent - read_ns)
                elif throttled:
                    self._held(epoch, LinkMode.THROTTLE, len(data), throttled)
                if direction == "up":
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
            finally:
                queue.task_done()

    async def _throttle(self, direction: str, size: int) -> int:
        """Wait for this chunk's turn at the link's rate; returns ns waited (0: none)."""
        now = time.monotonic_ns()
        start = max(now, self._next_free_ns[direction])
        done = start + int(size * 1e9 / self.state.rate_bps)
        self._next_free_ns[direction] = done
        if done <= now:
            return 0
        await asyncio.sleep((done - now) / 1e9)
        return time.monotonic_ns() - now

    def describe(self) -> dict[str, Any]:
        return {
            "spec": asdict(self.spec) | {"listen_port": self.port},
            "state": self.state.to_json(),
            "layers": [{"owner": owner, **state.to_json()} for owner, state in self.layers.items()],
            "epoch": self.epoch,
            "stats": asdict(self.stats),
            "held_back": [self.held_back[e].to_json() for e in sorted(self.held_back)],
        }


@dataclass
class FaultProxy:
    """All links of a lab plus the control endpoint; runs on one asyncio loop."""

    specs: list[LinkSpec]
    control_host: str = "127.0.0.1"
    control_port: int = 0
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    links: dict[str, Link] = field(default_factory=dict)

    async def start(self) -> None:
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            raise ProxyError(f"duplicate link names in {names}; give each link its own name")
        try:
            for spec in self.specs:
                link = Link(spec)
                await link.start()
                self.links[spec.name] = link
            self._control = await asyncio.start_server(
                self._serve_control, self.control_host, self.control_port
            )
        except OSError as exc:
            await self.close()
            raise ProxyError(f"fault proxy cannot listen: {exc}; is the address in use?") from None
        self.control_port = self._control.sockets[0].getsockname()[1]

    async def close(self) -> None:
        control = getattr(self, "_control", None)
        if control is not None:
            control.close()
        await asyncio.gather(
            *(link.close() for link in self.links.values()), return_exceptions=True
        )

    def link(self, name: str) -> Link:
        try:
            return self.links[name]
        except KeyError:
            raise ProxyError(f"no link named {name!r}; links: {', '.join(self.links)}") from None

    def set_state(self, names: list[str], state: LinkState,
                  owner: str | None = None) -> dict[str, int]:
        """Set ``owner``'s layer on every named link (all known, or none changed; see the
        module docstring); returns each one's epoch."""
        links = [self.link(n) for n in names]
        return {link.spec.name: link.set_layer(state, owner) for link in links}

    def endpoint(self) -> dict[str, Any]:
        return {
            "host": self.control_host,
            "port": self.control_port,
            "token": self.token,
            "links": {
                n: {"host": link.spec.listen_host, "port": link.port}
                for n, link in self.links.items()
            },
        }

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        if not secrets.compare_digest(str(request.get("token", "")), self.token):
            return {"ok": False, "error": "bad or missing token"}
        op = request.get("op")
        try:
            if op == "status":
                return {"ok": True, "links": {n: link.describe() for n, link in self.links.items()}}
            if op == "set":
                owner = request.get("owner")
                epochs = self.set_state(list(request["links"]),
                                        LinkState.from_json(request["state"]),
                                        None if owner is None else str(owner))
                return {"ok": True, "epochs": epochs}
            if op == "upstream":
                link = self.link(str(request["link"]))
                link.spec = dataclasses.replace(
                    link.spec,
                    upstream_host=str(request["host"]),
                    upstream_port=int(request["port"]),
                )
                return {"ok": True}
            if op == "reset":
                self.set_state(list(self.links), PASS)
                return {"ok": True}
        except ProxyError as exc:
            return {"ok": False, "error": str(exc)}
        except (KeyError, TypeError) as exc:
            return {"ok": False, "error": f"malformed request: {exc}"}
        return {"ok": False, "error": f"unknown op {op!r}; use status, set, upstream or reset"}

    async def _serve_control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    answer = (
                        self.handle(request)
                        if isinstance(request, dict)
                        else {"ok": False, "error": "request must be a JSON object"}
                    )
                except json.JSONDecodeError:
                    answer = {"ok": False, "error": "request is not JSON"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


class ProxyControl:
    """Blocking client of a proxy's control endpoint (from any process)."""

    def __init__(self, host: str, port: int, token: str, timeout_s: float = 5.0) -> None:
        self.host, self.port, self.token, self.timeout_s = host, port, token, timeout_s

    @classmethod
    def from_endpoint(cls, endpoint: dict[str, Any]) -> ProxyControl:
        return cls(endpoint["host"], int(endpoint["port"]), endpoint["token"])

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        payload = json.dumps({"op": op, "token": self.token, **fields}).encode() + b"\n"
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s) as sock:
                sock.sendall(payload)
                answer = sock.makefile("rb").readline()
        except OSError as exc:
            raise ProxyError(
                f"fault proxy at {self.host}:{self.port} unreachable ({exc}); "
                "is the lab up? see `splitbrain lab status`"
            ) from None
        if not answer:
            raise ProxyError(f"fault proxy at {self.host}:{self.port} closed without answering")
        reply = json.loads(answer)
        if not reply.get("ok"):
            raise ProxyError(f"fault proxy refused {op}: {reply.get('error')}")
        return reply

    def set_state(self, links: list[str], state: LinkState,
                  owner: str | None = None) -> dict[str, int]:
        """Set the links' state (``owner``'s layer, if given); returns the epoch each one is
        in (see ``status``)."""
        fields: dict[str, Any] = {"links": links, "state": state.to_json()}
        if owner is not None:
            fields["owner"] = owner
        return dict(self.request("set", **fields).get("epochs", {}))

    def reset(self) -> None:
        self.request("reset")

    def set_upstream(self, link: str, host: str, port: int) -> None:
        """Point a link at another upstream (new connections only)."""
        self.request("upstream", link=link, host=host, port=port)

    def status(self) -> dict[str, Any]:
        return self.request("status")["links"]
