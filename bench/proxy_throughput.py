"""What the fault proxy costs a lab link: bulk throughput and round-trip latency, direct vs
through a passing link, and how exact a ``delay`` link is.

An echo upstream on loopback; a client streams ``--size`` bytes and reads them back
(full duplex), then does ``--pings`` 64-byte round trips. Timings with
``time.monotonic_ns()``; best of ``--repeat`` for throughput, median for latency.
Run: ``.venv/bin/python bench/proxy_throughput.py``.
"""

from __future__ import annotations

import argparse
import socket
import socketserver
import statistics
import threading
import time

from harness.lab.proxy import LinkSpec, LinkState, ProxyControl
from harness.lab.proxy_daemon import running_proxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1 << 20):
            self.request.sendall(data)


def _bulk(port: int, size: int) -> float:
    """Bytes per second of a full-duplex echo of ``size`` bytes."""
    block = b"x" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port)) as s:
        def send() -> None:
            left = size
            while left:
                n = min(left, len(block))
                s.sendall(block[:n])
                left -= n
            s.shutdown(socket.SHUT_WR)

        start = time.monotonic_ns()
        sender = threading.Thread(target=send)
        sender.start()
        got = 0
        while chunk := s.recv(1 << 20):
            got += len(chunk)
        sender.join()
        assert got == size
        return size / ((time.monotonic_ns() - start) / 1e9)


def _pings(port: int, count: int) -> float:
    """Median round trip of a 64-byte message, in microseconds."""
    samples = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            start = time.monotonic_ns()
            s.sendall(b"p" * 64)
            got = 0
            while got < 64:
                got += len(s.recv(64 - got))
            samples.append((time.monotonic_ns() - start) / 1e3)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256 << 20)
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstream = server.server_address[1]
    with running_proxy([LinkSpec("l", "127.0.0.1", 0, "127.0.0.1", upstream)]) as proxy:
        endpoint = proxy.endpoint()
        port = endpoint["links"]["l"]["port"]
        rows = []
        for name, p in (("direct", upstream), ("through the proxy (pass)", port)):
            bulk = max(_bulk(p, args.size) for _ in range(args.repeat))
            rows.append((name, bulk / 1e6, _pings(p, args.pings)))
        control = ProxyControl.from_endpoint(endpoint)
        control.set_state(["l"], LinkState("delay", delay_ms=5.0))
        delayed = _pings(port, 200)
        control.reset()
    server.shutdown()
    print("| path | full-duplex echo | 64 B round trip (median) |")
    print("|---|---|---|")
    for name, mbps, rtt in rows:
        print(f"| {name} | {mbps:.0f} MB/s | {rtt:.0f} us |")
    print(f"| delay 5 ms each way | | {delayed / 1000:.2f} ms (ideal 10 ms + base) |")


if __name__ == "__main__":
    main()
