"""A thousand half-open connections: bounded memory, a connection cap, a login deadline.

The probe opens 1000 TCP connections to a portal and never completes a login:
some send nothing, some half a BHS, some a Login Request and then fall silent.
The node must refuse connections beyond its cap at once, close every one of the
others when the login deadline passes, keep its memory bounded throughout, and
keep serving the session that was already logged in. Once the flood is gone, a
fresh login succeeds again.
"""

from __future__ import annotations

import contextlib
import socket

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.iscsi import codec, keys
from suites.protocol.conftest import (
    LOGIN_TIMEOUT_S,
    MAX_CONNECTIONS,
    PROBE_INITIATOR,
    NodeHealth,
)
from suites.protocol.wire import RawConnection

FLOOD = 1000


def login_then_silence() -> bytes:
    return codec.encode(codec.LoginRequest(csg=0, nsg=1, isid=0x80_0000_0001,
                                           data=keys.encode_keys([("InitiatorName",
                                                                   PROBE_INITIATOR)])))


def peer_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except BlockingIOError:
        return False


#: against the sut: floods a site's portal (destructive); the cap and deadline are the
#: reference node's
DISTURBING = ("test_thousand_half_open_connections",)
REFERENCE_ONLY = ("test_thousand_half_open_connections",)


def test_thousand_half_open_connections(probe_node, health: NodeHealth) -> None:
    host, port = probe_node.portals[0]
    flood: list[socket.socket] = []
    try:
        for i in range(FLOOD):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect((host, port))
                if i % 3 == 1:
                    s.sendall(b"\x03" * 20)          # half a header
                elif i % 3 == 2:
                    s.sendall(login_then_silence())  # a login that never continues
            except OSError:
                pass                                 # refused or reset: that is allowed
            flood.append(s)
        health.assert_survived()
        for s in flood:
            s.setblocking(False)
        seen_closed: set[int] = set()
        peak = 0

        def count_closed() -> int:
            nonlocal peak
            peak = max(peak, probe_node.management.status()["connections"])
            seen_closed.update(i for i, s in enumerate(flood)
                               if i not in seen_closed and peer_closed(s))
            return len(seen_closed)

        # The node accepts what the backlog holds, refuses beyond its cap, and closes
        # the rest at the login deadline: in the end every flood socket is closed.
        closed = Retrying(stop=stop_after_delay(3 * LOGIN_TIMEOUT_S + 30), wait=wait_fixed(0.5),
                          retry=retry_if_result(lambda n: n < FLOOD),
                          retry_error_callback=lambda state: state.outcome.result())(
            count_closed)
        assert peak <= MAX_CONNECTIONS   # the cap holds, bystander included
        assert closed == FLOOD
    finally:
        for s in flood:
            with contextlib.suppress(OSError):
                s.close()
    health.assert_survived()
    with RawConnection(host, port) as conn:
        assert conn.login(PROBE_INITIATOR, probe_node.iqn).ok
