"""Initiators inside the netns lab: a cluster node's iSCSI sessions are made in its own
namespace, from its own addresses, so the lab's separation of networks holds for them.

One lab of real reference target nodes (HA pairs wired and Synchronized, so
every path of a device reaches the same data) serves the module;
``SystemUnderTest`` over it gives the cluster nodes' initiators exactly as
suites get them. Black holes are the lab's own kernel
faults (tagged nftables drop rules in the storage node's namespace), healed on
scope exit; the lab's teardown sweeps every namespace, rule and process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, wait_fixed

from fixtures.sut import SystemUnderTest
from harness.faults.lab_faults import LabFaults
from harness.initiator.errors import ConnectionLost, Timeout
from harness.initiator.mpio.session_link import SessionLink
from harness.initiator.mpio.status import PathState
from harness.initiator.session import Session, SessionTimeouts
from harness.lab import netns
from harness.lab.backend import LabError
from harness.lab.inventory import Inventory, load
from harness.lab.netns_lab import HostSockets, NetnsLab

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

INVENTORY = Path(__file__).parents[3] / "fixtures" / "inventories" / "lab-netns.toml"
PATTERN = bytes(range(256)) * 16  # 4096 bytes: eight 512-byte or one 4096-byte block
STALLED_S = 1.0  # how long a command must stay unanswered to count as stalled
HEALED_S = 30.0  # generous: TCP retransmission backs off while the hole is open


@pytest.fixture(scope="module")
def netns_inventory() -> Inventory:
    if os.geteuid() != 0:
        pytest.skip("the netns lab needs root (network namespaces)")
    for program, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(program) is None:
            pytest.skip(f"needs the Debian package {package} ({program})")
    return load(INVENTORY)


@pytest.fixture(scope="module")
def netns_lab(tmp_path_factory: pytest.TempPathFactory,
              netns_inventory: Inventory) -> Iterator[NetnsLab]:
    lab = NetnsLab(tmp_path_factory.mktemp("netns-initiators") / "lab")
    record = lab.up(netns_inventory)
    try:
        yield lab
    finally:
        lab.down()
    assert netns.list_namespaces(record.extra["prefix"]) == []


@pytest.fixture
def sut(netns_inventory: Inventory, netns_lab: NetnsLab) -> SystemUnderTest:
    return SystemUnderTest(netns_inventory, netns_lab)


async def _block_aligned(session: Session) -> bytes:
    size = await session.block_size()
    blocks = max(1, len(PATTERN) // size)
    return (PATTERN * (1 + size // len(PATTERN)))[: blocks * size]


def _source_address(session: Session) -> str:
    """The local address of the session's TCP connection, as the kernel reports it."""
    return session._conn.transport.get_extra_info("sockname")[0]  # type: ignore[union-attr]


