"""One live connection between two HA partners: the sync or the heartbeat link.

A ``PartnerLink`` wraps one TCP connection carrying ``protocol`` frames. It
delivers every received frame to a handler (with the link it came on, so
replies go back on the same connection), answers PINGs, sends a PING when
the link has been idle for a third of its timeout, and declares the link
*lost* when nothing at all arrived for ``timeout`` seconds (a black-holed link
stays open but goes silent), when the peer closes it, or when a frame is
malformed. Loss is reported once, through ``lost`` (an ``asyncio.Event``) and
``loss_reason``.

Who dials: the partner with the lower priority (the larger number) dials, the
other listens, so the link needs one address per direction in the inventory
and one fault-proxy link in the lab. ``dial`` retries with back-off until its
deadline; ``Listener`` hands each accepted connection to a callback.

A connection becomes a link only after a handshake proves the dialer is on it
now: the listener's first frame is a PING carrying a random number, and the
dialer's first frame must be the PONG echoing it. A connection the dialer already
gave up on (a network that held it, like a black hole, delivers it late, with the
HELLO it once sent) never answers, so it can never replace the live link or start
a partner session; nor is a connection whose socket closed before the handshake
ended ever adopted (uvloop then cannot even name its peer): the dialer redials.

Silence is only evidence while this node was running. A node that was frozen
(SIGSTOP, a paused VM) or starved of CPU sent nothing either, so its partner may
have declared *it* lost; ``StallWatch`` notices such stalls (a gap in the ticks
of its event loop), and the keepalive does not declare a link lost on the first
tick after one, before the frames that arrived meanwhile were read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from harness.target.ha import protocol
from harness.target.ha.protocol import Message, MessageKind

log = logging.getLogger("splitbrain.target.ha")

Handler = Callable[["PartnerLink", Message], Awaitable[None] | None]


class PartnerLink:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 name: str, timeout_s: float, handler: Handler, peer: str = "?") -> None:
        self.name = name
        #: the partner's address, read once when the connection was accepted or dialled
        self.peer = peer
        self.timeout_s = timeout_s
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self.lost = asyncio.Event()
        self.loss_reason = ""
        self.last_received_ns = time.monotonic_ns()
        self.frames_received = 0  # a link that never received a frame showed no life
        self._last_sent_ns = self.last_received_ns
        self._activity = asyncio.Event()
        #: set by the owner once it has dealt with this link's loss
        self.loss_handled = False
        #: the HELLO this node sent on the link (a ReplicaSummary; resync.py plans with it)
        self.hello_sent: Any = None
        #: when the partner last proved it holds this connection (the handshake, then a
        #: round trip this node started): reads after a stall wait for a newer proof
        self.confirmed_ns = self.last_received_ns
        self.confirming: asyncio.Future[bool] | None = None
        self._pongs: dict[int, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._receive(), name=f"{self.name}-rx"),
                       asyncio.create_task(self._keepalive(), name=f"{self.name}-ka")]

    def send(self, msg: Message) -> None:
        """Queue a frame. Frames leave in the order ``send`` was called."""
        if self.lost.is_set():
            return
        try:
            self._writer.write(protocol.encode(msg))
        except (RuntimeError, ConnectionError, OSError) as exc:
            # uvloop raises on a transport that just closed (asyncio ignores it)
            self.fail(f"send failed: {exc}")
            return
        self._last_sent_ns = time.monotonic_ns()

    async def drain(self) -> None:
        """Wait for the send buffer to empty; a send stalled past the timeout loses the link.

        Bounded on purpose: a black-holed peer stops reading, and a drain waiter is not
        always woken when the transport is aborted under it (seen with uvloop)."""
        if self.lost.is_set():
            return
        try:
            await asyncio.wait_for(self._writer.drain(), timeout=self.timeout_s)
        except TimeoutError:
            self.fail(f"send stalled for {self.timeout_s:.2f}s")
        except (ConnectionError, OSError) as exc:
            self.fail(f"send failed: {exc}")

    def fail(self, reason: str) -> None:
        """Declare the link lost (idempotent) and close it."""
        if self.lost.is_set():
            return
        self.loss_reason = reason
        self.lost.set()
        log.info("%s link to %s lost: %s", self.name, self.peer, reason)
        with contextlib.suppress(Exception):
            self._writer.transport.abort()

    def leave(self, reason: str, **extra: Any) -> None:
        """Tell the partner we are leaving (GOODBYE, with ``extra`` JSON fields), then
        close once it has been sent."""
        if self.lost.is_set():
            return
        self.send(protocol.control(MessageKind.GOODBYE, {"reason": reason, **extra}))
        self.loss_reason = f"left: {reason}"
        self.lost.set()
        log.info("%s link to %s: left the device: %s", self.name, self.peer, reason)
        with contextlib.suppress(Exception):
            self._writer.close()  # close, not abort: the GOODBYE is flushed first

    async def close(self, reason: str = "closed") -> None:
        self.fail(reason)
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current]
        for task in others:
            task.cancel()
        if others:
            # asyncio.wait, not ``await task`` under suppress(CancelledError): a
            # cancellation aimed at *our* caller must not be swallowed here.
            await asyncio.wait(others)

    async def _receive(self) -> None:
        try:
            while True:
                msg = await protocol.read_message(self._reader)
                self.last_received_ns = time.monotonic_ns()
                self.frames_received += 1
                self._activity.set()
                if msg.kind is MessageKind.PING:
                    self.send(Message(MessageKind.PONG, seq=msg.seq))
                    continue
                if msg.kind is MessageKind.PONG:
                    waiter = self._pongs.pop(msg.seq, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
                    continue
                result = self._handler(self, msg)
                if result is not None:
                    await result
        except asyncio.IncompleteReadError:
            self.fail("partner closed the connection")
        except protocol.SyncProtocolError as exc:
            self.fail(str(exc))
        except (ConnectionError, OSError) as exc:
            self.fail(f"connection error: {exc}")

    async def _keepalive(self) -> None:
        interval = self.timeout_s / 3
        timeout_ns = int(self.timeout_s * 1e9)
        tick, deferred = time.monotonic_ns(), False
        while not self.lost.is_set():
            await asyncio.sleep(interval)
            now, planned = time.monotonic_ns(), tick + int(interval * 1e9)
            tick = now
            if now - planned > interval * 1e9 and not deferred:
                # this node stalled: frames that arrived meanwhile are not read yet, so
                # the silence measured now is this node's own; judge on the next tick
                deferred = True
                continue
            deferred = False
            if now - self.last_received_ns > timeout_ns:
                self.fail(f"nothing received for {self.timeout_s:.2f}s")
                return
            if now - self._last_sent_ns >= interval * 1e9:
                self.send(Message(MessageKind.PING))
                await self.drain()

    async def round_trip(self, within_s: float) -> bool:
        """Whether the partner answers a PING sent now within ``within_s``.

        The answer echoes a random number, so frames that were on their way before
        (buffered while this node was frozen) are no answer: it proves the partner
        holds this connection *now*. A success moves ``confirmed_ns`` to the sending."""
        if self.lost.is_set():
            return False
        sent = time.monotonic_ns()
        nonce = secrets.randbits(63) | 1  # never 0, the keepalive's
        answered = self._pongs[nonce] = asyncio.get_running_loop().create_future()
        self.send(Message(MessageKind.PING, seq=nonce))
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait([answered, lost], timeout=within_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            self._pongs.pop(nonce, None)
        if answered.done() and not answered.cancelled():
            self.confirmed_ns = max(self.confirmed_ns, sent)
            return True
        answered.cancel()
        return False

    async def fresh_sign_of_life(self, since_ns: int, within_s: float) -> bool:
        """Whether the partner shows life after ``since_ns``, waiting up to ``within_s``."""
        if self.frames_received and self.last_received_ns > since_ns:
            return True
        if self.lost.is_set():
            return False
        self._activity.clear()
        self.send(Message(MessageKind.PING))
        await self.drain()
        # an answer, or the link's loss (a reset: no need to wait out the timeout)
        waiters = [asyncio.ensure_future(self._activity.wait()),
                   asyncio.ensure_future(self.lost.wait())]
        try:
            await asyncio.wait(waiters, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return bool(self.frames_received) and self.last_received_ns > since_ns


def peer_name(writer: asyncio.StreamWriter) -> str | None:
    """``host:port`` of the connection's peer, or None when its socket is closed already
    (uvloop raises AttributeError then, asyncio may return None)."""
    try:
        peer = writer.get_extra_info("peername")
    except (AttributeError, OSError):
        return None
    return f"{peer[0]}:{peer[1]}" if peer else None


#: what a handshake step may fail with: the partner silent, gone, or talking nonsense
HANDSHAKE_FAILURES = (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError,
                      RuntimeError, protocol.SyncProtocolError)


def handshake_failure(exc: BaseException, timeout_s: float, silence: str) -> str:
    """Why the handshake failed, from one of ``HANDSHAKE_FAILURES``; ``silence`` names
    what did not come within ``timeout_s`` (TimeoutError, checked first: it is an OSError)."""
    if isinstance(exc, TimeoutError):
        return f"{silence} within {timeout_s:.2f}s"
    if isinstance(exc, (asyncio.IncompleteReadError, ConnectionError, OSError, RuntimeError)):
        return f"closed during the handshake ({type(exc).__name__})"
    return str(exc)


async def challenge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    timeout_s: float) -> str:
    """Listener side of the handshake: "" when the dialer echoed, else why not."""
    nonce = secrets.randbits(64)
    try:
        writer.write(protocol.encode(Message(MessageKind.PING, seq=nonce)))
        answer = await asyncio.wait_for(protocol.read_message(reader), timeout_s)
    except HANDSHAKE_FAILURES as exc:
        return handshake_failure(exc, timeout_s, "no answer to the handshake")
    if answer.kind is not MessageKind.PONG or answer.seq != nonce:
        return f"answered the handshake with {answer.kind.name} (a stale connection)"
    return ""


async def answer_challenge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           timeout_s: float) -> str:
    """Dialer side of the handshake: "" once the listener's PING is echoed, else why not."""
    try:
        ping = await asyncio.wait_for(protocol.read_message(reader), timeout_s)
        if ping.kind is not MessageKind.PING:
            return f"listener opened with {ping.kind.name}, not the handshake"
        writer.write(protocol.encode(Message(MessageKind.PONG, seq=ping.seq)))
    except HANDSHAKE_FAILURES as exc:
        return handshake_failure(exc, timeout_s, "no handshake from the listener")
    return ""


