"""Full feature phase of the reference target against a real node process.

R2T-driven writes across several bursts, task management (ABORT TASK, LUN RESET),
reinstatement aborting the old session's tasks, NOP-In keepalive both ways, and
several initiators on one LU at once.
"""

from __future__ import annotations

import os
import threading

import pytest

from harness.iscsi import codec
from harness.iscsi.codes import RejectReason, TaskManagementFunction, TaskManagementResponseCode
from harness.iscsi.pdu import NO_TAG
from harness.peers.reference_target import ReferenceTarget, ReferenceTargetFactory
from harness.scsi.cdb import Read, Write
from harness.scsi.sense import SenseData, SenseKey
from harness.scsi.status import ScsiStatus
from suites.protocol.wire import RawConnection

BLOCK = 512


def session(node: ReferenceTarget, name: str = "a", *, portal: int = 0,
            isid: int | None = None, extra: tuple[tuple[str, str], ...] = ()) -> RawConnection:
    conn = RawConnection(*node.portals[portal])
    result = conn.login(f"iqn.2026-11.org.splitbrain.test:{name}", node.iqn, isid=isid,
                        extra=extra)
    assert result.ok, f"login status 0x{result.status:04x}"
    for _ in range(3):   # take the POWER ON unit attention of a new nexus
        if conn.command(bytes(6)).status == ScsiStatus.GOOD:
            break
    return conn


@pytest.fixture
def small_bursts(reference_target_factory: ReferenceTargetFactory) -> ReferenceTarget:
    return reference_target_factory.start(
        name="bursts", limits={"max_burst_length": 8192, "first_burst_length": 4096,
                               "max_recv_data_segment_length": 4096})


def test_write_spanning_many_r2ts_reads_back(small_bursts: ReferenceTarget) -> None:
    conn = session(small_bursts, extra=(("InitialR2T", "Yes"), ("ImmediateData", "No")))
    try:
        assert conn.initial_r2t and not conn.immediate_data
        data = os.urandom(128 * BLOCK)   # 64 KiB: eight 8 KiB bursts of 4 KiB PDUs
        r2ts = []
        original = conn._send_data

        def record(itt, ttt, payload, start, end, lun):  # type: ignore[no-untyped-def]
            r2ts.append((start, end))
            original(itt, ttt, payload, start, end, lun)

        conn._send_data = record  # type: ignore[method-assign]
        got = conn.command(Write(lba=1000, blocks=128, size=10).encode(), data_out=data)
        assert got.status == ScsiStatus.GOOD
        assert r2ts == [(i, i + 8192) for i in range(0, 65536, 8192)]
        back = conn.command(Read(lba=1000, blocks=128, size=10).encode(),
                            read_length=len(data))
        assert back.status == ScsiStatus.GOOD and back.data == data
    finally:
        conn.close()


def test_unsolicited_and_immediate_data_without_r2t(small_bursts: ReferenceTarget) -> None:
    conn = session(small_bursts, extra=(("InitialR2T", "No"), ("ImmediateData", "Yes")))
    try:
        data = os.urandom(8 * BLOCK)   # 4 KiB = FirstBurstLength: all of it unsolicited
        got = conn.command(Write(lba=2000, blocks=8, size=10).encode(), data_out=data)
        assert got.status == ScsiStatus.GOOD
        back = conn.command(Read(lba=2000, blocks=8, size=10).encode(), read_length=len(data))
        assert back.data == data
    finally:
        conn.close()


def tmf(conn: RawConnection, function: int, *, ref_itt: int = NO_TAG, ref_cmd_sn: int = 0,
        lun: int = 0) -> codec.TaskManagementResponse:
    itt = conn.next_itt()
    conn.send(codec.TaskManagementRequest(immediate=True, function=function,
                                          lun=codec.lun_to_wire(lun), initiator_task_tag=itt,
                                          referenced_task_tag=ref_itt, cmd_sn=conn.cmd_sn,
                                          ref_cmd_sn=ref_cmd_sn, exp_stat_sn=conn.exp_stat_sn))
    while True:
        pdu = conn.recv()
        if isinstance(pdu, codec.TaskManagementResponse) and pdu.initiator_task_tag == itt:
            return pdu


def test_abort_task_waiting_for_data(small_bursts: ReferenceTarget) -> None:
    conn = session(small_bursts, extra=(("InitialR2T", "Yes"), ("ImmediateData", "No")))
    try:
        itt = conn.next_itt()
        cmd_sn = conn.take_cmd_sn()
        conn.send(codec.ScsiCommand(write=True, initiator_task_tag=itt, cmd_sn=cmd_sn,
                                    expected_data_transfer_length=16 * BLOCK,
                                    exp_stat_sn=conn.exp_stat_sn,
                                    cdb=Write(lba=10, blocks=16, size=10).encode()))
        r2t = conn.recv()
        assert isinstance(r2t, codec.R2T) and r2t.initiator_task_tag == itt
        answer = tmf(conn, TaskManagementFunction.ABORT_TASK, ref_itt=itt, ref_cmd_sn=cmd_sn)
        assert answer.response == TaskManagementResponseCode.FUNCTION_COMPLETE
        # The aborted task is gone: its data is refused, and it never answers.
        conn.send(codec.DataOut(final=True, initiator_task_tag=itt,
                                target_transfer_tag=r2t.target_transfer_tag,
                                exp_stat_sn=conn.exp_stat_sn, data=bytes(4096)))
        reject = conn.recv()
        assert isinstance(reject, codec.Reject)
        assert reject.reason == RejectReason.INVALID_PDU_FIELD
        assert conn.nop(b"after-abort").data == b"after-abort"
    finally:
        conn.close()


