"""A node-majority HA device in the loopback lab, with the witness as a lab process.

The witness host runs ``harness.lab.witness_daemon``; each replica's node asks it
through its own proxy link, so cutting sync and heartbeat leaves the decision to
the witness: exactly one replica goes on serving, the other refuses I/O, and
healing the links resynchronizes the pair.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.sut import SutReplica, SystemUnderTest
from harness.initiator.errors import CheckCondition
from harness.initiator.session import Session
from harness.lab.ha_wiring import HaWiringError, plan_pairs, plan_witnesses
from harness.lab.inventory import Inventory, load
from harness.lab.loopback import LoopbackLab
from harness.lab.node_process import wait_until
from harness.scsi.sense import SenseKey

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

INVENTORY = """
[site]
name = "witness-lab"
destructive = true

[lab]
backend = "loopback"

[networks.public]
roles = ["public"]
cidr = "127.12.0.0/24"

[networks.iscsi1]
roles = ["iscsi"]
cidr = "127.12.1.0/24"

[networks.sync]
roles = ["sync"]
cidr = "127.12.3.0/24"

[networks.heartbeat]
roles = ["heartbeat"]
cidr = "127.12.4.0/24"

[hosts.SWS-Store1]
roles = ["storage"]
addresses = { public = "127.12.0.11", iscsi1 = "127.12.1.11", sync = "127.12.3.11", heartbeat = "127.12.4.11" }

[hosts.SWS-Store2]
roles = ["storage"]
addresses = { public = "127.12.0.12", iscsi1 = "127.12.1.12", sync = "127.12.3.12", heartbeat = "127.12.4.12" }

[hosts.SWS-Witness]
roles = ["witness"]
addresses = { public = "127.12.0.30" }

[devices.HA1]
purpose = "quorum"
size = "16MiB"
lun = 0
strategy = "node-majority"
witness = "SWS-Witness"

[[devices.HA1.replicas]]
host = "SWS-Store1"
target = "iqn.2008-08.com.starwindsoftware:sws-store1-ha1"
priority = 1

[[devices.HA1.replicas]]
host = "SWS-Store2"
target = "iqn.2008-08.com.starwindsoftware:sws-store2-ha1partner"
priority = 2
"""  # noqa: E501

BLOCK = 512
SERVING, STOPPED = "Synchronized", "Not synchronized"


@pytest.fixture(scope="module")
def witness_inventory(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    path = tmp_path_factory.mktemp("witness-inventory") / "witness-lab.toml"
    path.write_text(INVENTORY, encoding="utf-8")
    return load(path)


@pytest.fixture(scope="module")
def witness_lab(
    tmp_path_factory: pytest.TempPathFactory, witness_inventory: Inventory
) -> Iterator[SystemUnderTest]:
    lab = LoopbackLab(tmp_path_factory.mktemp("witness-lab") / "state")
    lab.up(witness_inventory)
    try:
        yield SystemUnderTest(witness_inventory, lab)
    finally:
        lab.down()


def loopback(sut: SystemUnderTest) -> LoopbackLab:
    assert isinstance(sut.lab, LoopbackLab)
    return sut.lab


def replica(sut: SystemUnderTest, host: str) -> SutReplica:
    return next(r for r in sut.device("HA1").replicas if r.host == host)


async def write(sut: SystemUnderTest, host: str, lba: int, data: bytes) -> None:
    r = replica(sut, host)
    async with Session(r.portals[0].address, r.portals[0].port, r.target) as s:
        await s.write(lba, data)


async def read(sut: SystemUnderTest, host: str, lba: int, blocks: int) -> bytes:
    r = replica(sut, host)
    async with Session(r.portals[0].address, r.portals[0].port, r.target) as s:
        return await s.read(lba, blocks)


def refuses_io(sut: SystemUnderTest, host: str) -> bool:
    """The replica answers NOT READY to a read, as a replica that stopped serving does."""
    try:
        asyncio.run(read(sut, host, 0, 1))
    except CheckCondition as exc:
        return exc.sense is not None and exc.sense.key == SenseKey.NOT_READY
    return False


def split_states(sut: SystemUnderTest) -> dict[str, str]:
    """The replicas' states once one serves and the other has stopped."""
    lab = loopback(sut)
    settled = wait_until(lambda: sorted(lab.ha_states()["HA1"].values()) == [STOPPED, SERVING], 30)
    assert settled, lab.ha_states()
    return lab.ha_states()["HA1"]


def image_digests(sut: SystemUnderTest) -> set[str]:
    root = loopback(sut).state.root / "nodes"
    images = [root / "SWS-Store1" / "data" / "HA1.img",
              root / "SWS-Store2" / "data" / "HA1Partner.img"]
    return {hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in images}


def test_the_witness_runs_as_a_lab_process_reached_through_one_link_per_node(
    witness_lab: SystemUnderTest,
) -> None:
    lab = loopback(witness_lab)
    status = lab.status()
    assert status["nodes"]["SWS-Witness"]["role"] == "witness"
    assert status["nodes"]["SWS-Witness"]["state"] == "running"
    witness_links = {n: link for n, link in lab.record().links.items()
                     if link.purpose == "witness"}
    assert sorted(witness_links) == ["public/SWS-Witness/SWS-Store1",
                                     "public/SWS-Witness/SWS-Store2"]
    config = (lab.state.node_dir("SWS-Store2") / "node.toml").read_text()
    port = witness_links["public/SWS-Witness/SWS-Store2"].listen[1]
    assert f'witness = "127.12.0.30:{port}"' in config
    assert lab.ha_states() == {"HA1": {"SWS-Store1": SERVING, "SWS-Store2": SERVING}}


