"""A disk fault on one replica of an HA device: what the mirror must still promise.

Whatever the mirror does when one replica's disk refuses a write (fail the write,
or complete it from the partner and take the broken replica out of service),
two promises hold: the write completes (GOOD or CHECK CONDITION, never a hang),
and replicas that both call themselves Synchronized hold the same data.

The reference mirror keeps both by taking the replica whose disk failed out of
the device (Not synchronized, GOODBYE to the partner, which carries on alone);
see docs/ha.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.sut import SystemUnderTest
from harness.faults.lab_faults import LabFaults
from harness.initiator.errors import CheckCondition, Timeout
from harness.initiator.session import Session, SessionTimeouts
from harness.lab.inventory import load
from harness.lab.loopback import LoopbackLab

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

INVENTORY = Path(__file__).with_name("disk-lab.toml")
BLOCK = 512
LBA = 40
NEW = b"\x77" * BLOCK


@pytest.fixture
def ha_lab(tmp_path: Path) -> Iterator[SystemUnderTest]:
    inventory = load(INVENTORY)
    lab = LoopbackLab(tmp_path / "state")
    lab.up(inventory)
    try:
        yield SystemUnderTest(inventory, lab)
    finally:
        for node in lab.record().nodes.values():
            node.kill()  # a node with a write that never completes cannot stop gracefully
        lab.down()


async def io(sut: SystemUnderTest, host: str, op: Any) -> Any:
    replica = next(r for r in sut.device("HA1").replicas if r.host == host)
    portal = replica.portals[0]
    timeouts = SessionTimeouts(command=5.0)
    async with Session(portal.address, portal.port, replica.target,
                       timeouts=timeouts) as session:
        return await op(session)


def target_of(sut: SystemUnderTest, host: str) -> str:
    return next(r.target for r in sut.device("HA1").replicas if r.host == host)


def write_outcome(sut: SystemUnderTest, via: str) -> str:
    try:
        asyncio.run(io(sut, via, lambda s: s.write(LBA, NEW)))
    except CheckCondition:
        return "check condition"
    except Timeout:
        return "hung"
    return "good"


def diverged_while_synchronized(sut: SystemUnderTest) -> bool:
    assert isinstance(sut.lab, LoopbackLab)
    states = sut.lab.ha_states()["HA1"]
    blocks = {h: asyncio.run(io(sut, h, lambda s: s.read(LBA, 1)))
              for h, state in states.items() if state == "Synchronized"}
    return len(set(blocks.values())) > 1


def test_a_write_error_on_the_sequencer_leaves_no_divergent_synchronized_replicas(
    ha_lab: SystemUnderTest,
) -> None:
    faults = LabFaults(ha_lab.lab.state.root)  # type: ignore[union-attr]
    with faults.disk("SWS-Store1", target_of(ha_lab, "SWS-Store1"), 0, "eio", lba=LBA, count=1):
        assert write_outcome(ha_lab, "SWS-Store1") in ("good", "check condition")
    assert not diverged_while_synchronized(ha_lab)


def test_a_write_error_on_the_partner_completes_the_write(ha_lab: SystemUnderTest) -> None:
    faults = LabFaults(ha_lab.lab.state.root)  # type: ignore[union-attr]
    with faults.disk("SWS-Store2", target_of(ha_lab, "SWS-Store2"), 0, "eio", lba=LBA, count=1):
        assert write_outcome(ha_lab, "SWS-Store1") in ("good", "check condition")
    assert not diverged_while_synchronized(ha_lab)
