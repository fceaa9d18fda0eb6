"""The SCSI questions a multipath device asks each path before it trusts it.

Which disk is behind this path (VPD 0x83 logical-unit designators), which
target port group the path's port is in and what ALUA access state that group
has (standard INQUIRY TPGS, VPD 0x83 target-port-group designator, REPORT
TARGET PORT GROUPS), how big the disk is (READ CAPACITY 16), and whether the
logical unit is ready (TEST UNIT READY). Each asks over one
:class:`~harness.initiator.mpio.link.PathLink`; a non-GOOD answer to a question
every disk must answer is raised as :class:`~harness.initiator.mpio.link.PathLost`
so the path is not used.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.initiator.mpio.link import PathLink, PathLost, ScsiOutcome
from harness.initiator.mpio.redrive import classify
from harness.initiator.mpio.status import AluaState
from harness.scsi.alua import RtpgData
from harness.scsi.capacity import ReadCapacity16Data
from harness.scsi.cdb import Inquiry, ReadCapacity16, ReportTargetPortGroups, TestUnitReady
from harness.scsi.errors import ScsiDataError
from harness.scsi.inquiry import StandardInquiry
from harness.scsi.sense import SenseKey
from harness.scsi.vpd import Association, DesignatorType, DeviceIdentification, VpdPage

_TYPE_PREFIX = {
    DesignatorType.NAA: "naa",
    DesignatorType.EUI64: "eui",
    DesignatorType.T10_VENDOR_ID: "t10",
    DesignatorType.SCSI_NAME_STRING: "name",
}


@dataclass(frozen=True)
class PathIdentity:
    """Who answers on a path: the disk's designators and the port's group."""

    designators: tuple[str, ...]
    alua_supported: bool = False
    port_group: int | None = None
    relative_port: int | None = None


def _describe(outcome: ScsiOutcome) -> str:
    return f"status 0x{outcome.status:02x}{f' ({outcome.sense})' if outcome.sense else ''}"


UNIT_ATTENTION_RETRIES = 4
"""A new I_T nexus may have several unit attentions queued (power on, ALUA, PR)."""


async def _ask(link: PathLink, cdb: bytes, expected_in: int, what: str) -> bytes:
    """One question; unit attentions are consumed and the question asked again."""
    for _ in range(UNIT_ATTENTION_RETRIES + 1):
        outcome = await link.execute(cdb, expected_in=expected_in)
        if outcome.good:
            return outcome.data
        if outcome.sense is None or outcome.sense.key != SenseKey.UNIT_ATTENTION:
            break
    raise PathLost(f"{what} answered {_describe(outcome)}")


async def identify(link: PathLink) -> PathIdentity:
    """Read standard INQUIRY and VPD 0x83 on a path."""
    std_raw = await _ask(link, Inquiry(allocation_length=96).encode(), 96, "INQUIRY")
    vpd_raw = await _ask(
        link,
        Inquiry(evpd=True, page_code=VpdPage.DEVICE_IDENTIFICATION,
                allocation_length=1024).encode(),
        1024,
        "INQUIRY VPD 0x83",
    )
    try:
        std = StandardInquiry.decode(std_raw)
        page = DeviceIdentification.decode(vpd_raw)
    except ScsiDataError as exc:
        raise PathLost(f"malformed identity data: {exc}") from exc
    designators = tuple(
        sorted(
            f"{_TYPE_PREFIX.get(d.designator_type, f'type{d.designator_type}')}.{d.text}"
            for d in page.logical_unit_ids()
        )
    )
    group = page.find(DesignatorType.TARGET_PORT_GROUP, Association.TARGET_PORT)
    port = page.find(DesignatorType.RELATIVE_TARGET_PORT, Association.TARGET_PORT)
    return PathIdentity(
        designators=designators,
        alua_supported=bool(std.tpgs),
        port_group=group.number if group else None,
        relative_port=port.number if port else None,
    )


async def port_group_states(link: PathLink) -> dict[int, AluaState]:
    """REPORT TARGET PORT GROUPS: the access state of every group, by group id."""
    raw = await _ask(link, ReportTargetPortGroups(allocation_length=4096).encode(), 4096,
                     "REPORT TARGET PORT GROUPS")
    try:
        data = RtpgData.decode(raw)
    except (ScsiDataError, ValueError) as exc:
        raise PathLost(f"malformed REPORT TARGET PORT GROUPS data: {exc}") from exc
    return {g.group_id: AluaState(int(g.state)) for g in data.groups}


async def capacity(link: PathLink) -> tuple[int, int]:
    """(block size, number of blocks) from READ CAPACITY 16."""
    raw = await _ask(link, ReadCapacity16(allocation_length=32).encode(), 32,
                     "READ CAPACITY(16)")
    try:
        data = ReadCapacity16Data.decode(raw)
    except ScsiDataError as exc:
        raise PathLost(f"malformed READ CAPACITY(16) data: {exc}") from exc
    return data.block_length, data.num_blocks


async def ready(link: PathLink) -> AluaState | None:
    """TEST UNIT READY until GOOD; unit attentions are consumed.

    A NOT READY that names the port's ALUA state (transitioning, standby,
    unavailable) is not a broken path: the port is there and says why it serves
    no I/O now, so that state is returned and the path comes up carrying it (the
    device then polls the port until it is active, as scsi_dh_alua does). Any
    other NOT READY, or another error, fails the path. None: the unit is ready.
    """
    cdb = TestUnitReady().encode()
    for _ in range(UNIT_ATTENTION_RETRIES + 1):
        outcome = await link.execute(cdb)
        if outcome.good:
            return None
        port_state = classify(outcome).alua
        if port_state is not None:
            return port_state
        if outcome.sense is None or outcome.sense.key != SenseKey.UNIT_ATTENTION:
            break
    raise PathLost(f"TEST UNIT READY answered {_describe(outcome)}")
