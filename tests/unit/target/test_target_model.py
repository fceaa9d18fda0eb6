"""Pure pieces of the LU model: ALUA rules, mode pages, identity, opcode support, nexuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.scsi import cdb as c
from harness.scsi.alua import AccessState, SupportedStates
from harness.scsi.mode import CachingPage, ControlPage, ModeParameters, RawModePage
from harness.scsi.reservations import PrOutAction, PrOutParameters, PrType
from harness.scsi.sense import Asc, SenseData, SenseKey
from harness.scsi.status import ScsiStatus
from harness.scsi.vpd import Designator
from harness.target import device as device_module
from harness.target import opcode_support
from harness.target.alua import AluaError, AluaGroups, TargetPortGroup, refusal
from harness.target.blockstore import ImageFile
from harness.target.device import LogicalUnit, ScsiTask
from harness.target.identity import LuIdentity
from harness.target.modepages import ModePages
from harness.target.nexus import ItNexus, initiator_port_name, target_port_name
from harness.target.reservations import AptplFile, PersistentReservations


@pytest.mark.parametrize(("state", "allowed", "refused", "code"), [
    (AccessState.ACTIVE_NON_OPTIMIZED, [c.Write(blocks=1), c.TestUnitReady()], [], None),
    (AccessState.STANDBY,
     [c.Inquiry(), c.ReportLuns(), c.RequestSense(), c.ReportTargetPortGroups(),
      c.PersistentReserveIn(), c.PersistentReserveOut(), c.ModeSense(), c.ReadCapacity16(),
      c.SetTargetPortGroups()],
     [c.TestUnitReady(), c.Read(blocks=1), c.Write(blocks=1), c.SynchronizeCache()],
     Asc.NOT_READY_TARGET_PORT_STANDBY),
    (AccessState.UNAVAILABLE,
     [c.Inquiry(), c.ReportLuns(), c.ReportTargetPortGroups(), c.ReportSupportedOpcodes()],
     [c.PersistentReserveIn(), c.ReadCapacity10(), c.Read(blocks=1), c.ModeSense()],
     Asc.NOT_READY_TARGET_PORT_UNAVAILABLE),
    (AccessState.TRANSITIONING,
     [c.Inquiry(), c.ReportTargetPortGroups(), c.RequestSense()],
     [c.SetTargetPortGroups(), c.TestUnitReady(), c.PersistentReserveOut()],
     Asc.NOT_READY_ASYMMETRIC_ACCESS_TRANSITION),
])
def test_what_each_access_state_allows(state: AccessState, allowed: list[c.Command],
                                       refused: list[c.Command], code: object) -> None:
    for cmd in allowed:
        assert refusal(state, cmd.encode()) is None, cmd
    for cmd in refused:
        sense = refusal(state, cmd.encode())
        assert sense is not None and sense.key == SenseKey.NOT_READY and sense.is_(code), cmd


def test_alua_groups() -> None:
    groups = AluaGroups({1: TargetPortGroup(1, relative_ports={1})}, auto_groups=False)
    groups.admit_port(2, 5)
    assert groups.state_of(2) == AccessState.UNAVAILABLE  # unconfigured stays unavailable
    with pytest.raises(AluaError, match="not configured"):
        groups.set_state(2, AccessState.STANDBY)
    assert groups.set_state(1, AccessState.STANDBY) and not groups.set_state(
        1, AccessState.STANDBY)
    with pytest.raises(AluaError, match="not supported"):
        groups.set_state(1, AccessState.LBA_DEPENDENT)
    auto = AluaGroups.single()
    auto.admit_port(3, 7)
    auto.admit_port(3, 8)
    assert auto.state_of(3) == AccessState.ACTIVE_OPTIMIZED
    assert auto.rtpg().groups[0].relative_ports == (7, 8)
    assert AluaGroups(supported=SupportedStates(standby=False)).tpgs == 3


def test_mode_pages_select_is_all_or_nothing() -> None:
    pages = ModePages()
    assert not pages.write_back and not pages.d_sense
    ok = ModeParameters(pages=(CachingPage(wce=True), ControlPage(d_sense=True)))
    assert pages.select(ok, header_length=4, block_descriptor_length=0) is None
    assert pages.write_back and pages.d_sense
    bad = ModeParameters(pages=(CachingPage(wce=False), ControlPage(d_sense=True, tst=1)))
    sense = pages.select(bad, header_length=4, block_descriptor_length=0)
    assert sense is not None and sense.field_pointer.byte == 4 + 20 + 2
    assert pages.write_back  # the valid first page was not applied either
    unknown = ModeParameters(pages=(RawModePage(0x1C, bytes(10)),))
    assert pages.select(unknown, header_length=8,
                        block_descriptor_length=8).field_pointer.byte == 16
    pages.reset()
    assert not pages.write_back
    assert pages.sense(0x3F, 0xFF, 0) == (pages.current[0x08], pages.current[0x0A])
    assert isinstance(pages.sense(0x01, 0, 0), SenseData)


def test_identity_derivation_is_stable_and_validated() -> None:
    a, b = LuIdentity.derive("ha1/lun0"), LuIdentity.derive("ha1/lun0")
    assert a == b and a != LuIdentity.derive("ha1/lun1")
    assert a.naa_designator.value[0] >> 4 == 6 and len(a.naa) == 32
    assert LuIdentity.derive("x", serial="SER1").serial == "SER1"
    assert LuIdentity(serial="SB1", naa="3" + "0" * 15).naa_designator == \
        Designator.naa_from_hex("3" + "0" * 15)
    with pytest.raises(Exception, match="printable"):
        LuIdentity(serial="bad\n", naa=a.naa)
    with pytest.raises(Exception, match="NAA"):
        LuIdentity(serial="ok", naa="1234")


def test_opcode_support_covers_every_parsed_command() -> None:
    table = opcode_support.supported()
    for opcode, _sa, _, size in c.known_commands():
        keys = [k for k in table if k[0] == opcode]
        assert keys, hex(opcode)
        for key in keys:
            descriptor, usage = table[key]
            assert descriptor.cdb_length == size == len(usage) and usage[0] == opcode
    assert opcode_support.has_service_actions(0x5E) and not opcode_support.has_service_actions(
        0x28)


def test_port_names() -> None:
    assert initiator_port_name("iqn.x", 0x400000000001) == "iqn.x,i,0x400000000001"
    assert target_port_name("iqn.t", 2) == "iqn.t,t,0x0002"
    n = ItNexus("IQN.X,i,0x400000000001", "iqn.t,t,0x0002", 2, 2)
    assert n == ItNexus("iqn.x,i,0x400000000001", "iqn.t,t,0x0002")
    assert (n.initiator_name, n.target_name) == ("IQN.X", "iqn.t")


async def test_lost_nexuses_are_forgotten_beyond_the_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "MAX_NEXUSES", 3)
    lu = LogicalUnit(ImageFile.open(tmp_path / "x.img", 1 << 20), LuIdentity.derive("x"))
    try:
        nexuses = [ItNexus(f"iqn.i,i,0x{i:012x}", "iqn.t,t,0x0001") for i in range(6)]
        for n in nexuses[:3]:
            await lu.execute(ScsiTask(n, 0, c.TestUnitReady().encode()))
        lu.nexus_lost(nexuses[0])
        await lu.execute(ScsiTask(nexuses[3], 0, c.TestUnitReady().encode()))
        assert nexuses[0] not in lu.nexuses and len(lu.nexuses) == 3
        # still-connected nexuses are never forgotten: nothing else is lost
        await lu.execute(ScsiTask(nexuses[4], 0, c.TestUnitReady().encode()))
        assert set(nexuses[1:5]) == set(lu.nexuses)
        lu.nexus_lost(nexuses[1])
        assert lu.pending_attentions(nexuses[1]) == (Asc.I_T_NEXUS_LOSS_OCCURRED,)
    finally:
        lu.close()


async def test_aptpl_reservations_survive_a_restart_of_the_lu(tmp_path: Path) -> None:
    nexus = ItNexus("iqn.i,i,0x400000000001", "iqn.t,t,0x0001")
    other = ItNexus("iqn.j,i,0x400000000001", "iqn.t,t,0x0001")

    def open_lu() -> LogicalUnit:
        return LogicalUnit(ImageFile.open(tmp_path / "x.img", 1 << 20),
                           LuIdentity.derive("x"), reservations=PersistentReservations(
                               aptpl_file=AptplFile(tmp_path / "x.pr")))

    ImageFile.open(tmp_path / "x.img", 1 << 20).close()
    lu = open_lu()
    steps = ((PrOutAction.REGISTER, PrOutParameters(0, 7, aptpl=True), 0),
             (PrOutAction.RESERVE, PrOutParameters(7), PrType.EXCLUSIVE_ACCESS))
    for action, params, pr_type in steps:
        raw = params.encode()
        await lu.execute(ScsiTask(nexus, 0, c.TestUnitReady().encode()))
        res = await lu.execute(ScsiTask(nexus, 0, c.PersistentReserveOut(
            action=action, pr_type=pr_type, parameter_list_length=len(raw)).encode(), raw))
        assert res.status == ScsiStatus.GOOD
    lu.close()
    restarted = open_lu()
    try:
        await restarted.execute(ScsiTask(other, 0, c.TestUnitReady().encode()))
        blocked = await restarted.execute(ScsiTask(other, 0, c.Read(lba=0, blocks=1).encode()))
        assert blocked.status == ScsiStatus.RESERVATION_CONFLICT
    finally:
        restarted.close()