def test_abort_task_for_an_unknown_task(reference_target: ReferenceTarget) -> None:
    conn = session(reference_target)
    try:
        answer = tmf(conn, TaskManagementFunction.ABORT_TASK, ref_itt=0x7777,
                     ref_cmd_sn=(conn.cmd_sn - 100) & 0xFFFFFFFF)
        assert answer.response == TaskManagementResponseCode.TASK_DOES_NOT_EXIST
    finally:
        conn.close()


def test_lun_reset_posts_a_unit_attention_to_the_other_nexus(
        reference_target: ReferenceTarget) -> None:
    a = session(reference_target, "a")
    b = session(reference_target, "b", portal=1)
    try:
        answer = tmf(a, TaskManagementFunction.LOGICAL_UNIT_RESET)
        assert answer.response == TaskManagementResponseCode.FUNCTION_COMPLETE
        seen = b.command(bytes(6))
        assert seen.status == ScsiStatus.CHECK_CONDITION
        sense = SenseData.decode(seen.sense)
        assert sense.key == SenseKey.UNIT_ATTENTION and sense.asc == 0x29
        assert b.command(bytes(6)).status == ScsiStatus.GOOD
        unknown_lun = tmf(a, TaskManagementFunction.LOGICAL_UNIT_RESET, lun=9)
        assert unknown_lun.response == TaskManagementResponseCode.LUN_DOES_NOT_EXIST
    finally:
        a.close()
        b.close()


def test_reinstatement_aborts_the_old_sessions_tasks(small_bursts: ReferenceTarget) -> None:
    extra = (("InitialR2T", "Yes"), ("ImmediateData", "No"))
    old = session(small_bursts, "mpio-host", isid=0x23D000000042, extra=extra)
    try:
        itt = old.next_itt()
        old.send(codec.ScsiCommand(write=True, initiator_task_tag=itt, cmd_sn=old.take_cmd_sn(),
                                   expected_data_transfer_length=8 * BLOCK,
                                   exp_stat_sn=old.exp_stat_sn,
                                   cdb=Write(lba=20, blocks=8, size=10).encode()))
        assert isinstance(old.recv(), codec.R2T)
        assert small_bursts.management.sessions()[0]["tasks_in_flight"] == 1
        new = session(small_bursts, "mpio-host", isid=0x23D000000042, portal=1)
        try:
            assert old.closed_by_peer()
            sessions = small_bursts.management.sessions()
            assert len(sessions) == 1 and sessions[0]["tasks_in_flight"] == 0
            assert sessions[0]["connections"][0]["portal"].endswith(
                str(small_bursts.portals[1][1]))
        finally:
            new.close()
    finally:
        old.close()


@pytest.fixture
def pinging_node(reference_target_factory: ReferenceTargetFactory) -> ReferenceTarget:
    return reference_target_factory.start(name="pinging",
                                          limits={"nop_in_interval_s": 0.5,
                                                  "nop_in_timeout_s": 1.0})


def test_keepalive_ping_answered_keeps_the_connection(pinging_node: ReferenceTarget) -> None:
    conn = session(pinging_node)
    try:
        ping = conn.recv()   # idle: the target asks whether we are alive
        assert isinstance(ping, codec.NopIn) and ping.target_transfer_tag != NO_TAG
        assert ping.initiator_task_tag == NO_TAG
        conn.send(codec.NopOut(immediate=True, initiator_task_tag=NO_TAG,
                               target_transfer_tag=ping.target_transfer_tag,
                               cmd_sn=conn.cmd_sn, exp_stat_sn=conn.exp_stat_sn))
        assert conn.nop(b"alive").data == b"alive"
    finally:
        conn.close()


def test_keepalive_ping_unanswered_closes_the_connection(pinging_node: ReferenceTarget) -> None:
    conn = session(pinging_node)
    try:
        ping = conn.recv()
        assert isinstance(ping, codec.NopIn) and ping.target_transfer_tag != NO_TAG
        assert conn.closed_by_peer(timeout=10)
        assert pinging_node.management.sessions() == []
    finally:
        conn.close()


def test_initiators_write_concurrently_through_both_portals(
        reference_target: ReferenceTarget) -> None:
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            conn = session(reference_target, f"host{index}", portal=index % 2)
            try:
                for i in range(20):
                    lba = 4096 + index * 1024 + i * 8
                    data = os.urandom(8 * BLOCK)
                    cdb = Write(lba=lba, blocks=8, size=10).encode()
                    assert conn.command(cdb, data_out=data).status == ScsiStatus.GOOD
                    back = conn.command(Read(lba=lba, blocks=8, size=10).encode(),
                                        read_length=len(data))
                    assert back.data == data
            finally:
                conn.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
