"""The initiator against the bundled reference target, for what tgtd 1.0.85 lacks:
COMPARE AND WRITE (tgtd answers INVALID COMMAND OPERATION CODE) and ALUA
(tgtd reports TPGS 0)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from harness.initiator.errors import CheckCondition
from harness.initiator.session import Session
from harness.scsi.sense import SenseKey


def run_on(target: Any, body: Any) -> Any:
    host, port = target.portals[0]

    async def scenario() -> Any:
        async with asyncio.timeout(30):
            async with Session(host, port, target.iqn, lun=target.lun) as session:
                return await body(session)

    return asyncio.run(scenario())


def test_compare_and_write_writes_on_match_and_reports_miscompare(reference_target) -> None:
    old, new = b"\x11" * 512, b"\x22" * 512

    async def body(s: Session) -> Any:
        await s.write(77, old)
        await s.compare_and_write(77, old, new)
        with pytest.raises(CheckCondition) as info:
            await s.compare_and_write(77, old, b"\x33" * 512)
        return await s.read(77, 1), info.value.sense

    data, sense = run_on(reference_target, body)
    assert data == new
    assert sense is not None and sense.key == SenseKey.MISCOMPARE


def test_alua_port_groups_are_reported(reference_target) -> None:
    async def body(s: Session) -> Any:
        return await s.inquiry(), await s.report_target_port_groups()

    std, rtpg = run_on(reference_target, body)
    assert std.tpgs != 0
    assert rtpg.groups and all(g.relative_ports for g in rtpg.groups)