def test_sync_and_heartbeat_cut_leave_exactly_one_replica_serving_and_heal_resyncs(
    witness_lab: SystemUnderTest,
) -> None:
    faults, lab = witness_lab.faults, loopback(witness_lab)
    written = bytes(range(256)) * 2 * 8
    with faults.cut("sync"), faults.cut("heartbeat"):
        states = split_states(witness_lab)
        winner = next(h for h, s in states.items() if s == SERVING)
        loser = next(h for h, s in states.items() if s == STOPPED)
        asyncio.run(write(witness_lab, winner, 64, written))  # the survivor serves alone
        assert refuses_io(witness_lab, loser)                 # the other does not
        grants = lab.state.node_dir("SWS-Witness") / "witness-grants.json"
        assert winner in json.loads(grants.read_text()).values()  # the witness's vote
        assert loser not in json.loads(grants.read_text()).values()
    lab.wait_synchronized(["HA1"], deadline_s=60)
    assert asyncio.run(read(witness_lab, loser, 64, 8)) == written
    assert len(image_digests(witness_lab)) == 1


def test_the_witness_decides_against_priority_when_it_can_only_hear_the_partner(
    witness_lab: SystemUnderTest,
) -> None:
    """Priority 1 cut off from the witness loses: with the heartbeat strategy it
    would have won, so this is the witness's vote and nothing else."""
    faults, lab = witness_lab.faults, loopback(witness_lab)
    with faults.cut("public/SWS-Witness/SWS-Store1"), faults.cut("sync"), \
            faults.cut("heartbeat"):
        assert split_states(witness_lab) == {"SWS-Store1": STOPPED, "SWS-Store2": SERVING}
        assert refuses_io(witness_lab, "SWS-Store1")
        asyncio.run(write(witness_lab, "SWS-Store2", 200, b"\x5a" * BLOCK))
    lab.wait_synchronized(["HA1"], deadline_s=60)
    assert asyncio.run(read(witness_lab, "SWS-Store1", 200, 1)) == b"\x5a" * BLOCK
    assert len(image_digests(witness_lab)) == 1


def test_without_a_majority_both_replicas_stop_until_one_is_marked(
    witness_lab: SystemUnderTest,
) -> None:
    """Witness down and partner unreachable: no node has a majority, so neither serves
    (no split brain); the administrator's mark picks the source and heal resyncs."""
    from harness.target.management import ManagementClient

    faults, lab = witness_lab.faults, loopback(witness_lab)
    with faults.kill("SWS-Witness"), faults.cut("sync"), faults.cut("heartbeat"):
        assert wait_until(
            lambda: set(lab.ha_states()["HA1"].values()) == {STOPPED}, 30
        ), lab.ha_states()
        assert refuses_io(witness_lab, "SWS-Store1")
        assert refuses_io(witness_lab, "SWS-Store2")
        store2 = ManagementClient(lab.management_url("SWS-Store2"), lab.token())
        assert store2.request("POST", "/v1/ha/HA1/mark-synchronized")["state"] == SERVING
        asyncio.run(write(witness_lab, "SWS-Store2", 300, b"\xa5" * BLOCK))
    assert lab.status()["nodes"]["SWS-Witness"]["state"] == "running"  # restarted by heal
    lab.wait_synchronized(["HA1"], deadline_s=60)
    assert asyncio.run(read(witness_lab, "SWS-Store1", 300, 1)) == b"\xa5" * BLOCK
    assert len(image_digests(witness_lab)) == 1


def test_lab_down_stops_the_witness(tmp_path: Path, witness_inventory: Inventory) -> None:
    from harness.lab.node_process import process_start_ticks

    lab = LoopbackLab(tmp_path / "state")
    record = lab.up(witness_inventory)
    witness = record.nodes["SWS-Witness"]
    try:
        assert witness.alive
    finally:
        stopped = lab.down()
    assert any(s.startswith("SWS-Witness ") for s in stopped)
    assert process_start_ticks(witness.pid or 0) != witness.start_ticks
    assert not (tmp_path / "state").exists()


def test_witness_network_avoids_the_links_it_arbitrates(witness_inventory: Inventory) -> None:
    pairs = plan_pairs(witness_inventory, lambda address, n: 20000 + n, witnesses=True)
    assert pairs[0].witness == "SWS-Witness"
    plans = plan_witnesses(witness_inventory, pairs, lambda address: 21000)
    plan = plans["SWS-Witness"]
    assert (plan.network, plan.address, plan.port) == ("public", "127.12.0.30", 21000)
    assert plan.clients == ("SWS-Store1", "SWS-Store2")


def test_a_backend_without_witness_processes_refuses_node_majority(
    witness_inventory: Inventory,
) -> None:
    with pytest.raises(HaWiringError, match=r"node-majority.*no witness process"):
        plan_pairs(witness_inventory, lambda address, n: 20000 + n)
