"""An HA device served by two real reference-target node processes.

Node ``store1`` (priority 1) serves HA1, node ``store2`` serves HA1Partner; both
present the same identity. Their sync and heartbeat channels pass through the
lab's fault proxy (on a thread of this process), so the tests can cut either
one. Initiators are the harness's own ``Session`` and libiscsi's
``iscsi-test-cu``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tenacity import AsyncRetrying, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from harness.initiator.errors import CheckCondition, ReservationConflict
from harness.initiator.session import Session
from harness.lab.proxy import LinkState, ProxyControl
from harness.peers.reference_target import ReferenceTarget, ReferenceTargetFactory
from harness.scsi.reservations import PrInAction, PrType
from harness.scsi.sense import Asc, SenseKey
from harness.scsi.vpd import Association
from tests.support.ha_nodes import HaLun, running_ha_nodes

LUN = HaLun(serial="HA1-NODES-0001", naa="6001405" + "0" * 20 + "a1b2c", sync_timeout=1.5,
            heartbeat_timeout=0.5)
SIZE = LUN.size
BLOCK = 512
WE_RO = PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY


@dataclass
class HaNodes:
    store1: ReferenceTarget
    store2: ReferenceTarget
    proxy: ProxyControl

    def node(self, name: str) -> ReferenceTarget:
        return self.store1 if name == "store1" else self.store2

    def session(self, name: str, initiator: str = "hv1", portal: int = 0) -> Session:
        node = self.node(name)
        host, port = node.portals[portal]
        return Session(host, port, node.iqn,
                       initiator_name=f"iqn.1991-05.com.microsoft:{initiator}")

    def ha(self, name: str) -> dict[str, Any]:
        return self.node(name).management.request("GET", "/v1/ha")[0]

    def wait_states(self, store1: str, store2: str, timeout: float = 20) -> None:
        def check() -> None:
            one, two = self.ha("store1"), self.ha("store2")
            got = (one["state"], two["state"])
            assert got == (store1, store2), (got, one["events"], two["events"])
        wait_until(check, timeout)

    def wait_alone(self, name: str, timeout: float = 15) -> None:
        """Wait until node ``name`` carries on alone (its partner taken out)."""
        def check() -> None:
            ha = self.ha(name)
            assert ha["alone"], ha["events"]
        wait_until(check, timeout)

    @contextlib.contextmanager
    def frozen(self, name: str) -> Iterator[ReferenceTarget]:
        """Node ``name`` frozen (SIGSTOP: silent, sockets open) for the block, thawed after."""
        node = self.node(name)
        node.process.send_signal(signal.SIGSTOP)
        try:
            yield node
        finally:
            node.process.send_signal(signal.SIGCONT)

    @contextlib.contextmanager
    def disk_fault(self, name: str, **fault: Any) -> Iterator[dict[str, Any]]:
        """A fault on node ``name``'s disk of HA1 (``/v1/faults/disk``: kind, delay_ms,
        lba, count) for the block; removed after it, which releases I/O it held."""
        node = self.node(name)
        made = node.management.request("POST", "/v1/faults/disk",
                                       {"target": node.iqn, "lun": 0, **fault})
        try:
            yield made
        finally:
            node.management.request("DELETE", f"/v1/faults/disk/{made['id']}")

    def write(self, name: str, lba: int, data: bytes) -> None:
        """WRITE ``data`` at ``lba`` through a new session on node ``name``."""
        async def write() -> None:
            async with self.session(name) as s:
                await s.write(lba, data)
        run(write())

    def read(self, name: str, lbas: Iterable[int]) -> dict[int, bytes]:
        """READ one block at each of ``lbas`` through a new session on node ``name``."""
        async def read() -> dict[int, bytes]:
            async with self.session(name) as s:
                return {lba: await s.read(lba, 1) for lba in lbas}
        return dict(run(read()))

    def refuses(self, name: str, lba: int) -> None:
        """Node ``name`` refuses a READ: NOT READY, target port unavailable."""
        async def read() -> None:
            with pytest.raises(CheckCondition) as refused:
                async with self.session(name) as s:
                    await s.read(lba, 1)
            assert refused.value.sense is not None
            assert refused.value.sense.is_(Asc.NOT_READY_TARGET_PORT_UNAVAILABLE)
        run(read())

    def in_sync(self) -> None:
        self.wait_states("Synchronized", "Synchronized")

        def check() -> None:
            one, two = self.ha("store1"), self.ha("store2")
            got = (one["partner_state"], two["partner_state"])
            assert got == ("Synchronized", "Synchronized"), (got, one["events"], two["events"])
        wait_until(check, 20)

    def images_equal(self) -> bool:
        return digest(self.store1.image) == digest(self.store2.image)


def wait_until(check: Callable[[], None], timeout: float = 30) -> None:
    """Call ``check`` until it raises no AssertionError; its last one at the deadline."""
    for attempt in Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.05),
                            retry=retry_if_exception_type(AssertionError), reraise=True):
        with attempt:
            check()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def ha_nodes(reference_target_factory: ReferenceTargetFactory) -> Iterator[HaNodes]:
    with running_ha_nodes(reference_target_factory, LUN) as (store1, store2, proxy):
        nodes = HaNodes(store1, store2, proxy)
        nodes.in_sync()
        yield nodes


def lu_designators(page: Any) -> list[bytes]:
    return [d.encode() for d in page.designators if d.association == Association.LOGICAL_UNIT]


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=120))


def blocks(seed: int, count: int = 1) -> bytes:
    return random.Random(seed).randbytes(count * BLOCK)


def test_one_disk_on_two_nodes_write_through_one_read_through_the_other(ha_nodes):
    async def scenario() -> None:
        async with ha_nodes.session("store1") as a, ha_nodes.session("store2") as b:
            # the logical unit's designators are the device identity; the target
            # port designators differ per node, as they must
            assert lu_designators(await a.vpd(0x83)) == lu_designators(await b.vpd(0x83))
            assert lu_designators(await a.vpd(0x83))
            assert (await a.vpd(0x80)).encode() == (await b.vpd(0x80)).encode()
            await a.write(100, blocks(1, 8))
            assert await b.read(100, 8) == blocks(1, 8)
            await b.write(900, blocks(2, 16))
            assert await a.read(900, 16) == blocks(2, 16)
    run(scenario())
    assert ha_nodes.images_equal()


def test_kill_9_mid_workload_loses_no_acknowledged_write_and_resyncs(ha_nodes):
    acked: dict[int, bytes] = {}
    unknown: dict[int, bytes] = {}  # in flight when the node died: may or may not be there

    async def writer(session: Session, seed: int, region: range, stop: asyncio.Event) -> None:
        rnd = random.Random(seed)
        while not stop.is_set():
            lba = rnd.choice(region)  # each writer owns its region: no overlapping writes
            data = rnd.randbytes(BLOCK)
            try:
                await session.write(lba, data)
            except Exception:
                unknown[lba] = data  # this path died with its node: outcome unknown
                return
            acked[lba] = data

    async def scenario() -> None:
        async with ha_nodes.session("store1") as a, ha_nodes.session("store2") as b:
            stop = asyncio.Event()
            a_task = asyncio.ensure_future(writer(a, 1, range(0, 1024), stop))
            b_task = asyncio.ensure_future(writer(b, 2, range(1024, 2048), stop))
            await asyncio.sleep(1.0)
            await asyncio.get_running_loop().run_in_executor(None, ha_nodes.store2.kill9)
            await asyncio.sleep(1.0)  # store1 carries on alone
            stop.set()
            await asyncio.gather(a_task, b_task)
            for lba, data in acked.items():
                allowed = {data, unknown.get(lba, data)}
                assert await a.read(lba, 1) in allowed, f"acknowledged write at LBA {lba} lost"

    run(scenario())
    assert ha_nodes.ha("store1")["alone"]
    ha_nodes.store2.restart()
    ha_nodes.in_sync()
    assert "resync fast" in " ".join(ha_nodes.ha("store1")["events"])  # only dirty regions
    assert ha_nodes.images_equal()


def test_overlapping_writes_through_both_nodes_leave_identical_images(ha_nodes):
    async def scenario() -> None:
        async with ha_nodes.session("store1") as a, ha_nodes.session("store2") as b:
            rnd = random.Random(3)
            writes = [(a if i % 2 else b).write(rnd.randrange(0, 8), blocks(i, rnd.randrange(1, 4)))
                      for i in range(256)]  # up to the sessions' windows in flight at once
            await asyncio.gather(*writes)
    run(scenario())
    assert ha_nodes.images_equal()


def test_sync_cut_makes_the_lower_priority_node_refuse_io(ha_nodes):
    ha_nodes.proxy.set_state(["sync"], LinkState(mode="cut"))
    ha_nodes.wait_states("Synchronized", "Not synchronized", timeout=5)

    async def scenario() -> None:
        async with ha_nodes.session("store1") as a, ha_nodes.session("store2") as b:
            await a.write(7, blocks(7))
            with pytest.raises(CheckCondition) as refused:
                await b.read(7, 1)
            sense = refused.value.sense
            assert sense is not None and sense.key == SenseKey.NOT_READY
            assert sense.is_(Asc.NOT_READY_TARGET_PORT_UNAVAILABLE)
    run(scenario())
    ha_nodes.proxy.set_state(["sync"], LinkState())
    ha_nodes.in_sync()
    assert ha_nodes.images_equal()


def test_reservation_through_one_node_is_enforced_through_the_other(ha_nodes):
    async def scenario() -> None:
        async with ha_nodes.session("store1", "hv1") as a, \
                ha_nodes.session("store2", "hv2") as b, \
                ha_nodes.session("store2", "intruder") as c:
            await a.pr_register(0xA1)
            await b.pr_register(0xB2)
            keys = await b.persistent_reserve_in(PrInAction.READ_KEYS)
            assert sorted(keys.keys) == [0xA1, 0xB2]
            await a.pr_reserve(0xA1, WE_RO)
            with pytest.raises(ReservationConflict):
                await c.write(0, blocks(3))
            await b.write(0, blocks(4))  # a registrant may write under WE-RO
            await b.pr_preempt(0xB2, 0xA1, WE_RO)
            with pytest.raises((ReservationConflict, CheckCondition)):
                await a.write(0, blocks(5))  # preempted through the other node
    run(scenario())


def test_stale_node_refuses_after_double_failure_until_marked(ha_nodes):
    ha_nodes.store2.kill9()
    ha_nodes.wait_alone("store1", timeout=10)
    for attempt in Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.1),
                            retry=retry_if_exception_type(Exception), reraise=True):
        with attempt:
            ha_nodes.write("store1", 11, blocks(11))
    ha_nodes.store1.kill9()
    ha_nodes.store2.restart()  # alone, and older than store1: must not serve
    ha_nodes.refuses("store2", 11)
    assert ha_nodes.ha("store2")["state"] == "Not synchronized"
    ha_nodes.store2.management.request("POST", "/v1/ha/HA1/mark-synchronized")
    # serves its own, older data: the admin chose it
    assert ha_nodes.read("store2", [11]) != {11: blocks(11)}


@pytest.mark.skipif(shutil.which("iscsi-test-cu") is None,
                    reason="iscsi-test-cu missing: install Debian package libiscsi-bin")
def test_libiscsi_multipath_and_reservation_tests_pass_across_replicas(ha_nodes):
    urls = [ha_nodes.store1.url(0), ha_nodes.store2.url(0)]
    for test in ("SCSI.MultipathIO", "SCSI.ProutRegister", "SCSI.ProutReserve",
                 "SCSI.ProutPreempt", "SCSI.PrinReadKeys"):
        proc = subprocess.run(["iscsi-test-cu", "--dataloss", "--test", test, *urls],
                              capture_output=True, text=True, timeout=300)
        output = proc.stdout + proc.stderr
        assert "FAILED" not in output and "CRASH" not in output.upper(), output[-3000:]
        assert "PASSED" in output or "passed" in output, output[-3000:]


def image_block(path: Path, lba: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(lba * BLOCK)
        return f.read(BLOCK)


async def until_on_disk(image: Path, lba: int, data: bytes) -> None:
    """Wait (without blocking the loop) until block ``lba`` of ``image`` holds ``data``."""
    async for attempt in AsyncRetrying(stop=stop_after_delay(10), wait=wait_fixed(0.01),
                                       retry=retry_if_exception_type(AssertionError),
                                       reraise=True):
        with attempt:
            assert image_block(image, lba) == data


@pytest.mark.slow
@pytest.mark.parametrize("lost", ["local write", "order"])
def test_sequencer_killed_between_order_and_local_write_resyncs_the_block(ha_nodes, lost):
    """The sequencer dies with a write half done: its ORDER reached the partner but its
    own disk never got the block, or its disk got it and the ORDER never left. Whatever
    the two replicas hold for that block, they must hold the same once both report
    Synchronized again (the activity log names the block after the restart)."""
    lba, data = 4096, blocks(4096)
    sequencer = ha_nodes.store1
    if lost == "local write":  # its disk hangs on the block; the ORDER still leaves
        sequencer.management.request("POST", "/v1/faults/disk", {
            "target": sequencer.iqn, "lun": 0, "kind": "slow", "delay_ms": 600000,
            "lba": lba, "count": 1})
        half_done = ha_nodes.store2.image
    else:  # the ORDER is swallowed; its own disk takes the block
        ha_nodes.proxy.set_state(["sync"], LinkState(mode="blackhole"))
        half_done = sequencer.image

    async def write_then_kill() -> None:
        a = ha_nodes.session("store1")
        await a.__aenter__()
        write = asyncio.ensure_future(a.write(lba, data))
        await until_on_disk(half_done, lba, data)
        await asyncio.get_running_loop().run_in_executor(None, sequencer.kill9)
        with pytest.raises(Exception):  # noqa: B017 - the path died with its node
            await write
        with contextlib.suppress(Exception):
            await a.__aexit__(None, None, None)
    run(write_then_kill())
    ha_nodes.wait_alone("store2", timeout=10)
    ha_nodes.proxy.set_state(["sync"], LinkState())  # heals only now: the ORDER is lost
    sequencer.restart()
    ha_nodes.in_sync()
    assert image_block(ha_nodes.store1.image, lba) == image_block(ha_nodes.store2.image, lba)
    assert ha_nodes.images_equal()


@pytest.mark.slow
def test_libiscsi_conformance_floor_holds_on_an_ha_replica(ha_nodes):
    """The whole iscsi-test-cu ALL family against the HA device through its primary
    replica passes at least the floor a plain node holds (suites/protocol), and the two
    replicas are identical afterwards."""
    from suites.protocol.libiscsi import run_suite

    if shutil.which("iscsi-test-cu") is None:
        pytest.skip("needs the Debian package libiscsi-bin (iscsi-test-cu)")
    run = run_suite(ha_nodes.store1.url(0), timeout=900)
    assert ha_nodes.store1.alive() and ha_nodes.store2.alive()
    short = run.short_of_floor()
    assert not short, f"on the HA replica: {short}"
    ha_nodes.in_sync()
    assert ha_nodes.images_equal()


def test_a_partner_whose_disk_hangs_is_taken_out_by_the_order_timeout(ha_nodes):
    """store2's disk hangs (its links and keepalives stay healthy): the ORDERs it does not
    acknowledge within the sync timeout take it out, and writes through store1 go on."""
    async def write() -> None:
        async with ha_nodes.session("store1") as a:
            await asyncio.wait_for(a.write(300, blocks(300)), timeout=30)
    # removing the fault releases the hung writes, so store2 stops cleanly at teardown
    with ha_nodes.disk_fault("store2", kind="slow", delay_ms=600000):
        run(write())
        assert ha_nodes.ha("store1")["alone"]
        assert any("not acknowledged" in e for e in ha_nodes.ha("store1")["events"])
        assert ha_nodes.ha("store2")["state"] == "Not synchronized"


@contextlib.contextmanager
def partner_carries_on_alone(nodes: HaNodes, lba: int) -> Iterator[None]:
    """store1 frozen until store2 carries on alone, then a write of ``blocks(lba)`` at
    ``lba`` on store2; store1 thaws when the block (run while it is still frozen) ends."""
    with nodes.frozen("store1"):
        nodes.wait_alone("store2")
        nodes.write("store2", lba, blocks(lba))
        yield


def test_a_frozen_primary_that_thaws_stops_instead_of_splitting_the_brain(ha_nodes):
    """store1 is frozen (SIGSTOP: silent, sockets open); store2 finds sync and heartbeat
    silent and carries on alone, taking writes. When store1 thaws, its heartbeat
    answers, and its FENCE is refused: store2 already carried on alone, so store1 is
    the stale one and stops. They resync from store2; no split brain."""
    with partner_carries_on_alone(ha_nodes, 500):
        pass  # store1 thaws right after store2's write
    ha_nodes.in_sync()
    events = " ".join(ha_nodes.ha("store1")["events"] + ha_nodes.ha("store2")["events"])
    assert "split brain" not in events
    assert ha_nodes.read("store1", [500]) == {500: blocks(500)}
    assert ha_nodes.images_equal()


def test_a_frozen_primary_whose_heartbeat_answers_late_after_the_thaw_stops(ha_nodes):
    """The same freeze, on a loaded machine: after the thaw store2's heartbeat answers
    late (the proxy delays the heartbeat link by 3 s, longer than any heartbeat wait).
    store1 stalled through the loss, so the silence it hears proves nothing: store2 may
    have (and did) carry on alone meanwhile. store1 must not carry on alone too (split
    brain); without the partner's FENCED it stops, and resyncs from store2."""
    with partner_carries_on_alone(ha_nodes, 700):
        ha_nodes.proxy.set_state(["heartbeat"], LinkState(mode="delay", delay_ms=3000))
    try:
        ha_nodes.in_sync()
    finally:
        ha_nodes.proxy.set_state(["heartbeat"], LinkState())
    store1_events = ha_nodes.ha("store1")["events"]
    events = " ".join(store1_events + ha_nodes.ha("store2")["events"])
    assert "split brain" not in events
    assert any("stalled" in e and "stopped serving" in e for e in store1_events), store1_events
    assert ha_nodes.read("store1", [700]) == {700: blocks(700)}
    assert ha_nodes.images_equal()


