"""``splitbrain target ha create`` turns two plain nodes into one HA device."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from harness.initiator.session import Session
from harness.peers.reference_target import TOKEN_ENV, NodeSpec
from tests.support.ha_pair import free_port


def splitbrain(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60)


def test_wizard_creates_a_synchronized_device_on_both_nodes(reference_target_factory):
    one = reference_target_factory.start(NodeSpec(name="store1"))
    two = reference_target_factory.start(NodeSpec(name="store2",
                                                  addresses=("127.0.0.3", "127.0.0.4")))
    env = {TOKEN_ENV: one.token, "PARTNER_TOKEN": two.token}
    create = ["target", "ha", "create", "--url", one.ready["management"],
              "--token-env", TOKEN_ENV, "--partner-url", two.ready["management"],
              "--partner-token-env", "PARTNER_TOKEN", "--alias", "HA7", "--size", "8MiB",
              "--lun", "0", "--sync-address", f"127.0.0.1:{free_port()}",
              "--heartbeat-address", f"127.0.0.1:{free_port()}"]
    refused = splitbrain(*create, env=env)  # no terminal and no --yes: nothing created
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    assert "HA device summary" in refused.stdout
    assert one.management.request("GET", "/v1/ha") == []
    done = splitbrain(*create, "--yes", env=env)
    assert done.returncode == 0, done.stderr
    for attempt in Retrying(stop=stop_after_delay(20), wait=wait_fixed(0.1),
                            retry=retry_if_exception_type(AssertionError), reraise=True):
        with attempt:
            states = [n.management.request("GET", "/v1/ha")[0] for n in (one, two)]
            assert [s["state"] for s in states] == ["Synchronized"] * 2
            assert [s["partner_state"] for s in states] == ["Synchronized"] * 2
    status = splitbrain("target", "ha", "status", "--url", two.ready["management"],
                        "--token-env", TOKEN_ENV, env={TOKEN_ENV: two.token})
    assert "HA7" in status.stdout and "Synchronized" in status.stdout

    iqn_one = "iqn.2026-11.org.splitbrain:store1.ha7"
    iqn_two = "iqn.2026-11.org.splitbrain:store2.ha7partner"

    async def write_one_read_two() -> bytes:
        async with Session(*one.portals[0], iqn_one) as a, Session(*two.portals[0], iqn_two) as b:
            await a.write(5, b"\x5a" * 512)
            return await b.read(5, 1)
    assert asyncio.run(write_one_read_two()) == b"\x5a" * 512