def test_cluster_node_session_logs_in_from_its_namespace_and_does_io(
    sut: SystemUnderTest,
) -> None:
    demo1 = sut.initiator("Demo1")
    spec = demo1.path_specs("HA1")[0]
    assert (spec.host, spec.name) == ("198.51.100.11", "Demo1->iscsi1/SWS-Store1")

    async def scenario() -> None:
        session = await demo1.login("HA1", 0)
        try:
            # the kernel's own view: Demo1's address on iscsi1, which exists only in Demo1
            assert _source_address(session) == "198.51.100.21"
            data = await _block_aligned(session)
            await session.write(8, data)
            assert await session.read(8, len(data) // await session.block_size()) == data
        finally:
            await session.logout()

    asyncio.run(scenario())


def test_blackhole_on_the_iscsi_network_stalls_the_session_and_heal_restores_it(
    sut: SystemUnderTest, netns_lab: NetnsLab,
) -> None:
    demo1 = sut.initiator("Demo1")
    faults = LabFaults(netns_lab.state.root)
    short = SessionTimeouts(connect=0.5)

    async def scenario() -> None:
        session = await demo1.login("HA1", 0)
        try:
            data = await _block_aligned(session)
            blocks = len(data) // await session.block_size()
            await session.write(16, data)
            with faults.blackhole("iscsi1/SWS-Store1"):
                received = session._conn.bytes_received  # type: ignore[union-attr]
                read = asyncio.create_task(session.read(16, blocks))
                done, _ = await asyncio.wait({read}, timeout=STALLED_S)
                assert not done, "a read crossed the black hole"
                assert session._conn.bytes_received == received  # type: ignore[union-attr]
                # a new connection on the same network is silently dropped: a typed Timeout
                with pytest.raises(Timeout, match="TCP connect"):
                    await demo1.login("HA1", 0, timeouts=short)
                # the other iSCSI network is untouched
                other = await demo1.login("HA1", 1, timeouts=short)
                assert await other.read(16, blocks) == data
                await other.logout()
            async with asyncio.timeout(HEALED_S):
                assert await read == data  # the stalled command completes once healed
            await session.ping()
            assert not session.failed
        finally:
            await session.logout()

    asyncio.run(scenario())
    assert netns_lab.namespace("SWS-Store1").nft.rules() == []


def test_a_cluster_node_cannot_reach_the_sync_network(
    sut: SystemUnderTest, netns_lab: NetnsLab,
) -> None:
    store1 = netns_lab.namespace("SWS-Store1")
    sync_address = str(sut.hosts["SWS-Store1"].addresses["sync"])
    listener = store1.listen_tcp(sync_address)
    port = listener.getsockname()[1]
    demo1 = sut.initiator("Demo1")
    try:
        # the listener is there: its partner, on the sync network, reaches it
        with netns_lab.sockets("SWS-Store2")(sync_address, port) as s:
            s.settimeout(3.0)
            s.connect((sync_address, port))
            assert s.getsockname()[0] == str(sut.hosts["SWS-Store2"].addresses["sync"])
        assert demo1.sock_factory.source_for(sync_address) is None

        async def from_demo1() -> None:
            session = Session(sync_address, port, "iqn.2026-11.test:any",
                              initiator_name=demo1.iqn, sock_factory=demo1.sock_factory,
                              timeouts=SessionTimeouts(connect=2.0))
            await session.login()

        with pytest.raises(ConnectionLost, match="unreachable"):
            asyncio.run(from_demo1())
    finally:
        listener.close()


def test_multipath_from_a_cluster_node_rides_out_a_blackholed_iscsi_network(
    sut: SystemUnderTest, netns_lab: NetnsLab,
) -> None:
    faults = LabFaults(netns_lab.state.root)
    demo2 = sut.hosts["Demo2"]
    fast = dataclasses.replace(  # lab links are local: detect and recover in seconds
        sut.mpio_timers(), noop_out_interval_s=0.5, noop_out_timeout_s=1.0,
        disk_timeout_s=5.0, delay_between_reconnect_s=0.5, path_recovery_interval_s=1.0,
        login_timeout_s=2.0)

    async def until(device: Any, wanted: Callable[[str, PathState], bool]) -> None:
        async def reached() -> bool:
            return all(wanted(p.name, p.state) for p in device.paths)

        await AsyncRetrying(stop=stop_after_delay(HEALED_S), wait=wait_fixed(0.2),
                            retry=retry_if_result(lambda ok: not ok),
                            retry_error_callback=lambda state: False)(reached)
        states = {p.name: p.state.value for p in device.paths}
        assert all(wanted(p.name, p.state) for p in device.paths), states

    async def scenario() -> None:
        async with sut.multipath("HA2", initiator="Demo2", timers=fast) as device:
            assert len(device.paths) == 4
            for name, link in device.healthy_links():
                assert isinstance(link, SessionLink)
                network = name.split("->", 1)[1].split("/", 1)[0]
                assert _source_address(link.session) == str(demo2.addresses[network])
            size = device.block_size
            data = PATTERN[: max(1, len(PATTERN) // size) * size]
            await device.write(64, data)
            with faults.blackhole("iscsi1"):  # both storage nodes' iscsi1 ports
                assert (await device.read(64, len(data) // size)).data == data
                # the sessions on iscsi1 go silent: NOP-Out pings time out, those paths fail
                await until(device, lambda name, state: state.healthy != ("->iscsi1/" in name))
                served = []
                for lba in (64, 72, 80, 88):
                    await device.write(lba, data)
                    completion = await device.read(lba, len(data) // size)
                    assert completion.data == data
                    served.append(completion.path)
                assert all("->iscsi2/" in path for path in served), served
            await until(device, lambda name, state: state is PathState.ACTIVE)
            assert (await device.read(64, len(data) // size)).data == data

    asyncio.run(scenario())


def _demo1_sockets(namespace: str) -> HostSockets:
    interfaces = tuple(ipaddress.ip_interface(a) for a in ("198.51.100.21/24", "203.0.113.21/24"))
    return HostSockets("Demo1", netns.Namespace(namespace), interfaces)


def test_host_sockets_pick_the_hosts_address_on_the_portals_network() -> None:
    sockets = _demo1_sockets("sb-unused-Demo1")
    assert sockets.source_for("198.51.100.11") == "198.51.100.21"
    assert sockets.source_for("203.0.113.12") == "203.0.113.21"
    assert sockets.source_for("10.99.3.11") is None
    with pytest.raises(LabError, match="not an IP address"):
        sockets.source_for("sws-store1.lab")


def test_a_namespace_that_is_gone_is_a_typed_connect_error() -> None:
    sockets = _demo1_sockets(f"{netns.PREFIX}{netns.new_run_id()}-gone")
    session = Session("198.51.100.11", 3260, "iqn.2026-11.test:any", sock_factory=sockets)
    with pytest.raises(ConnectionLost, match="cannot make a socket for iSCSI portal"):
        asyncio.run(session.login())
