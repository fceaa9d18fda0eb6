"""``harness.faults.disk`` against the real reference target in a loopback lab.

The lab's HA device has a replica on each storage node; a disk fault breaks the
local disk of one replica only (the fault sits between the HA mirror and its
image file), is journaled before it is applied, and heals on scope exit or from
the journal after the process that injected it was killed. The replica whose disk
fails a read leaves the device (docs/ha.md, "A disk failure") and answers NOT READY
/ unavailable, which MPIO re-drives on the partner; the partner still serves the
block, and after the heal a resync brings the replica back with the data. (The
medium error of the fault itself, range by range, is proven on a plain LUN in
test_node_disk_faults.py.)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.sut import SystemUnderTest
from harness.faults.disk import DiskFault
from harness.faults.fault import FaultError
from harness.faults.guard import heal_journal
from harness.faults.lab_faults import LabFaults
from harness.initiator.errors import CheckCondition
from harness.initiator.session import Session
from harness.lab.inventory import Inventory, load
from harness.lab.loopback import LoopbackLab
from harness.scsi.sense import Asc, SenseKey
from harness.target.management import ManagementClient

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

INVENTORY = Path(__file__).with_name("disk-lab.toml")

BLOCK = 512
STORE1_IQN = "iqn.2008-08.com.starwindsoftware:sws-store1-ha1"
DATA = b"".join(bytes([n]) * BLOCK for n in range(32))


@pytest.fixture(scope="module")
def disk_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemUnderTest]:
    inventory: Inventory = load(INVENTORY)
    lab = LoopbackLab(tmp_path_factory.mktemp("disk-lab") / "state")
    lab.up(inventory)
    try:
        sut = SystemUnderTest(inventory, lab)
        asyncio.run(io(sut, "SWS-Store1", lambda s: s.write(0, DATA)))
        yield sut
    finally:
        lab.down()


def state_dir(sut: SystemUnderTest) -> Path:
    assert isinstance(sut.lab, LoopbackLab)
    return sut.lab.state.root


async def io(sut: SystemUnderTest, host: str, op):  # type: ignore[no-untyped-def]
    replica = next(r for r in sut.device("HA1").replicas if r.host == host)
    portal = replica.portals[0]
    async with Session(portal.address, portal.port, replica.target) as session:
        return await op(session)


def read_sense(sut: SystemUnderTest, host: str, lba: int) -> tuple[SenseKey, str] | bytes:
    """The block, or (sense key, additional sense name) when the read is refused."""
    try:
        return asyncio.run(io(sut, host, lambda s: s.read(lba, 1)))
    except CheckCondition as exc:
        assert exc.sense is not None
        return exc.sense.key, exc.sense.additional.name


#: what a replica that left the device after its disk failed answers (MPIO re-drives it)
DETACHED = (SenseKey.NOT_READY, Asc.NOT_READY_TARGET_PORT_UNAVAILABLE.name)


def replica_state(sut: SystemUnderTest, host: str) -> str:
    assert isinstance(sut.lab, LoopbackLab)
    return sut.lab.ha_states()["HA1"][host]


def resynchronized(sut: SystemUnderTest) -> None:
    assert isinstance(sut.lab, LoopbackLab)
    sut.lab.wait_synchronized(["HA1"], deadline_s=60)


def node_faults(sut: SystemUnderTest, host: str) -> list[str]:
    assert isinstance(sut.lab, LoopbackLab)
    client = ManagementClient(sut.lab.management_url(host), sut.lab.token())
    return [f["id"] for f in client.request("GET", "/v1/faults/disk")]


def test_eio_breaks_one_replicas_disk_only_and_heals_on_scope_exit(
    disk_lab: SystemUnderTest,
) -> None:
    faults = LabFaults(state_dir(disk_lab))
    with faults.disk("SWS-Store1", STORE1_IQN, 0, "eio", lba=8, count=4) as fault:
        assert node_faults(disk_lab, "SWS-Store1") == [fault.id]
        assert [f.id for f in faults.journal.open_faults()] == [fault.id]
        assert read_sense(disk_lab, "SWS-Store1", 12) == DATA[12 * BLOCK : 13 * BLOCK]
        assert read_sense(disk_lab, "SWS-Store1", 11) == DETACHED  # in the range: it left
        assert replica_state(disk_lab, "SWS-Store1") == "Not synchronized"
        assert read_sense(disk_lab, "SWS-Store1", 12) == DETACHED  # out: serves nothing
        assert read_sense(disk_lab, "SWS-Store2", 11) == DATA[11 * BLOCK : 12 * BLOCK]  # partner
    assert node_faults(disk_lab, "SWS-Store1") == []
    assert faults.journal.open_faults() == []
    resynchronized(disk_lab)
    assert read_sense(disk_lab, "SWS-Store1", 8) == DATA[8 * BLOCK : 9 * BLOCK]


def test_a_disk_fault_left_by_a_killed_harness_heals_from_the_journal(
    disk_lab: SystemUnderTest,
) -> None:
    root = state_dir(disk_lab)
    script = textwrap.dedent(f"""
        import os, signal
        from harness.faults.lab_faults import LabFaults
        fault = LabFaults({str(root)!r}).disk({"SWS-Store1"!r}, {STORE1_IQN!r}, 0, "eio",
                                              lba=20, count=1)
        fault.inject()
        os.kill(os.getpid(), signal.SIGKILL)  # the harness dies with the fault in place
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == -9, done.stderr.decode()
    assert len(node_faults(disk_lab, "SWS-Store1")) == 1
    assert read_sense(disk_lab, "SWS-Store1", 20) == DETACHED
    outcomes = heal_journal(LabFaults(root).journal)
    assert [o.healed for o in outcomes] == [True]
    assert node_faults(disk_lab, "SWS-Store1") == []
    resynchronized(disk_lab)
    assert read_sense(disk_lab, "SWS-Store1", 20) == DATA[20 * BLOCK : 21 * BLOCK]


def test_a_node_that_restarted_holds_no_fault_so_heal_succeeds(disk_lab: SystemUnderTest) -> None:
    faults = LabFaults(state_dir(disk_lab))
    fault = faults.disk("SWS-Store2", disk_lab.device("HA1").replicas[1].target, 0, "slow",
                        delay_ms=50.0).inject()
    assert node_faults(disk_lab, "SWS-Store2") == [fault.id]
    with faults.restart("SWS-Store2"):
        pass  # a restart clears the node's disk faults
    assert node_faults(disk_lab, "SWS-Store2") == []
    fault.heal()  # the node answers 404: already healed
    assert faults.journal.open_faults() == []
    assert isinstance(disk_lab.lab, LoopbackLab)
    disk_lab.lab.wait_synchronized(["HA1"], deadline_s=60)


def test_a_fault_the_node_refuses_is_reported_and_left_healed(disk_lab: SystemUnderTest) -> None:
    faults = LabFaults(state_dir(disk_lab))
    with pytest.raises(FaultError, match="refused disk fault"):
        DiskFault("SWS-Store1", STORE1_IQN, 5, "eio", state_dir=str(state_dir(disk_lab)),
                  lba=0, count=1, journal=faults.journal).inject()
    assert faults.journal.open_faults() == []
    assert node_faults(disk_lab, "SWS-Store1") == []
