"""LogicalUnit: every command served with the right status, data and sense."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import SplitbrainError
from harness.scsi import cdb as c
from harness.scsi import vpd
from harness.scsi.alua import AccessState, RtpgData, SetTargetPortGroupsList
from harness.scsi.capacity import ReadCapacity10Data, ReadCapacity16Data
from harness.scsi.inquiry import StandardInquiry
from harness.scsi.mode import CachingPage, ControlPage, ModeParameters
from harness.scsi.opcodes import cdb_length
from harness.scsi.report_luns import ReportLunsData
from harness.scsi.reservations import (
    PrInAction,
    PrOutAction,
    PrOutParameters,
    PrType,
    ReadKeysData,
    ReadReservationData,
)
from harness.scsi.sense import Asc, SenseData, SenseKey
from harness.scsi.status import ScsiStatus
from harness.scsi.unmap import UnmapParameters
from harness.target.alua import AluaGroups, TargetPortGroup
from harness.target.blockstore import ImageFile
from harness.target.device import LogicalUnit, ScsiTask, TaskResult
from harness.target.identity import LuIdentity
from harness.target.nexus import ItNexus

BS = 512
BLOCKS = 2048
A = ItNexus("iqn.2026-01.lab:node-a,i,0x400000000001", "iqn.2026-01.lab:ha1,t,0x0001", 1, 1)
B = ItNexus("iqn.2026-01.lab:node-b,i,0x400000000001", "iqn.2026-01.lab:ha1,t,0x0002", 2, 2)
GOOD, CHECK, CONFLICT = ScsiStatus.GOOD, ScsiStatus.CHECK_CONDITION, ScsiStatus.RESERVATION_CONFLICT


@pytest.fixture
def lu(tmp_path: Path) -> Iterator[LogicalUnit]:
    store = ImageFile.open(tmp_path / "lun0.img", BLOCKS * BS, write_through=False)
    alua = AluaGroups({1: TargetPortGroup(1, relative_ports={1}),
                       2: TargetPortGroup(2, relative_ports={2})})
    unit = LogicalUnit(store, LuIdentity.derive("ha1/lun0"), alua=alua)
    try:
        yield unit
    finally:
        unit.close()


async def run(lu: LogicalUnit, cmd: c.Command, data: bytes = b"", nexus: ItNexus = A,
              ) -> TaskResult:
    if nexus.key not in {n.key for n in lu.nexuses}:  # consume the power-on UA
        first = await lu.execute(ScsiTask(nexus, 0, c.TestUnitReady().encode()))
        assert first.sense is not None and first.sense.is_(Asc.POWER_ON_RESET)
    return await lu.execute(ScsiTask(nexus, 0, cmd.encode(), data))


def sense_of(result: TaskResult) -> SenseData:
    assert result.status == CHECK and result.sense is not None
    return SenseData.decode(result.sense_bytes)


async def test_new_nexus_gets_power_on_ua_except_for_inquiry(lu: LogicalUnit) -> None:
    inq = await lu.execute(ScsiTask(A, 0, c.Inquiry().encode()))
    assert inq.status == GOOD
    tur = await lu.execute(ScsiTask(A, 0, c.TestUnitReady().encode()))
    assert sense_of(tur).key == SenseKey.UNIT_ATTENTION
    assert (await lu.execute(ScsiTask(A, 0, c.TestUnitReady().encode()))).status == GOOD


async def test_request_sense_reports_and_clears_ua(lu: LogicalUnit) -> None:
    res = await lu.execute(ScsiTask(A, 0, c.RequestSense(desc=True).encode()))
    sense = SenseData.decode(res.data_in)
    assert res.status == GOOD and res.data_in[0] == 0x72 and sense.is_(Asc.POWER_ON_RESET)
    again = await lu.execute(ScsiTask(A, 0, c.RequestSense(allocation_length=18).encode()))
    assert SenseData.decode(again.data_in).key == SenseKey.NO_SENSE and len(again.data_in) == 18


async def test_invalid_opcode_and_field_pointer(lu: LogicalUnit) -> None:
    assert sense_of(await run(lu, c.UnknownCommand(bytes.fromhex("c1" + "00" * 5)))).is_(
        Asc.INVALID_COMMAND_OPERATION_CODE)
    bad = sense_of(await run(lu, c.Read(lba=0, blocks=1, protect=1)))
    assert bad.is_(Asc.INVALID_FIELD_IN_CDB)
    assert (bad.field_pointer.in_cdb, bad.field_pointer.byte, bad.field_pointer.bit) == (True, 1, 7)
    naca = c.TestUnitReady().encode()[:-1] + b"\x04"
    assert sense_of(await lu.execute(ScsiTask(A, 0, naca))).is_(Asc.INVALID_FIELD_IN_CDB)


async def test_read_write_and_range(lu: LogicalUnit) -> None:
    data = os.urandom(4 * BS)
    assert (await run(lu, c.Write(lba=10, blocks=4, fua=True), data)).status == GOOD
    assert (await run(lu, c.Read(lba=10, blocks=4, size=16))).data_in == data
    assert (await run(lu, c.Read(lba=11, blocks=1, size=6))).data_in == data[BS : 2 * BS]
    assert sense_of(await run(lu, c.Read(lba=BLOCKS - 1, blocks=2))).is_(Asc.LBA_OUT_OF_RANGE)
    assert sense_of(await run(lu, c.Write(lba=BLOCKS, blocks=1), bytes(BS))).is_(
        Asc.LBA_OUT_OF_RANGE)
    assert (await run(lu, c.Read(lba=0, blocks=0))).data_in == b""


async def test_write_with_residual_underflow_writes_only_whole_blocks_received(
        lu: LogicalUnit) -> None:
    await run(lu, c.Write(lba=0, blocks=2), b"\xaa" * 2 * BS)
    assert (await run(lu, c.Write(lba=0, blocks=2), b"\xbb" * BS)).status == GOOD
    assert (await run(lu, c.Read(lba=0, blocks=2))).data_in == b"\xbb" * BS + b"\xaa" * BS


async def test_compare_and_write(lu: LogicalUnit) -> None:
    await run(lu, c.Write(lba=5, blocks=1), b"o" * BS)
    ok = await run(lu, c.CompareAndWrite(lba=5, blocks=1), b"o" * BS + b"n" * BS)
    assert ok.status == GOOD
    expected = bytearray(b"n" * BS)
    expected[100] = ord("x")
    miss = sense_of(await run(lu, c.CompareAndWrite(lba=5, blocks=1),
                              bytes(expected) + b"z" * BS))
    assert miss.key == SenseKey.MISCOMPARE and miss.information == 100
    assert (await run(lu, c.Read(lba=5, blocks=1))).data_in == b"n" * BS
    too_many = await run(lu, c.CompareAndWrite(lba=0, blocks=255), bytes(510 * BS))
    assert sense_of(too_many).field_pointer.byte == 13


async def test_compare_and_write_is_atomic_against_concurrent_writes(lu: LogicalUnit) -> None:
    await run(lu, c.Write(lba=0, blocks=1), bytes(BS))
    await run(lu, c.TestUnitReady(), nexus=B)
    # many CAWs flip the block 0 -> 1 -> 0 ... while plain writes hammer the same block
    async def caw(old: int, new: int) -> TaskResult:
        return await lu.execute(ScsiTask(A, 0, c.CompareAndWrite(lba=0, blocks=1).encode(),
                                         bytes([old]) * BS + bytes([new]) * BS))

    async def writer(value: int) -> TaskResult:
        return await lu.execute(ScsiTask(B, 0, c.Write(lba=0, blocks=1).encode(),
                                         bytes([value]) * BS))

    results = await asyncio.gather(*(caw(i, i + 1) for i in range(20)),
                                   *(writer(100 + i) for i in range(20)))
    assert all(r.status in (GOOD, CHECK) for r in results)
    block = (await run(lu, c.Read(lba=0, blocks=1))).data_in
    assert len(set(block)) == 1  # never a torn mix of two writes
    assert lu._gate.idle


async def test_verify(lu: LogicalUnit) -> None:
    await run(lu, c.Write(lba=20, blocks=2), b"v" * 2 * BS)
    assert (await run(lu, c.Verify(lba=20, blocks=2))).status == GOOD
    assert (await run(lu, c.Verify(lba=20, blocks=2, bytchk=1), b"v" * 2 * BS)).status == GOOD
    assert (await run(lu, c.Verify(lba=20, blocks=2, bytchk=3), b"v" * BS)).status == GOOD
    miss = sense_of(await run(lu, c.Verify(lba=20, blocks=2, bytchk=1),
                              b"v" * (BS + 7) + b"w" * (BS - 7)))
    assert miss.key == SenseKey.MISCOMPARE and miss.information == BS + 7
    assert sense_of(await run(lu, c.Verify(lba=20, blocks=1, bytchk=2))).is_(
        Asc.INVALID_FIELD_IN_CDB)


async def test_write_and_verify(lu: LogicalUnit) -> None:
    res = await run(lu, c.WriteAndVerify(lba=30, blocks=1, bytchk=1), b"w" * BS)
    assert res.status == GOOD
    assert (await run(lu, c.Read(lba=30, blocks=1))).data_in == b"w" * BS


async def test_write_same_and_unmap(lu: LogicalUnit) -> None:
    assert (await run(lu, c.WriteSame(lba=100, blocks=300), b"s" * BS)).status == GOOD
    assert (await run(lu, c.Read(lba=100, blocks=300))).data_in == b"s" * BS * 300
    assert (await run(lu, c.WriteSame(lba=100, blocks=100, unmap=True, size=16),
                      bytes(BS))).status == GOOD
    assert (await run(lu, c.Read(lba=100, blocks=100))).data_in == bytes(100 * BS)
    # UNMAP bit with non-zero data must write the data (unmapped blocks read as zeros)
    await run(lu, c.WriteSame(lba=100, blocks=2, unmap=True), b"t" * BS)
    assert (await run(lu, c.Read(lba=100, blocks=2))).data_in == b"t" * 2 * BS
    assert sense_of(await run(lu, c.WriteSame(lba=0, blocks=0), bytes(BS))).is_(
        Asc.INVALID_FIELD_IN_CDB)
    for wrong in (BS // 2, 2 * BS):  # the data-out buffer must be exactly one block
        assert sense_of(await run(lu, c.WriteSame(lba=0, blocks=1, unmap=True),
                                  bytes(wrong))).is_(Asc.INVALID_FIELD_IN_CDB)
    params = UnmapParameters(((200, 100), (300, 1))).encode()
    assert (await run(lu, c.Unmap(parameter_list_length=len(params)), params)).status == GOOD
    assert (await run(lu, c.Read(lba=200, blocks=101))).data_in == bytes(101 * BS)
    bad = UnmapParameters(((BLOCKS - 1, 2),)).encode()
    assert sense_of(await run(lu, c.Unmap(parameter_list_length=len(bad)), bad)).is_(
        Asc.LBA_OUT_OF_RANGE)
    assert sense_of(await run(lu, c.Unmap(parameter_list_length=4), bytes(4))).is_(
        Asc.PARAMETER_LIST_LENGTH_ERROR)


async def test_inquiry_vpd_and_identity(lu: LogicalUnit, tmp_path: Path) -> None:
    std = StandardInquiry.decode((await run(lu, c.Inquiry())).data_in)
    assert std.vendor == "SPLITBRN" and std.tpgs == 3 and std.version == 6
    assert std.multip  # two target port groups: reachable through several ports
    pages = vpd.SupportedPages.decode((await run(lu, c.Inquiry(evpd=True, page_code=0))).data_in)
    assert pages.pages == (0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2)
    for page in pages.pages:
        raw = (await run(lu, c.Inquiry(evpd=True, page_code=page))).data_in
        vpd.decode_vpd(raw)
    ident_a = vpd.DeviceIdentification.decode(
        (await run(lu, c.Inquiry(evpd=True, page_code=0x83))).data_in)
    ident_b = vpd.DeviceIdentification.decode(
        (await run(lu, c.Inquiry(evpd=True, page_code=0x83), nexus=B)).data_in)
    assert ident_a.logical_unit_ids() == ident_b.logical_unit_ids()
    assert ident_a.find(vpd.DesignatorType.NAA).value[0] >> 4 == 6
    assert ident_b.find(vpd.DesignatorType.RELATIVE_TARGET_PORT,
                        vpd.Association.TARGET_PORT).number == 2
    # a replica with the same identity presents the same LU designators
    other = LogicalUnit(ImageFile.open(tmp_path / "replica.img", BLOCKS * BS),
                        LuIdentity.derive("ha1/lun0"))
    try:
        replica = vpd.DeviceIdentification.decode(
            (await run(other, c.Inquiry(evpd=True, page_code=0x83))).data_in)
        assert replica.logical_unit_ids() == ident_a.logical_unit_ids()
    finally:
        other.close()
    assert len((await run(lu, c.Inquiry(allocation_length=36))).data_in) == 36
    assert sense_of(await run(lu, c.Inquiry(evpd=True, page_code=0x99))).is_(
        Asc.INVALID_FIELD_IN_CDB)


async def test_capacity_and_report_luns(lu: LogicalUnit) -> None:
    rc10 = ReadCapacity10Data.decode((await run(lu, c.ReadCapacity10())).data_in)
    assert (rc10.returned_lba, rc10.block_length) == (BLOCKS - 1, BS)
    rc16 = ReadCapacity16Data.decode((await run(lu, c.ReadCapacity16())).data_in)
    assert rc16.num_blocks == BLOCKS and rc16.lbpme
    assert ReportLunsData.decode((await run(lu, c.ReportLuns())).data_in).luns == (0,)
    assert sense_of(await run(lu, c.ReportLuns(allocation_length=8))).is_(
        Asc.INVALID_FIELD_IN_CDB)
    await run(lu, c.TestUnitReady(), nexus=B)
    await lu.resize(BLOCKS * 2)
    assert sense_of(await run(lu, c.ReadCapacity10())).is_(Asc.CAPACITY_DATA_HAS_CHANGED)
    assert sense_of(await run(lu, c.TestUnitReady(), nexus=B)).is_(
        Asc.CAPACITY_DATA_HAS_CHANGED)
    rc = ReadCapacity10Data.decode((await run(lu, c.ReadCapacity10())).data_in)
    assert rc.returned_lba == 2 * BLOCKS - 1


async def test_caching_mode_page_controls_write_through(lu: LogicalUnit) -> None:
    sensed = await run(lu, c.ModeSense(page_code=0x08))
    params = ModeParameters.decode(sensed.data_in, 6)
    assert params.page(0x08).wce is True and lu.store.write_through is False
    assert params.block_descriptors[0].num_blocks == BLOCKS
    select = ModeParameters(pages=(CachingPage(wce=False),)).encode(10)
    res = await run(lu, c.ModeSelect(parameter_list_length=len(select), size=10), select)
    assert res.status == GOOD and lu.store.write_through is True
    bad = ModeParameters(pages=(CachingPage(wce=False, rcd=True),)).encode(6)
    assert sense_of(await run(lu, c.ModeSelect(parameter_list_length=len(bad)), bad)).is_(
        Asc.INVALID_FIELD_IN_PARAMETER_LIST)
    changeable = ModeParameters.decode(
        (await run(lu, c.ModeSense(page_code=0x3F, page_control=1, dbd=True))).data_in, 6)
    assert changeable.page(0x08).wce and changeable.page(0x0A).d_sense
    assert sense_of(await run(lu, c.ModeSense(page_code=0x08, page_control=3))).is_(
        Asc.SAVING_PARAMETERS_NOT_SUPPORTED)


async def test_d_sense_switches_sense_format(lu: LogicalUnit) -> None:
    await run(lu, c.TestUnitReady(), nexus=B)
    select = ModeParameters(pages=(ControlPage(d_sense=True),)).encode(6)
    assert (await run(lu, c.ModeSelect(parameter_list_length=len(select)), select)).status == GOOD
    res = await run(lu, c.Read(lba=BLOCKS, blocks=1))
    assert res.sense_bytes[0] == 0x72
    assert sense_of(await run(lu, c.TestUnitReady(), nexus=B)).is_(Asc.MODE_PARAMETERS_CHANGED)


async def pr_out(lu: LogicalUnit, nexus: ItNexus, action: PrOutAction, key: int = 0,
                 sak: int = 0, pr_type: int = 0) -> TaskResult:
    params = PrOutParameters(key, sak).encode()
    return await run(lu, c.PersistentReserveOut(action=action, pr_type=pr_type,
                                                parameter_list_length=len(params)),
                     params, nexus=nexus)


async def test_persistent_reservations_through_cdbs(lu: LogicalUnit) -> None:
    assert (await pr_out(lu, A, PrOutAction.REGISTER, sak=0xAA)).status == GOOD
    assert (await pr_out(lu, B, PrOutAction.REGISTER, sak=0xBB)).status == GOOD
    assert (await pr_out(lu, A, PrOutAction.RESERVE, 0xAA,
                         pr_type=PrType.WRITE_EXCLUSIVE)).status == GOOD
    keys = ReadKeysData.decode((await run(lu, c.PersistentReserveIn(
        action=PrInAction.READ_KEYS), nexus=B)).data_in)
    assert keys.keys == (0xAA, 0xBB) and keys.generation == 2
    assert (await run(lu, c.Write(lba=0, blocks=1), bytes(BS), nexus=B)).status == CONFLICT
    assert (await run(lu, c.Read(lba=0, blocks=1), nexus=B)).status == GOOD
    assert (await run(lu, c.Write(lba=0, blocks=1), bytes(BS))).status == GOOD
    assert (await pr_out(lu, B, PrOutAction.PREEMPT, 0xBB, sak=0xAA,
                         pr_type=PrType.EXCLUSIVE_ACCESS)).status == GOOD
    assert sense_of(await run(lu, c.TestUnitReady())).is_(Asc.REGISTRATIONS_PREEMPTED)
    assert (await run(lu, c.Read(lba=0, blocks=1))).status == CONFLICT
    res = ReadReservationData.decode((await run(lu, c.PersistentReserveIn(
        action=PrInAction.READ_RESERVATION))).data_in)
    assert (res.key, res.pr_type) == (0xBB, PrType.EXCLUSIVE_ACCESS)
    short = await run(lu, c.PersistentReserveOut(action=0, parameter_list_length=20),
                      bytes(20))
    assert sense_of(short).is_(Asc.PARAMETER_LIST_LENGTH_ERROR)
    assert len((await run(lu, c.PersistentReserveIn(action=0, allocation_length=8))
                ).data_in) == 8


async def test_preempt_and_abort_calls_abort_hook(lu: LogicalUnit) -> None:
    aborted: list[ItNexus] = []
    lu.abort_tasks = aborted.extend
    await pr_out(lu, A, PrOutAction.REGISTER, sak=1)
    await pr_out(lu, B, PrOutAction.REGISTER, sak=2)
    await pr_out(lu, A, PrOutAction.RESERVE, 1, pr_type=PrType.WRITE_EXCLUSIVE)
    await pr_out(lu, B, PrOutAction.PREEMPT_AND_ABORT, 2, sak=1,
                 pr_type=PrType.WRITE_EXCLUSIVE)
    assert aborted == [A]


async def test_legacy_reserve_release(lu: LogicalUnit) -> None:
    assert (await run(lu, c.Reserve6())).status == GOOD
    assert (await run(lu, c.Reserve6(), nexus=B)).status == CONFLICT
    assert (await run(lu, c.TestUnitReady(), nexus=B)).status == CONFLICT
    assert (await run(lu, c.Inquiry(), nexus=B)).status == GOOD
    lu.reset()
    assert sense_of(await run(lu, c.TestUnitReady(), nexus=B)).is_(Asc.BUS_DEVICE_RESET_OCCURRED)
    assert (await run(lu, c.TestUnitReady(), nexus=B)).status == GOOD


async def test_alua_states_rtpg_and_stpg(lu: LogicalUnit) -> None:
    await run(lu, c.TestUnitReady(), nexus=B)
    await run(lu, c.TestUnitReady(), nexus=A)
    lu.set_access_state(2, AccessState.STANDBY)
    assert sense_of(await run(lu, c.TestUnitReady(), nexus=B)).is_(
        Asc.ASYMMETRIC_ACCESS_STATE_CHANGED)
    refused = sense_of(await run(lu, c.Read(lba=0, blocks=1), nexus=B))
    assert refused.key == SenseKey.NOT_READY and refused.is_(Asc.NOT_READY_TARGET_PORT_STANDBY)
    assert (await run(lu, c.Inquiry(), nexus=B)).status == GOOD
    why = SenseData.decode((await run(lu, c.RequestSense(), nexus=B)).data_in)
    assert why.key == SenseKey.NOT_READY and why.is_(Asc.NOT_READY_TARGET_PORT_STANDBY)
    rtpg = RtpgData.decode((await run(lu, c.ReportTargetPortGroups(), nexus=B)).data_in)
    assert [(g.group_id, g.state, g.relative_ports) for g in rtpg.groups] == [
        (1, AccessState.ACTIVE_OPTIMIZED, (1,)), (2, AccessState.STANDBY, (2,))]
    stpg = SetTargetPortGroupsList(((2, AccessState.ACTIVE_NON_OPTIMIZED),)).encode()
    res = await run(lu, c.SetTargetPortGroups(len(stpg)), stpg, nexus=B)
    assert res.status == GOOD
    assert (await run(lu, c.Read(lba=0, blocks=1), nexus=B)).status == GOOD
    assert sense_of(await run(lu, c.TestUnitReady())).is_(Asc.ASYMMETRIC_ACCESS_STATE_CHANGED)
    lu.set_access_state(1, AccessState.UNAVAILABLE)
    await run(lu, c.TestUnitReady())
    assert sense_of(await run(lu, c.ReadCapacity10())).is_(
        Asc.NOT_READY_TARGET_PORT_UNAVAILABLE)
    assert sense_of(await run(lu, c.TestUnitReady(), nexus=B)).is_(
        Asc.ASYMMETRIC_ACCESS_STATE_CHANGED)
    bad = SetTargetPortGroupsList(((9, AccessState.STANDBY),)).encode()
    assert sense_of(await run(lu, c.SetTargetPortGroups(len(bad)), bad, nexus=B)).is_(
        Asc.INVALID_FIELD_IN_PARAMETER_LIST)


async def test_medium_errors_become_sense(lu: LogicalUnit) -> None:
    lu.store.close()
    assert sense_of(await run(lu, c.Read(lba=0, blocks=1))).is_(Asc.UNRECOVERED_READ_ERROR)
    assert sense_of(await run(lu, c.Write(lba=0, blocks=1), bytes(BS))).is_(Asc.WRITE_ERROR)


class _NotServing(SplitbrainError):
    def __init__(self, transitioning: bool) -> None:
        super().__init__("replica not serving")
        self.transitioning = transitioning


class _FencedStore:
    """A block store shaped like an HA replica that has stopped serving."""

    block_size, num_blocks, write_through = BS, BLOCKS, True

    def __init__(self, transitioning: bool) -> None:
        self.transitioning = transitioning

    async def read(self, lba: int, count: int) -> bytes:
        raise _NotServing(self.transitioning)

    async def write(self, lba: int, data: bytes, *, fua: bool = False) -> None:
        raise _NotServing(self.transitioning)

    async def flush(self) -> None:
        raise RuntimeError("defect")

    async def unmap(self, lba: int, count: int) -> None:
        raise _NotServing(self.transitioning)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("transitioning", [True, False])
async def test_replica_not_serving_is_not_ready(transitioning: bool) -> None:
    lu = LogicalUnit(_FencedStore(transitioning), LuIdentity.derive("ha"))
    want = (Asc.NOT_READY_ASYMMETRIC_ACCESS_TRANSITION if transitioning
            else Asc.NOT_READY_TARGET_PORT_UNAVAILABLE)
    for cmd, data in ((c.Read(lba=0, blocks=1), b""), (c.Read(lba=0, blocks=1, size=12), b""),
                      (c.Write(lba=0, blocks=1, size=16), bytes(BS))):
        sense = sense_of(await run(lu, cmd, data))
        assert sense.key == SenseKey.NOT_READY and sense.is_(want)
    internal = sense_of(await run(lu, c.SynchronizeCache()))
    assert internal.key == SenseKey.HARDWARE_ERROR


async def test_compare_and_write_of_256_blocks_is_an_invalid_field(lu: LogicalUnit) -> None:
    # NUMBER OF LOGICAL BLOCKS is one byte: 256 encodes as 0 but data still arrives
    raw = bytearray(c.CompareAndWrite(lba=0, blocks=0).encode())
    res = await run(lu, c.UnknownCommand(bytes(raw)), bytes(512 * BS))
    assert sense_of(res).field_pointer.byte == 13
    assert (await run(lu, c.CompareAndWrite(lba=0, blocks=0))).status == GOOD


async def test_report_supported_opcodes(lu: LogicalUnit) -> None:
    from harness.scsi.supported_opcodes import AllCommandsData, CommandSupport, OneCommandData

    every = AllCommandsData.decode((await run(lu, c.ReportSupportedOpcodes())).data_in)
    listed = {(d.opcode, d.service_action) for d in every.commands}
    assert (0x28, None) in listed and (0x9E, 0x10) in listed and (0x5F, 7) in listed
    # every listed command is really served: none answers INVALID COMMAND OPERATION CODE
    for opcode, sa in listed:
        cdb = bytearray(16)
        cdb[0] = opcode
        if sa is not None:
            cdb[1] = sa
        res = await lu.execute(ScsiTask(A, 0, bytes(cdb[: cdb_length(opcode)])))
        if res.sense is not None:
            assert not res.sense.is_(Asc.INVALID_COMMAND_OPERATION_CODE), hex(opcode)
    timed = AllCommandsData.decode((await run(lu, c.ReportSupportedOpcodes(rctd=True))).data_in)
    assert all(d.timeouts is not None for d in timed.commands)
    one = OneCommandData.decode((await run(lu, c.ReportSupportedOpcodes(
        options=1, requested_opcode=0x2A))).data_in)
    assert one.support == CommandSupport.SUPPORTED and one.usage[:2] == bytes.fromhex("2af8")
    assert len(one.usage) == 10 and one.usage[-1] == 0x04
    sa = OneCommandData.decode((await run(lu, c.ReportSupportedOpcodes(
        options=2, requested_opcode=0xA3, requested_service_action=0x0A))).data_in)
    assert sa.usage[:2] == bytes.fromhex("a32a")  # SA 0Ah plus the PARAMETER DATA FORMAT bit
    missing = OneCommandData.decode((await run(lu, c.ReportSupportedOpcodes(
        options=1, requested_opcode=0xC1))).data_in)
    assert missing.support == CommandSupport.NOT_SUPPORTED
    assert sense_of(await run(lu, c.ReportSupportedOpcodes(
        options=1, requested_opcode=0x9E))).is_(Asc.INVALID_FIELD_IN_CDB)


async def test_get_lba_status_follows_the_sparse_file(lu: LogicalUnit) -> None:
    from harness.scsi.provisioning import LbaStatusData, ProvisioningStatus

    await run(lu, c.Write(lba=64, blocks=64), os.urandom(64 * BS))
    status = LbaStatusData.decode((await run(lu, c.GetLbaStatus(lba=0))).data_in)
    spans = [(d.lba, d.blocks, d.status) for d in status.descriptors]
    assert spans[0] == (0, 64, ProvisioningStatus.DEALLOCATED)
    assert spans[1][0] == 64 and spans[1][2] == ProvisioningStatus.MAPPED
    assert spans[1][1] >= 64 and spans[-1][0] + spans[-1][1] == BLOCKS
    assert sum(d.blocks for d in status.descriptors) == BLOCKS
    await run(lu, c.Unmap(parameter_list_length=24), UnmapParameters(((64, 64),)).encode())
    again = LbaStatusData.decode((await run(lu, c.GetLbaStatus(lba=64))).data_in)
    assert again.descriptors[0].status == ProvisioningStatus.DEALLOCATED
    one = LbaStatusData.decode((await run(lu, c.GetLbaStatus(lba=0, allocation_length=24))
                                ).data_in)
    assert len(one.descriptors) == 1
    assert sense_of(await run(lu, c.GetLbaStatus(lba=BLOCKS))).is_(Asc.LBA_OUT_OF_RANGE)


async def test_orwrite_ors_data_into_the_medium(lu: LogicalUnit) -> None:
    await run(lu, c.Write(lba=40, blocks=2), b"\x0f" * BS + b"\xf0" * BS)
    res = await run(lu, c.OrWrite(lba=40, blocks=2, size=16), b"\x30" * 2 * BS)
    assert res.status == GOOD
    assert (await run(lu, c.Read(lba=40, blocks=2))).data_in == b"\x3f" * BS + b"\xf0" * BS
    assert sense_of(await run(lu, c.OrWrite(lba=BLOCKS - 1, blocks=2, size=16),
                              bytes(2 * BS))).is_(Asc.LBA_OUT_OF_RANGE)
    assert sense_of(await run(lu, c.OrWrite(lba=0, blocks=1, size=16, protect=1),
                              bytes(BS))).is_(Asc.INVALID_FIELD_IN_CDB)


async def test_physical_block_size_follows_the_file_system(lu: LogicalUnit) -> None:
    per_physical = lu.store.physical_block_size // BS
    assert per_physical >= 1 and per_physical & (per_physical - 1) == 0
    rc16 = ReadCapacity16Data.decode((await run(lu, c.ReadCapacity16())).data_in)
    assert 1 << rc16.logical_per_physical_exponent == per_physical
    limits = vpd.BlockLimits.decode((await run(lu, c.Inquiry(evpd=True, page_code=0xB0))
                                     ).data_in)
    assert limits.optimal_unmap_granularity == per_physical
    assert limits.optimal_transfer_length_granularity == per_physical


async def test_compare_and_write_needs_exactly_twice_the_blocks(lu: LogicalUnit) -> None:
    for size in (BS, 3 * BS, 4 * BS):
        res = await run(lu, c.CompareAndWrite(lba=0, blocks=1), bytes(size))
        assert sense_of(res).is_(Asc.INVALID_FIELD_IN_CDB), size
