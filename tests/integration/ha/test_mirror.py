"""Two replicas of one HA device, linked over loopback through the fault proxy.

These tests drive ``HaDevice`` directly (no iSCSI) to prove the mirror's
ordering, failure handling and resync; tests/integration/target/ prove the
same through real node processes and initiators.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from harness.lab.proxy import FaultProxy, LinkMode, LinkSpec, LinkState
from harness.target.ha.config import HaDeviceConfig, HaTimeouts
from harness.target.ha.mirror import HaDevice, ReplicaNotServing
from harness.target.ha.replica import FailoverStrategy, InitialSync, ReplicaState
from harness.target.ha.witness import Witness

S, NS = ReplicaState.SYNCHRONIZED, ReplicaState.NOT_SYNCHRONIZED

BLOCK = 512
BLOCKS = 4096  # 2 MiB


class ImageStore:
    """A plain image file with positioned I/O, written through."""

    def __init__(self, path: Path, num_blocks: int = BLOCKS, block_size: int = BLOCK) -> None:
        self.path = path
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self.fd, num_blocks * block_size)

    async def read(self, lba: int, count: int) -> bytes:
        return os.pread(self.fd, count * self.block_size, lba * self.block_size)

    async def write(self, lba: int, data: bytes, *, fua: bool = False) -> None:
        os.pwrite(self.fd, data, lba * self.block_size)

    async def flush(self) -> None:
        os.fdatasync(self.fd)

    async def unmap(self, lba: int, count: int) -> None:
        os.pwrite(self.fd, bytes(count * self.block_size), lba * self.block_size)

    def close(self) -> None:
        os.close(self.fd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_configs(tmp: Path, *, strategy=FailoverStrategy.HEARTBEAT, witness=None,
                 initial=InitialSync.NONE, sync_s=0.6, via: dict | None = None):
    """Configs for node a (priority 1, listens) and b (priority 2, dials).

    ``via`` maps "sync"/"heartbeat" to the address b dials instead of a's
    listener (a fault proxy in front of it).
    """
    sync_port, hb_port = free_port(), free_port()
    via = via or {}
    timeouts = HaTimeouts(sync_s=sync_s, heartbeat_s=0.3, witness_s=0.5)
    common = dict(alias="HA1", strategy=strategy, witness=witness, initial_sync=initial,
                  initial_source="a", region_bytes=64 * 1024, timeouts=timeouts)
    a = HaDeviceConfig(node="a", priority=1, partner="b", partner_priority=2,
                       state_dir=tmp / "a", sync_listen=("127.0.0.1", sync_port),
                       heartbeat_listen=("127.0.0.1", hb_port), **common)
    b = HaDeviceConfig(node="b", priority=2, partner="a", partner_priority=1,
                       state_dir=tmp / "b",
                       partner_sync=via.get("sync", ("127.0.0.1", sync_port)),
                       partner_heartbeat=via.get("heartbeat", ("127.0.0.1", hb_port)), **common)
    return {"a": a, "b": b}


async def start_replica(config: HaDeviceConfig, path: Path) -> tuple[HaDevice, ImageStore]:
    config.state_dir.mkdir(parents=True, exist_ok=True)
    store = ImageStore(path)
    dev = HaDevice(config, store)
    await dev.start()
    return dev, store


async def wait_for(predicate, timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, failing with AssertionError at the deadline."""
    async for attempt in AsyncRetrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.01),
                                       retry=retry_if_exception_type(AssertionError),
                                       reraise=True):
        with attempt:
            assert predicate(), f"still false after {timeout}s: {predicate.__doc__ or predicate}"



