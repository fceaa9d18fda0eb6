"""``kill -9`` of a process holding a black-hole fault, then ``splitbrain heal``, restores the link.

The proxy runs as its own daemon, as in the lab, so it outlives the killed
process and keeps the link black-holed (as a real network would stay broken);
only the journal knows the fault, and ``splitbrain heal`` undoes it from there.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from harness.faults import FaultJournal
from tests.integration.lab.conftest import EchoServer

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

REPO = Path(__file__).parents[3]

INJECTOR = textwrap.dedent("""
    import sys, time
    from harness.faults import FaultJournal, LinkFault
    from harness.lab.proxy import LinkMode, LinkState

    LinkFault(["path"], LinkState(LinkMode.BLACKHOLE), endpoint_file=sys.argv[1],
              journal=FaultJournal(sys.argv[2])).inject()
    print("injected", flush=True)
    time.sleep(600)
""")


def wait_for(path: Path) -> None:
    for attempt in Retrying(
        stop=stop_after_delay(20),
        wait=wait_fixed(0.05),
        retry=retry_if_exception_type(FileNotFoundError),
        reraise=True,
    ):
        with attempt:
            path.stat()


@pytest.fixture
def proxy_daemon(tmp_path: Path, echo: EchoServer) -> Iterator[dict]:
    links = tmp_path / "links.json"
    links.write_text(
        json.dumps(
            [
                {
                    "name": "path",
                    "listen_host": "127.0.0.1",
                    "listen_port": 0,
                    "upstream_host": "127.0.0.1",
                    "upstream_port": echo.port,
                }
            ]
        )
    )
    endpoint = tmp_path / "proxy.json"
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.lab.proxy_daemon",
            "--links",
            str(links),
            "--endpoint",
            str(endpoint),
        ],
        cwd=REPO,
    )
    try:
        wait_for(endpoint)
        yield json.loads(endpoint.read_text()) | {"file": str(endpoint)}
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def echoes(port: int, timeout: float) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"hello")
        try:
            return s.recv(5) == b"hello"
        except TimeoutError:
            return False


def test_heal_after_sigkill_restores_a_black_holed_link(tmp_path: Path, proxy_daemon: dict) -> None:
    port = proxy_daemon["links"]["path"]["port"]
    journal = tmp_path / "faults.jsonl"
    assert echoes(port, 5)
    injector = subprocess.Popen(
        [sys.executable, "-c", INJECTOR, proxy_daemon["file"], str(journal)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert injector.stdout is not None and injector.stdout.readline().strip() == "injected"
        assert not echoes(port, 0.3)
        injector.send_signal(signal.SIGKILL)  # no handler, no finally, no heal
        injector.wait(10)
    finally:
        if injector.poll() is None:
            injector.kill()
            injector.wait()
    assert not echoes(port, 0.3)  # still broken: nobody healed it
    [open_fault] = FaultJournal(journal).open_faults()
    assert open_fault.kind == "link" and open_fault.injected

    heal = [sys.executable, "-m", "harness", "heal", "--journal", str(journal)]
    done = subprocess.run(heal, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"healed link path ({open_fault.id})" in done.stdout
    assert echoes(port, 5)
    assert FaultJournal(journal).open_faults() == []

    again = subprocess.run(heal, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "nothing to heal" in again.stdout
