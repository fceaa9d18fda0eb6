"""A disk another cluster holds is never written or reserved, and its reservation survives.

An initiator of another cluster registers on HA2 and reserves it. The checks
that write or reserve leave HA2 alone and say so (they still test HA1); the
latency and replica-data checks only read HA2; afterwards the other cluster's
registration and reservation are exactly as it left them.
"""

from __future__ import annotations

import asyncio

import pytest

from harness.checks.results import ResultWord
from harness.initiator.session import Session
from harness.scsi.reservations import PrInAction, PrType
from harness.validation.runner import validate

pytestmark = pytest.mark.slow

OTHER = "iqn.1991-05.com.microsoft:other-cluster-node"
KEY = 0x0BADC0FFEE


async def _session(site, alias: str = "HA2") -> Session:
    replica, portal = site.devices[alias].paths[0]
    session = Session(portal.address, portal.port, replica.target, initiator_name=OTHER,
                      lun=site.devices[alias].lun)
    await session.login()
    return session


async def _hold(site, alias: str) -> None:
    session = await _session(site, alias)
    await session.test_unit_ready()  # (retried past the nexus's unit attention)
    await session.pr_register(KEY)
    await session.pr_reserve(KEY, PrType.WRITE_EXCLUSIVE)
    await session.logout()


def test_a_disk_in_use_is_left_alone(validation_lab):
    site = validation_lab()

    async def held() -> tuple[tuple[int, ...], int | None]:
        session = await _session(site)
        try:
            keys = await session.persistent_reserve_in(PrInAction.READ_KEYS)
            res = await session.persistent_reserve_in(PrInAction.READ_RESERVATION)
            return keys.keys, res.key
        finally:
            await session.logout()

    asyncio.run(_hold(site, "HA2"))
    report = validate(site, include=["Storage", "HA Storage"])
    r = {x.name: x for x in report.results}
    pr = r["Validate SCSI-3 Persistent Reservation"]
    assert pr.result is ResultWord.SUCCESS and pr.reason.startswith("1 disk(s)"), pr.reason
    assert "skipped" not in pr.reason
    assert "left alone: HA2 is in use" in pr.evidence[0].text
    latency = r["Validate Disk Access Latency"]
    assert latency.result is ResultWord.SUCCESS and "reads only on 1 disk(s)" in latency.reason
    reads_only = next(e.text for e in latency.evidence if e.title == "Reads only")
    assert reads_only.startswith("HA2: in use (1 persistent reservation registration(s) held)")
    data = r["Validate HA Replica Data"]
    assert data.result is ResultWord.SUCCESS
    assert "HA2: in use" in data.evidence[0].text
    assert "WRITE(16)" not in "\n".join(
        line for line in data.evidence[0].text.splitlines() if "/SWS-Store" in line
        and "HA2" in line)
    keys, holder = asyncio.run(held())
    assert KEY in keys and holder == KEY  # the other cluster's hold is untouched


def test_every_disk_held_by_a_cluster_leaves_nothing_to_test(validation_lab):
    site = validation_lab()
    asyncio.run(_hold(site, "HA1"))
    asyncio.run(_hold(site, "HA2"))
    listed = validate(site, include=["List Potential Cluster Disks"]).results[0]
    assert listed.result is ResultWord.WARNING, listed.reason
    assert listed.reason.startswith("every disk is in use (held by a cluster)")
    pr = validate(site, include=["Validate SCSI-3 Persistent Reservation"]).results[0]
    assert pr.result is ResultWord.NOT_APPLICABLE and "HA1 is in use" in pr.reason
