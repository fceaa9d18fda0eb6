"""Power loss of a storage node (the volatile layer, harness.target.power_loss).

A node started with ``volatile_writes = true`` loses, on ``POST
/v1/faults/power-loss``, every write no fdatasync covered, and dies. Write-through
writes (and write-back writes followed by SYNCHRONIZE CACHE) survive; a node with
the ``ack-before-durable`` defect loses writes it acknowledged; so does an honest
write-back node whose cache was never flushed (which it may: it said WCE = 1).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from harness.faults.disk import _client as management_client
from harness.faults.lab_faults import LabFaults
from harness.initiator.session import Session
from harness.lab.inventory import loads
from harness.lab.loopback import LoopbackLab
from harness.peers.reference_target import NodeSpec, ReferenceTarget, lun_target

BLOCK = 512


def data(seed: int) -> bytes:
    return random.Random(seed).randbytes(8 * BLOCK)


def session(node: ReferenceTarget) -> Session:
    host, port = node.portals[0]
    return Session(host, port, node.iqn, initiator_name="iqn.1991-05.com.microsoft:hv1")


def lose_power(node: ReferenceTarget) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the node dies without answering
        node.management.request("POST", "/v1/faults/power-loss")
    node.process.wait(10)
    assert node.process.returncode == -9


def write_lose_power_read(factory, *, write_through: bool = True, defects=(),
                          flush: bool = False) -> tuple[bytes, bytes]:
    """What blocks 100 and 200 read back after a power loss that followed two writes
    (the second without waiting for anything but its own acknowledgement)."""
    node = factory.start(NodeSpec(targets=(lun_target(size="4MiB"),),
                                  write_through=write_through,
                                  node={"volatile_writes": True, "defects": list(defects)}))

    async def write() -> None:
        async with session(node) as s:
            await s.write(100, data(1))
            if flush:
                await s.synchronize_cache()
            await s.write(200, data(2))
            if flush:
                await s.synchronize_cache()

    async def read() -> tuple[bytes, bytes]:
        async with session(node) as s:
            return await s.read(100, 8), await s.read(200, 8)
    asyncio.run(write())
    lose_power(node)
    node.start()
    return asyncio.run(read())


def test_write_through_survives_power_loss(reference_target_factory):
    assert write_lose_power_read(reference_target_factory) == (data(1), data(2))


def test_ack_before_durable_defect_loses_acknowledged_writes(reference_target_factory):
    after = write_lose_power_read(reference_target_factory, defects=["ack-before-durable"])
    assert after == (bytes(8 * BLOCK), bytes(8 * BLOCK))


def test_write_back_keeps_what_was_flushed_and_may_lose_the_rest(reference_target_factory):
    assert write_lose_power_read(reference_target_factory, write_through=False,
                                 flush=True) == (data(1), data(2))
    assert write_lose_power_read(reference_target_factory, write_through=False) \
        == (bytes(8 * BLOCK), bytes(8 * BLOCK))


def test_power_loss_is_refused_without_the_volatile_layer(reference_target_factory):
    node = reference_target_factory.start(NodeSpec(targets=(lun_target(size="4MiB"),)))
    with pytest.raises(Exception, match="volatile_writes"):
        node.management.request("POST", "/v1/faults/power-loss")
    assert node.alive


LAB = Path(__file__).parents[3] / "fixtures" / "inventories" / "lab.toml"


def ha1_states(lab: Any) -> dict[str, str]:
    states = {}
    for host in ("SWS-Store1", "SWS-Store2"):
        client = management_client(str(lab.state.root), host)
        ha = [] if client is None else client.request("GET", "/v1/ha")
        states[host] = next((d["state"] for d in ha if d["alias"] == "HA1"), "down")
    return states


def write_survives_a_total_blackout(tmp_path: Path, defects: list[str]) -> bool:
    """HA1 of the lab takes an acknowledged write, then both storage nodes lose power
    at once (the lab's power-loss fault) and come back: is the write still there?"""
    text = LAB.read_text()
    if defects:
        text = text.replace("[devices.HA1]\n", f"[devices.HA1]\ndefects = {defects!r}\n", 1)
    inventory = loads(text.replace("'", '"'), "lab.toml")
    assert inventory.device("HA1").defects == tuple(defects)
    device = inventory.device("HA1")
    lab = LoopbackLab(tmp_path / "lab")
    record = lab.up(inventory)
    try:
        portal = record.links["iscsi1/SWS-Store1"].listen
        target = device.replica_on("SWS-Store1").target

        async def io(write: bool) -> bytes:
            async with Session(portal[0], portal[1], target,
                               initiator_name="iqn.1991-05.com.microsoft:demo1") as s:
                if write:
                    await s.write(100, data(9), lun=device.lun)
                return await s.read(100, 8, lun=device.lun)
        assert asyncio.run(io(True)) == data(9)  # acknowledged
        faults = LabFaults(lab.state.root)
        outages = [faults.power_loss("SWS-Store1"), faults.power_loss("SWS-Store2")]
        for outage in outages:
            outage.inject()
        for outage in reversed(outages):
            outage.heal()
        for attempt in Retrying(stop=stop_after_delay(60), wait=wait_fixed(0.2),
                                retry=retry_if_exception_type(AssertionError), reraise=True):
            with attempt:
                assert set(ha1_states(lab).values()) == {"Synchronized"}
        return asyncio.run(io(False)) == data(9)
    finally:
        lab.down()


@pytest.mark.slow
def test_total_blackout_keeps_acknowledged_writes_of_the_correct_device(tmp_path):
    assert write_survives_a_total_blackout(tmp_path, [])


@pytest.mark.slow
def test_total_blackout_loses_writes_the_ack_before_durable_device_acknowledged(tmp_path):
    assert not write_survives_a_total_blackout(tmp_path, ["ack-before-durable"])