@pytest.mark.slow
def test_a_thawed_sequencer_that_stops_leaves_no_block_different(ha_nodes):
    """store1 (the sequencer) wrote a block on its own disk, and its ORDER was swallowed
    (sync black-holed), when it froze. store2 carried on alone; store1 thaws, learns that
    and stops, failing the write it never got acknowledged. That write is on store1's
    disk only: the resync from store2 must cover its block, so the two replicas hold the
    same data once both report Synchronized (the stopped node names the block in HELLO,
    as its activity log does after a crash)."""
    lba, data = 6144, blocks(6144)
    ha_nodes.proxy.set_state(["sync"], LinkState(mode="blackhole"))

    async def write_then_freeze() -> None:
        a = ha_nodes.session("store1")
        await a.__aenter__()
        write = asyncio.ensure_future(a.write(lba, data))
        await until_on_disk(ha_nodes.store1.image, lba, data)
        with ha_nodes.frozen("store1"):
            ha_nodes.wait_alone("store2")
            ha_nodes.proxy.set_state(["sync"], LinkState())
        with pytest.raises(CheckCondition):  # never acknowledged: store1 stopped
            await write
        await a.__aexit__(None, None, None)
    run(write_then_freeze())
    ha_nodes.in_sync()
    assert "stopped serving" in " ".join(ha_nodes.ha("store1")["events"])
    assert image_block(ha_nodes.store1.image, lba) == image_block(ha_nodes.store2.image, lba)
    assert ha_nodes.images_equal()


