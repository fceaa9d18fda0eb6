"""Nightly 42, case 1, on two real node processes: no administrator needed.

store1 (the primary) is killed; store2 carries on alone and acknowledges a write;
store1 returns and store2 starts its resync; store2's disk then fails a mirrored
write (EIO, the node's own disk-fault layer): store2 detaches and answers MEDIUM
ERROR (store1 is only Synchronizing: there is no other copy to re-drive on), and
store1's resync is cut short. Both replicas are Not synchronized. The disk heals.

Before the fix they stayed so ("neither replica is synchronized: mark one as
synchronized"), and the nightly's administrator marked store1, the outdated side,
throwing away store2's acknowledged writes. Now store2 (a complete image whose
generation descends from store1's) is the source: both end Synchronized, with
identical images holding every acknowledged write, read back through both nodes.
The in-process version (and case 2) is ``test_lineage.py``.
"""

from __future__ import annotations

import pytest

from harness.errors import SplitbrainError
from harness.initiator.errors import CheckCondition
from harness.scsi.sense import SenseKey
from tests.integration.ha.test_nodes import HaNodes, blocks, ha_nodes, run  # noqa: F401

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

REGION = 2048  # blocks of 512 in the node's 1 MiB dirty-map region
FAILING_LBA = 10 * REGION  # a block in a region no resync copies here


def test_the_survivor_whose_disk_failed_is_the_source_after_the_heal(ha_nodes: HaNodes):  # noqa: F811
    nodes = ha_nodes
    nodes.write("store1", 10, blocks(1))
    nodes.store1.kill9()
    nodes.wait_alone("store2")
    nodes.write("store2", 20, blocks(2))  # acknowledged by store2 alone
    # the resync's copy of region 0 waits on store2's slow disk, so store1 stays
    # Synchronizing while a client write hits store2's failing block
    with nodes.disk_fault("store2", kind="slow", delay_ms=60_000, lba=0, count=REGION), \
            nodes.disk_fault("store2", kind="eio", lba=FAILING_LBA, count=1):
        nodes.store1.restart()
        nodes.wait_states("Synchronizing", "Synchronized")

        async def failing_write() -> None:
            async with nodes.session("store2") as s:
                with pytest.raises(CheckCondition) as failed:
                    await s.write(FAILING_LBA, blocks(3))
                assert failed.value.sense is not None
                assert failed.value.sense.key == SenseKey.MEDIUM_ERROR  # not acknowledged
        run(failing_write())
        nodes.wait_states("Not synchronized", "Not synchronized")
        assert not nodes.ha("store1")["alone"] and nodes.ha("store2")["alone"]
        # what the nightly's administrator did: mark the outdated store1. Refused now
        with pytest.raises(SplitbrainError, match="store2 holds newer data"):
            nodes.store1.management.request("POST", "/v1/ha/HA1/mark-synchronized")
    # the disk healed: no administrator, the device picks store2 by its generation
    nodes.in_sync()
    for name in ("store1", "store2"):
        assert nodes.read(name, [10, 20]) == {10: blocks(1), 20: blocks(2)}, name
    assert nodes.images_equal()
    events = " | ".join((*nodes.ha("store1")["events"], *nodes.ha("store2")["events"]))
    assert "marked synchronized" not in events
    assert not nodes.ha("store1")["needs_administrator"]
    assert "neither replica is synchronized; store2 is the newest complete one" in events
