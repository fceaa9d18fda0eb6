"""Partner links on real sockets under uvloop, the loop the storage nodes run on.

Found by chaos primary-dies-while-sync-silent: the dialer redialled a partner whose
connections the network accepted and reset at once (the lab proxy, upstream dead),
and uvloop could not name the peer of a socket that had already closed. A dialer must
then redial, never adopt the dead connection as its link (a645436 adopted it).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

import pytest
import uvloop
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from harness.target.ha.channel import LinkKeeper, PartnerLink
from harness.target.ha.protocol import Message


async def until(check, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    async for attempt in AsyncRetrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.01),
                                       retry=retry_if_exception_type(AssertionError),
                                       reraise=True):
        with attempt:
            check()


def ignore(link: PartnerLink, msg: Message) -> None:
    return None


def test_a_dialer_never_adopts_a_connection_reset_at_once_and_redials() -> None:
    async def scenario() -> None:
        resets = 0

        async def reset_at_once(reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
            nonlocal resets
            resets += 1
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # RST, as the proxy does when the upstream is gone

        server = await asyncio.start_server(reset_at_once, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        adopted: list[PartnerLink] = []

        async def on_link(link: PartnerLink) -> None:
            adopted.append(link)

        dialer = LinkKeeper(name="t-sync", dial_to=("127.0.0.1", port), listen_on=None,
                            timeout_s=0.5, handler=ignore, on_link=on_link, redial_s=0.01)
        await dialer.start()
        try:
            await until(lambda: _check(resets >= 20))
            assert adopted == [], f"adopted {len(adopted)} connections that were reset"
            server.close()
            await server.wait_closed()
            listener = LinkKeeper(name="t-sync", dial_to=None, listen_on=("127.0.0.1", port),
                                  timeout_s=0.5, handler=ignore)
            await listener.start()
            try:  # the partner listens for real now: the dialer's next attempt is the link
                await until(lambda: _check(adopted and listener.link is not None))
                assert not adopted[-1].lost.is_set() and adopted[-1] is dialer.link
                assert adopted[-1].peer == f"127.0.0.1:{port}"
            finally:
                await listener.close()
        finally:
            await dialer.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(scenario(), 60))


def _check(ok: object) -> None:
    assert ok


@pytest.mark.parametrize("first", [b"", b"garbage-not-a-frame-" * 4])
def test_a_listener_keeps_its_link_when_a_connection_fails_the_handshake(first: bytes) -> None:
    """A connection that never answers the listener's handshake (it closes at once, or
    speaks something else) is dropped; the live link stays."""
    async def scenario() -> None:
        listener = LinkKeeper(name="t-hb", dial_to=None, listen_on=("127.0.0.1", 0),
                              timeout_s=0.5, handler=ignore)
        host, port = await listener.start()  # type: ignore[misc]
        dialer = LinkKeeper(name="t-hb", dial_to=(host, port), listen_on=None,
                            timeout_s=0.5, handler=ignore, redial_s=0.01)
        await dialer.start()
        try:
            await until(lambda: _check(listener.link is not None))
            live = listener.link
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(first)
            writer.write_eof()
            with contextlib.suppress(ConnectionError):
                await reader.read()  # the listener closed it
            writer.close()
            assert listener.link is live and live is not None and not live.lost.is_set()
        finally:
            await dialer.close()
            await listener.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(scenario(), 60))