class StallWatch:
    """When this node's event loop did not run: a frozen process, a paused VM, CPU starvation.

    One per event loop (``StallWatch.of_running_loop``): a task ticks every ``TICK_S``,
    and a gap between two ticks longer than ``MIN_STALL_S`` is a stall, kept for
    ``KEEP`` stalls. A stall still going on (the loop resumed, the ticker has not run
    yet) counts as well, from the last tick until now.
    """

    TICK_S: ClassVar[float] = 0.02
    MIN_STALL_S: ClassVar[float] = 0.05
    KEEP: ClassVar[int] = 64
    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StallWatch]] = \
        weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.last_tick_ns = time.monotonic_ns()
        #: (start_ns, end_ns) of each stall noticed, oldest first
        self.stalls: deque[tuple[int, int]] = deque(maxlen=self.KEEP)
        self.longest_kept_ns = 0  # the longest of ``stalls`` (reads ask on every call)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of_running_loop(cls) -> StallWatch:
        """The running loop's watch, ticking from the first call on."""
        loop = asyncio.get_running_loop()
        watch = cls._by_loop.get(loop)
        if watch is None or watch._task is None or watch._task.done():
            watch = cls._by_loop[loop] = cls()
            watch._task = loop.create_task(watch._tick(), name="ha-stall-watch")
        return watch

    async def _tick(self) -> None:
        tick_ns, min_ns = int(self.TICK_S * 1e9), int(self.MIN_STALL_S * 1e9)
        while True:
            await asyncio.sleep(self.TICK_S)
            now = time.monotonic_ns()
            if now - self.last_tick_ns - tick_ns > min_ns:
                self.stalls.append((self.last_tick_ns, now))
                self.longest_kept_ns = max(end - start for start, end in self.stalls)
                log.info("this node stalled for %.2fs (its event loop did not run)",
                         (now - self.last_tick_ns) / 1e9)
            self.last_tick_ns = now

    def last_end(self, min_s: float) -> int | None:
        """When the last stall of at least ``min_s`` ended (now if it goes on), or None."""
        min_ns, now = int(min_s * 1e9), time.monotonic_ns()
        if now - self.last_tick_ns - int(self.TICK_S * 1e9) >= min_ns:
            return now
        if self.longest_kept_ns < min_ns:
            return None
        for start, end in reversed(self.stalls):
            if end - start >= min_ns:
                return end
        return None

    def longest_since(self, since_ns: int) -> float:
        """The longest stall (seconds) that ended after ``since_ns`` or goes on now."""
        now = time.monotonic_ns()
        ongoing = now - self.last_tick_ns - int(self.TICK_S * 1e9)
        longest = ongoing if ongoing > self.MIN_STALL_S * 1e9 else 0
        for start, end in self.stalls:
            if end > since_ns:
                longest = max(longest, end - start)
        return longest / 1e9


