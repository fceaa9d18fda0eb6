"""Resync and reconnection races on real node processes (chaos primary-dies-while-sync-silent).

The chaos scenario killed the primary while the sync link was black-holed; the partner
carried on alone, and when the primary returned both replicas ended Not synchronized
for good, the partner holding acknowledged writes the primary lacked. Each test here
drives one of its root causes deterministically through the lab's fault proxy and the
nodes' disk faults (``ha_nodes``: store1 priority 1 listens, store2 dials).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from harness.lab.proxy import LinkState
from harness.target.ha import protocol
from harness.target.ha.protocol import MessageKind
from harness.target.ha.replica import ReplicaState, ReplicaSummary
from tests.integration.ha import test_nodes
from tests.integration.ha.test_nodes import HaNodes, blocks, run, wait_until

ha_nodes = test_nodes.ha_nodes  # the two real node processes behind the fault proxy


def events(nodes: HaNodes, name: str) -> str:
    return " | ".join(nodes.ha(name)["events"])


def survivor_with_writes(nodes: HaNodes) -> dict[int, bytes]:
    """store1 dies; store2 carries on alone and acknowledges writes store1 never saw."""
    nodes.store1.kill9()
    nodes.wait_alone("store2", timeout=30)
    written = {lba: blocks(lba) for lba in range(0, 16384, 997)}  # many regions dirty

    async def write() -> None:
        async with nodes.session("store2") as b:
            for lba, data in written.items():
                await b.write(lba, data)
    run(write())
    return written


def _assert(ok: object, why: str = "") -> None:
    assert ok, why


@contextlib.contextmanager
def store1_back_with_a_slow_disk(nodes: HaNodes, delay_ms: int) -> Iterator[dict[int, bytes]]:
    """store2 carried on alone with writes (``survivor_with_writes``, yielded); store1
    restarts behind a cut sync link, its disk slowed by ``delay_ms`` per I/O, and the link
    heals, so the resync runs against the slow disk. The fault goes when the block ends."""
    written = survivor_with_writes(nodes)
    nodes.proxy.set_state(["sync"], LinkState(mode="cut"))  # no resync before the fault
    nodes.store1.restart()
    with nodes.disk_fault("store1", kind="slow", delay_ms=delay_ms):
        nodes.proxy.set_state(["sync"], LinkState())
        yield written


def test_the_source_of_a_resync_carries_on_when_the_resync_link_is_lost(ha_nodes):
    """store2 carried on alone and resyncs the returned store1, whose disk hangs, so the
    resync's ORDERs go unacknowledged and the ORDER timeout takes the link down while
    the heartbeat answers. store2 must carry on (store1 is only Synchronizing and cannot
    serve): before the fix it stopped by priority, and both replicas stayed Not
    synchronized with the newest data on one that must not serve."""
    # leaving the block releases the hung I/O: the resync is planned again and completes
    with store1_back_with_a_slow_disk(ha_nodes, 600000) as written:
        wait_until(lambda: _assert("not acknowledged" in events(ha_nodes, "store2"),
                                   events(ha_nodes, "store2")))
        store2 = ha_nodes.ha("store2")
        assert store2["state"] == "Synchronized", store2["events"]
        assert "stopped serving" not in events(ha_nodes, "store2")
        ha_nodes.write("store2", 20000, blocks(20000))  # it still serves
        written[20000] = blocks(20000)
    ha_nodes.in_sync()
    assert ha_nodes.read("store1", written) == written
    assert ha_nodes.images_equal()


def test_resync_cut_short_is_planned_again_on_the_next_link(ha_nodes):
    """The sync link resets in the middle of a resync (store1's disk is slow, so the copy
    is still going): the resync ends without an unretrieved exception, the source keeps
    serving, and the next link plans it again until both are Synchronized."""
    with store1_back_with_a_slow_disk(ha_nodes, 200):
        wait_until(lambda: _assert((ha_nodes.ha("store2")["resync"] or {}).get("role")
                                   == "source"))
        ha_nodes.proxy.set_state(["sync"], LinkState(mode="cut"))
        wait_until(lambda: _assert(ha_nodes.ha("store2")["resync"] is None))
        assert ha_nodes.ha("store2")["state"] == "Synchronized", events(ha_nodes, "store2")
        ha_nodes.proxy.set_state(["sync"], LinkState())
    ha_nodes.in_sync()
    assert ha_nodes.images_equal()
    for node in (ha_nodes.store1, ha_nodes.store2):
        assert "never retrieved" not in node.log_text(), node.log_text()[-3000:]


def test_a_stale_connection_delivered_late_never_replaces_the_live_session(ha_nodes):
    """A network that held a connection (the lab proxy's black hole holds them) delivers it
    after the heal, with the HELLO the dialer sent on it before giving up, then its close.
    Before the fix store1 adopted it at once, dropping the live session with store2 (in
    the chaos run: in the middle of the resync, which then never finished)."""
    store1 = ha_nodes.store1
    host, port = store1.spec.ha_devices[0]["sync_listen"].rsplit(":", 1)
    store2 = ha_nodes.ha("store2")
    stale_hello = protocol.control(MessageKind.HELLO, ReplicaSummary(
        node="store2", priority=2, generation=store2["generation"],
        state=ReplicaState.SYNCHRONIZED, alone=False, partner_left_at=0,
        clean_shutdown=False, dirty_map_valid=False).to_json())
    log_before = len(store1.log_text())
    with socket.create_connection((host, int(port)), timeout=30) as stale:
        stale.sendall(protocol.encode(stale_hello))
        stale.shutdown(socket.SHUT_WR)  # the dialer gave up on it long ago
        while stale.recv(65536):  # store1 closes it, one way or the other
            pass
    wait_until(lambda: _assert(any(s in store1.log_text()[log_before:] for s in (
        "not adopted", "replaced by a newer connection", "replaced by a new connection"))))
    later = store1.log_text()[log_before:]
    assert "not adopted" in later and "replaced" not in later, later
    ha_nodes.in_sync()
    assert "sync lost" not in events(ha_nodes, "store1") + events(ha_nodes, "store2")


def test_a_restarted_primary_whose_partner_carried_on_never_serves_before_its_resync(ha_nodes):
    """The hypothesis recorded with the chaos finding: the primary dies while the sync link
    is black-holed, the partner carries on alone, and the primary restarts while the sync
    link is still silent but its heartbeat answers. The restarted primary must not carry on
    (its metadata says it was not the survivor): it refuses I/O until it has resynced from
    the partner, and then holds the partner's writes. (This held before the fixes too; the
    test keeps it so.)"""
    ha_nodes.proxy.set_state(["sync"], LinkState(mode="blackhole"))
    written = survivor_with_writes(ha_nodes)
    ha_nodes.store1.restart()
    wait_until(lambda: _assert(ha_nodes.ha("store1")["heartbeat_link"]))
    store1 = ha_nodes.ha("store1")
    assert store1["state"] == "Not synchronized" and not store1["alone"], store1["events"]

    ha_nodes.refuses("store1", 0)
    ha_nodes.proxy.set_state(["sync"], LinkState())
    ha_nodes.in_sync()
    assert "split brain" not in events(ha_nodes, "store1") + events(ha_nodes, "store2")
    assert ha_nodes.read("store1", written) == written
    assert ha_nodes.images_equal()