def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Lab:
    """Replicas a (priority 1) and b (priority 2) with proxied sync and heartbeat."""

    def __init__(self, tmp: Path, **config) -> None:
        self.tmp = tmp
        self.config = config
        self.devices: dict = {}
        self.stores: dict = {}

    async def __aenter__(self) -> Lab:
        sync_up, hb_up = free_port(), free_port()
        self.proxy = FaultProxy([
            LinkSpec("sync", "127.0.0.1", 0, "127.0.0.1", sync_up),
            LinkSpec("heartbeat", "127.0.0.1", 0, "127.0.0.1", hb_up),
        ])
        await self.proxy.start()
        via = {name: ("127.0.0.1", link.spec.listen_port if link.spec.listen_port else
                      link.port) for name, link in self.proxy.links.items()}
        self.configs = make_configs(self.tmp, via=via, **self.config)
        # a listens where the proxy forwards to
        self.configs["a"] = replace(self.configs["a"], sync_listen=("127.0.0.1", sync_up),
                                    heartbeat_listen=("127.0.0.1", hb_up))
        for node in ("a", "b"):
            await self.start(node)
        return self

    async def start(self, node: str) -> None:
        dev, store = await start_replica(self.configs[node], self.tmp / f"{node}.img")
        self.devices[node], self.stores[node] = dev, store

    async def stop(self, node: str) -> None:
        await self.devices[node].stop()
        self.stores[node].close()

    async def crash(self, node: str) -> None:
        """Stop without the clean-shutdown steps: links dropped, nothing saved."""
        dev = self.devices[node]
        for keeper in (dev.sync, dev.heartbeat):
            if keeper is not None:
                await keeper.close()
        for task in list(dev._tasks):
            task.cancel()
        self.stores[node].close()

    def fault(self, links: list[str], mode: LinkMode) -> None:
        self.proxy.set_state(links, LinkState(mode=mode))

    async def __aexit__(self, *exc) -> None:
        for node, dev in self.devices.items():
            try:
                await dev.stop()
                self.stores[node].close()
            except Exception:
                pass
        await self.proxy.close()

    @property
    def a(self):
        return self.devices["a"]

    @property
    def b(self):
        return self.devices["b"]

    async def in_sync(self) -> None:
        await wait_for(lambda: self.a.state is S and self.b.state is S
                       and self.a.mirroring and self.b.partner_state is S
                       and self.a.partner_state is S)

    def images_equal(self) -> bool:
        return digest(self.tmp / "a.img") == digest(self.tmp / "b.img")


def block(seed: int, count: int = 1) -> bytes:
    return random.Random(seed).randbytes(count * BLOCK)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


def test_write_through_one_replica_reads_back_through_the_other(tmp_path):
    async def scenario():
        async with Lab(tmp_path) as lab:
            await lab.in_sync()
            await lab.a.write(10, block(1, 8))
            assert await lab.b.read(10, 8) == block(1, 8)
            await lab.b.write(100, block(2, 4))  # forwarded to the sequencer
            assert await lab.a.read(100, 4) == block(2, 4)
            assert lab.a.is_sequencer and not lab.b.is_sequencer
    run(scenario())


def test_concurrent_overlapping_writes_through_both_leave_identical_replicas(tmp_path):
    async def scenario():
        async with Lab(tmp_path) as lab:
            await lab.in_sync()
            rnd = random.Random(7)
            # Hundreds of writes in flight at once into a 16-block hot region,
            # half through each node: heavy overlap, arbitrary interleaving.
            for burst in range(4):
                writes = []
                for i in range(200):
                    dev = lab.a if i % 2 else lab.b
                    lba = rnd.randrange(0, 16)
                    writes.append(dev.write(lba, block(burst * 1000 + i, rnd.randrange(1, 5))))
                await asyncio.gather(*writes)
            await lab.a.flush()
            await lab.b.flush()
            assert await lab.a.read(0, 32) == await lab.b.read(0, 32)
            assert lab.images_equal()
    run(scenario())


def test_sync_cut_with_heartbeat_alive_stops_the_lower_priority_replica(tmp_path):
    async def scenario():
        async with Lab(tmp_path) as lab:
            await lab.in_sync()
            await lab.a.write(0, block(1))
            lab.fault(["sync"], LinkMode.CUT)
            await wait_for(lambda: lab.b.state is NS)
            with pytest.raises(ReplicaNotServing) as refused:
                await lab.b.read(0, 1)
            assert (refused.value.asc, refused.value.ascq) == (0x04, 0x0C)
            await wait_for(lambda: lab.a.meta.alone)
            await lab.a.write(1, block(2))  # the survivor serves and tracks the change
            assert len(lab.a.dirty) >= 1 and lab.a.state is S
            lab.fault(["sync"], LinkMode.PASS)
            await lab.in_sync()
            assert "resync fast" in " ".join(lab.a.meta.events)
            assert await lab.b.read(1, 1) == block(2)
            assert lab.images_equal()
    run(scenario())


