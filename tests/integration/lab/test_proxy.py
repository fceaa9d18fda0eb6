"""The fault proxy breaks and restores real TCP traffic on loopback, observably."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from harness.lab.proxy import LinkMode, LinkSpec, LinkState, ProxyControl, ProxyError
from harness.lab.proxy_daemon import running_proxy
from tests.integration.lab.conftest import EchoServer, free_port


def eventually(check: Callable[[], bool], deadline_s: float = 5.0) -> None:
    """Wait until ``check()`` holds, or fail after the deadline."""
    for attempt in Retrying(
        stop=stop_after_delay(deadline_s),
        wait=wait_fixed(0.02),
        retry=retry_if_exception_type(AssertionError),
        reraise=True,
    ):
        with attempt:
            assert check()


class Lab:
    def __init__(self, control: ProxyControl, port: int) -> None:
        self.control, self.port = control, port

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def set(self, **state: object) -> None:
        self.control.set_state(["l"], LinkState(**state))  # type: ignore[arg-type]

    def stats(self) -> dict[str, int]:
        return self.control.status()["l"]["stats"]


@pytest.fixture
def lab(echo: EchoServer) -> Iterator[Lab]:
    spec = LinkSpec("l", "127.0.0.1", 0, "127.0.0.1", echo.port)
    with running_proxy([spec]) as proxy:
        endpoint = proxy.endpoint()
        yield Lab(ProxyControl.from_endpoint(endpoint), endpoint["links"]["l"]["port"])


def roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_pass_forwards_and_counts(lab: Lab) -> None:
    with lab.connect() as s:
        assert roundtrip(s, b"x" * 100_000) == b"x" * 100_000
    stats = lab.stats()
    assert (
        stats["accepted"] == 1 and stats["bytes_up"] == 100_000 and stats["bytes_down"] == 100_000
    )


def test_cut_resets_both_sides_and_new_connections_then_heals(lab: Lab, echo: EchoServer) -> None:
    s = lab.connect()
    assert roundtrip(s, b"before") == b"before"
    lab.set(mode="cut")
    with pytest.raises(ConnectionResetError):
        s.sendall(b"during")
        s.recv(10)
    s.close()
    eventually(lambda: echo.log.resets == 1)  # the upstream side saw RST too, not FIN
    with pytest.raises(ConnectionResetError), lab.connect() as fresh:  # at connect or first read
        fresh.recv(10)
    assert lab.stats()["reset"] == 2
    lab.set(mode="pass")
    with lab.connect() as healed:
        assert roundtrip(healed, b"after") == b"after"


def test_blackhole_is_silent_holds_bytes_and_resumes_the_stream_intact(
    lab: Lab, echo: EchoServer
) -> None:
    s = lab.connect(timeout=0.3)
    assert roundtrip(s, b"one") == b"one"
    lab.set(mode="blackhole")
    s.sendall(b"two")
    newcomer = lab.connect(timeout=0.3)  # accepted, never forwarded, never refused
    eventually(lambda: lab.stats()["held"] >= 3)  # both pumps of s + the newcomer's connect
    with pytest.raises(TimeoutError):
        s.recv(10)
    with pytest.raises(TimeoutError):
        newcomer.recv(10)
    assert echo.log.accepted == 1 and lab.stats()["bytes_up"] == 3
    lab.set(mode="pass")
    s.settimeout(5)
    assert roundtrip(s, b"three") == b"twothree"  # nothing lost, nothing reordered
    newcomer.settimeout(5)
    assert roundtrip(newcomer, b"late") == b"late"
    assert echo.log.accepted == 2 and echo.log.resets == 0
    s.close()
    newcomer.close()


def test_delay_adds_latency_each_way_without_reordering(lab: Lab) -> None:
    with lab.connect() as s:
        assert roundtrip(s, b"ping") == b"ping"
        lab.set(mode="delay", delay_ms=150, jitter_ms=100)
        start = time.monotonic_ns()
        assert roundtrip(s, b"ping") == b"ping"
        assert time.monotonic_ns() - start >= 2 * 50e6  # at least (delay - jitter) each way
        message = b"".join(b"%05d" % i for i in range(300))
        for i in range(300):
            s.sendall(b"%05d" % i)
        got = b""
        while len(got) < len(message):
            got += s.recv(65536)
        assert got == message


def test_throttle_limits_rate_per_direction(lab: Lab) -> None:
    lab.set(mode="throttle", rate_bps=40_000)
    with lab.connect(timeout=10) as s:
        start = time.monotonic_ns()
        assert roundtrip(s, b"y" * 20_000) == b"y" * 20_000
        assert time.monotonic_ns() - start >= 0.45e9  # 20 kB at 40 kB/s is at least 0.5 s


def test_flap_alternates_down_and_up_without_heal(lab: Lab) -> None:
    with lab.connect(timeout=10) as s:
        lab.set(mode="flap", period_s=0.4)
        s.sendall(b"z")
        eventually(lambda: lab.stats()["held"] >= 1)  # the first half period is down
        assert s.recv(10) == b"z"  # the up half period comes by itself
    assert lab.control.status()["l"]["state"]["mode"] == LinkMode.FLAP


def test_upstream_gone_resets_the_peer(echo: EchoServer) -> None:
    spec = LinkSpec("l", "127.0.0.1", 0, "127.0.0.1", free_port())
    with running_proxy([spec]) as proxy:
        port = proxy.endpoint()["links"]["l"]["port"]
        with (
            pytest.raises(ConnectionResetError),
            socket.create_connection(("127.0.0.1", port), timeout=5) as s,
        ):
            s.recv(10)
        assert (
            ProxyControl.from_endpoint(proxy.endpoint()).status()["l"]["stats"]["refused_upstream"]
            == 1
        )


def test_half_close_is_passed_on(lab: Lab, echo: EchoServer) -> None:
    with lab.connect() as s:
        s.sendall(b"bye")
        s.shutdown(socket.SHUT_WR)
        assert s.recv(10) == b"bye"
        assert s.recv(10) == b""
    eventually(lambda: echo.log.eofs == 1)


def test_control_rejects_bad_requests(lab: Lab) -> None:
    with pytest.raises(ProxyError, match="no link named 'nope'"):
        lab.control.set_state(["nope"], LinkState(LinkMode.CUT))
    with pytest.raises(ProxyError, match="bad or missing token"):
        ProxyControl(lab.control.host, lab.control.port, "wrong").status()
    with pytest.raises(ProxyError, match="throttle needs rate_bps"):
        lab.control.request("set", links=["l"], state={"mode": "throttle"})
    with pytest.raises(ProxyError, match="unknown link mode"):
        LinkState(mode="sever")  # type: ignore[arg-type]
    with pytest.raises(ProxyError, match="unreachable"):
        ProxyControl("127.0.0.1", free_port(), "t").status()
    lab.control.reset()
    assert lab.control.status()["l"]["state"]["mode"] == "pass"