def test_a_thawed_replica_serves_no_stale_read_before_its_session_proves_alive(ha_nodes):
    """A READ waits in store1's socket while store1 is frozen; meanwhile store2 carried
    on alone and took a write to that block. The sync link is black-holed, so on the
    thaw nothing tells store1 at once that its session is gone. The READ must not be
    served from store1's stale image: it waits for a round trip on the session begun
    after the stall, which never comes, and store1 stops (NOT READY, MPIO re-drives)."""
    lba, old, new = 900, blocks(900), blocks(901)

    async def scenario() -> bytes | None:
        async with ha_nodes.session("store1") as a:
            await a.write(lba, old)
            with ha_nodes.frozen("store1"):
                ha_nodes.proxy.set_state(["sync"], LinkState(mode="blackhole"))
                async for attempt in AsyncRetrying(
                        stop=stop_after_delay(15), wait=wait_fixed(0.05),
                        retry=retry_if_exception_type(AssertionError), reraise=True):
                    with attempt:
                        assert ha_nodes.ha("store2")["alone"]
                async with ha_nodes.session("store2") as b:
                    await b.write(lba, new)
                read = asyncio.ensure_future(a.read(lba, 1))
                await asyncio.sleep(0.3)  # the READ now waits in store1's socket
            try:
                return await asyncio.wait_for(read, 30)
            except CheckCondition as exc:
                assert exc.sense is not None and exc.sense.key == SenseKey.NOT_READY, exc
                return None
    got = run(scenario())
    assert got != old, "a stale read: store1 served its image after the partner took over"
    ha_nodes.proxy.set_state(["sync"], LinkState())
    ha_nodes.in_sync()
    assert ha_nodes.images_equal()