async def dial(host: str, port: int, *, deadline_s: float) -> tuple[asyncio.StreamReader,
                                                                    asyncio.StreamWriter]:
    """Connect to a partner, retrying with back-off until ``deadline_s``."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(deadline_s),
        wait=wait_exponential(multiplier=0.05, max=1.0),
        retry=retry_if_exception_type(OSError),
        reraise=True,
    ):
        with attempt:
            return await asyncio.wait_for(asyncio.open_connection(host, port),
                                          timeout=max(deadline_s, 0.1))
    raise AssertionError("unreachable")  # pragma: no cover


class Listener:
    """Accepts partner connections on one address."""

    def __init__(self, host: str, port: int,
                 on_connection: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                         Awaitable[None]]) -> None:
        self.host, self.port = host, port
        self._on_connection = on_connection
        self._server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._on_connection, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]
        return sock[0], sock[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None


class LinkKeeper:
    """Keeps one link to the partner up: dials and re-dials, or accepts.

    ``on_link`` runs for every new link (after it started) and may close it
    (for example when HELLO shows the peer is not our partner). ``link`` is the
    current link or ``None``.
    """

    def __init__(self, *, name: str, dial_to: tuple[str, int] | None,
                 listen_on: tuple[str, int] | None, timeout_s: float, handler: Handler,
                 on_link: Callable[[PartnerLink], Awaitable[None]] | None = None,
                 redial_s: float = 0.2) -> None:
        if (dial_to is None) == (listen_on is None):
            raise ValueError("a link either dials or listens")
        self.name = name
        self._dial_to = dial_to
        self._listen_on = listen_on
        self._timeout_s = timeout_s
        self._handler = handler
        self._on_link = on_link
        self._redial_s = redial_s
        self.link: PartnerLink | None = None
        self._listener: Listener | None = None
        self._dialer: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()

    async def start(self) -> tuple[str, int] | None:
        StallWatch.of_running_loop()  # from now on, a stall of this node is noticed
        if self._listen_on is not None:
            self._listener = Listener(*self._listen_on, self._accepted)
            return await self._listener.start()
        self._dialer = asyncio.create_task(self._dial_forever(), name=f"{self.name}-dialer")
        return None

    async def close(self) -> None:
        if self._dialer is not None:
            self._dialer.cancel()
            await asyncio.wait([self._dialer])
        if self._listener is not None:
            await self._listener.close()
        if self.link is not None:
            await self.link.close("shutting down")
            self.link = None

    async def _adopt(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     why_not: str) -> PartnerLink | None:
        """Make a handshaken connection the link, replacing the previous one; a
        connection that failed its handshake, or whose socket closed meanwhile, is
        closed instead (None)."""
        peer = peer_name(writer)
        if not why_not and (peer is None or writer.transport.is_closing()):
            why_not = "its socket closed before it was adopted"
        if why_not:
            log.info("%s: connection with %s not adopted: %s", self.name, peer or "?", why_not)
            with contextlib.suppress(Exception):
                writer.transport.abort()
            return None
        # swapped in one step (no await between): a connection accepted meanwhile can
        # neither be overwritten unseen nor leave an older link adopted beside it
        previous, link = self.link, PartnerLink(reader, writer, name=self.name,
                                                timeout_s=self._timeout_s,
                                                handler=self._handler, peer=peer or "?")
        self.link = link
        log.info("%s link to %s established", self.name, link.peer)
        link.start()
        self.changed.set()
        if previous is not None:
            await previous.close("replaced by a newer connection")
        if self._on_link is not None:
            await self._on_link(link)
        return link

    async def _accepted(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        try:
            why_not = await challenge(reader, writer, self._timeout_s)
            await self._adopt(reader, writer, why_not)
        except Exception:  # one bad connection must never disturb the link
            log.exception("%s: accepting a connection failed", self.name)
            with contextlib.suppress(Exception):
                writer.transport.abort()

    async def _dial_forever(self) -> None:
        assert self._dial_to is not None
        while True:
            try:
                reader, writer = await dial(*self._dial_to, deadline_s=self._timeout_s)
                why_not = await answer_challenge(reader, writer, self._timeout_s)
                link = await self._adopt(reader, writer, why_not)
                if link is not None:
                    await link.lost.wait()
            except (OSError, TimeoutError):
                pass  # partner not reachable yet: try again
            except Exception:  # one bad attempt must never stop the dialer
                log.exception("%s: dial attempt failed", self.name)
            await asyncio.sleep(self._redial_s)
