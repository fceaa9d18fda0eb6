"""A failing disk on one replica, through MPIO, on two real node processes.

The cluster node reads and writes the HA device over four paths (two portals per
node, round robin) while the secondary's whole disk returns EIO (the node's own
disk-fault layer, ``/v1/faults/disk``): no read or write comes back to the caller
as an error, every read returns what was written (the failing replica answered
NOT READY / unavailable, MPIO re-drove on the partner), the secondary is Not
synchronized, and once the fault is removed a resync makes the images identical.
Before the fix the first read that hit the failing disk came back to the caller as
MEDIUM ERROR (chaos ``disk-eio-secondary``).
"""

from __future__ import annotations

import asyncio
import os

import pytest
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from harness.initiator.mpio.device import MultipathDevice
from harness.initiator.mpio.link import PathSpec
from harness.initiator.mpio.session_link import session_connector
from harness.initiator.mpio.timers import MpioTimers
from tests.integration.ha.test_nodes import SIZE, HaNodes, ha_nodes, run  # noqa: F401

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

TIMERS = MpioTimers(noop_out_interval_s=0.5, noop_out_timeout_s=1.0, link_down_time_s=0.2,
                    replacement_timeout_s=None, retry_interval_s=0.05,
                    delay_between_reconnect_s=0.3, pdo_remove_period_s=2.0,
                    disk_timeout_s=10.0, login_timeout_s=5.0)
BLOCKS = 64


def paths(nodes: HaNodes) -> list[PathSpec]:
    return [PathSpec(host, port, nodes.node(name).iqn, lun=0, name=f"{name}-{i}",
                     initiator="iqn.1991-05.com.microsoft:hv1")
            for name in ("store1", "store2")
            for i, (host, port) in enumerate(nodes.node(name).portals)]


async def until(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async for attempt in AsyncRetrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.1),
                                       retry=retry_if_exception_type(AssertionError),
                                       reraise=True):
        with attempt:
            check()


def test_reads_on_the_secondarys_failing_disk_are_served_by_the_partner(
        ha_nodes: HaNodes) -> None:  # noqa: F811
    store2 = ha_nodes.node("store2")

    def disk_fault(method: str, path: str = "", body: object = None) -> object:
        return store2.management.request(method, "/v1/faults/disk" + path, body)

    async def body() -> None:
        async with MultipathDevice(paths(ha_nodes), connector=session_connector,
                                   timers=TIMERS) as dev:
            data = {lba: os.urandom(512) for lba in range(BLOCKS)}
            for lba, block in data.items():
                await dev.write(lba, block)
            disk_fault("POST", body={"id": "bad-disk", "target": store2.iqn, "lun": 0,
                                     "kind": "eio", "lba": 0, "count": SIZE // 512})
            for _ in range(2):  # round robin: every path, the failing node's too
                for lba, block in data.items():
                    done = await dev.read(lba, 1)
                    assert done.data == block, f"LBA {lba} read wrong data"
            for lba in range(0, BLOCKS, 2):  # writes go on, on the partner
                data[lba] = os.urandom(512)
                await dev.write(lba, data[lba])
            await until(lambda: assertion(ha_nodes.ha("store2")["state"] == "Not synchronized"))
            assert any("disk failure" in e for e in ha_nodes.ha("store2")["events"])
            disk_fault("DELETE", "/bad-disk")
            await asyncio.to_thread(ha_nodes.in_sync)
            for lba, block in data.items():
                assert (await dev.read(lba, 1)).data == block
        assert ha_nodes.images_equal()

    run(body())


def assertion(ok: bool) -> None:
    assert ok