def test_black_holed_sync_is_detected_by_silence(tmp_path):
    async def scenario():
        async with Lab(tmp_path) as lab:
            await lab.in_sync()
            lab.fault(["sync"], LinkMode.BLACKHOLE)
            write = asyncio.ensure_future(lab.a.write(5, block(5)))
            await asyncio.wait_for(write, timeout=10)  # completes once a carries on alone
            assert lab.a.meta.alone and lab.b.state is NS
            lab.fault(["sync"], LinkMode.PASS)
            await lab.in_sync()
            assert lab.images_equal()
    run(scenario())


def test_sync_and_heartbeat_cut_is_split_brain_and_reconnect_says_so(tmp_path):
    async def scenario():
        async with Lab(tmp_path) as lab:
            await lab.in_sync()
            lab.fault(["sync", "heartbeat"], LinkMode.CUT)
            await wait_for(lambda: lab.a.meta.alone and lab.b.meta.alone)
            await lab.a.write(3, block(30))
            await lab.b.write(3, block(31))  # both serve: diverged
            assert lab.b.state is S
            lab.fault(["sync", "heartbeat"], LinkMode.PASS)
            await lab.in_sync()
            assert any("split brain" in e for e in lab.a.meta.events + lab.b.meta.events)
            assert await lab.b.read(3, 1) == block(30)  # the higher priority's data won
            assert lab.images_equal()
    run(scenario())


def test_clean_stop_and_return_resyncs_only_dirty_regions(tmp_path):
    async def scenario():
        async with Lab(tmp_path) as lab:
            await lab.in_sync()
            await lab.stop("b")
            await wait_for(lambda: lab.a.meta.alone)
            await lab.a.write(2048, block(9, 16))
            await lab.start("b")
            await lab.in_sync()
            assert "resync fast" in " ".join(lab.a.meta.events)
            assert lab.images_equal()
    run(scenario())


def test_stale_replica_refuses_after_double_failure_until_marked(tmp_path):
    async def scenario():
        async with Lab(tmp_path) as lab:
            await lab.in_sync()
            await lab.crash("b")
            await wait_for(lambda: lab.a.meta.alone)
            await lab.a.write(7, block(70))  # only a has this
            await lab.crash("a")
            del lab.devices["a"]
            await lab.start("b")  # b alone: it cannot know a went ahead
            assert lab.b.state is NS
            with pytest.raises(ReplicaNotServing):
                await lab.b.read(7, 1)
            lab.b.mark_synchronized()
            assert await lab.b.read(7, 1) != block(70)  # b serves its own (older) data
            await lab.b.write(8, block(80))
            await lab.start("a")  # a returns: the marked replica is the source
            await lab.in_sync()
            assert await lab.a.read(8, 1) == block(80)
            assert lab.images_equal()
    run(scenario())


def test_node_majority_lets_only_the_witness_holder_serve(tmp_path):
    async def scenario():
        w = Witness(tmp_path / "witness.json")
        host, port = await w.start("127.0.0.1", 0)
        try:
            async with Lab(tmp_path, strategy=FailoverStrategy.NODE_MAJORITY,
                           witness=(host, port)) as lab:
                await lab.in_sync()
                lab.fault(["sync", "heartbeat"], LinkMode.CUT)
                await wait_for(lambda: {lab.a.state, lab.b.state} == {S, NS}
                               and (lab.a.meta.alone or lab.b.meta.alone))
                serving = [d for d in (lab.a, lab.b) if d.state is S]
                assert len(serving) == 1  # never both: no split brain
        finally:
            await w.close()
    run(scenario())
