"""Sequencing and state errors: PDUs that are well formed but wrong for the moment.

- a non-immediate command whose CmdSN is outside [ExpCmdSN, MaxCmdSN] is silently
  ignored (RFC 7143 section 4.2.2.1): no answer, and the window does not move;
- a Login Request in full feature phase is a protocol error: Reject (0x04);
- a Data-Out for an Initiator Task Tag with no task: Reject (0x09, invalid PDU field);
- a write announcing 4 GiB of data: CHECK CONDITION (ILLEGAL REQUEST, INVALID FIELD IN
  CDB) at once; nothing of that size is ever allocated;
- writes that announce data and never send it: once they add up to the session's
  pending-write budget, further writes get TASK SET FULL instead of buffers.

After each one the node is alive, the bystander answers, and memory stayed bounded.
"""

from __future__ import annotations

import struct

from harness.iscsi import codec
from harness.iscsi.codes import RejectReason
from harness.iscsi.layers import ISCSIDataOut, ISCSILoginRequest
from harness.scsi.cdb import Read, Write
from harness.scsi.sense import SenseData, SenseKey
from harness.scsi.status import ScsiStatus
from suites.protocol.conftest import PENDING_WRITE_BUDGET, NodeHealth
from suites.protocol.wire import RawConnection

#: against the sut: write commands and unbounded sends are destructive
DISTURBING = ("test_four_gib_write_is_refused_without_allocating",
              "test_writes_that_never_send_data_hit_the_budget",
              "test_a_peer_that_never_reads_costs_bounded_memory")
#: the pending-write budget is the reference node's
REFERENCE_ONLY = ("test_writes_that_never_send_data_hit_the_budget",)


def test_cmdsn_outside_the_window_is_ignored(probe: RawConnection, health: NodeHealth) -> None:
    far = (probe.max_cmd_sn + 1000) & 0xFFFFFFFF
    probe.send(codec.NopOut(immediate=False, initiator_task_tag=probe.next_itt(), cmd_sn=far,
                            exp_stat_sn=probe.exp_stat_sn, data=b"out-of-window"))
    behind = (probe.cmd_sn - 5) & 0xFFFFFFFF
    probe.send(codec.NopOut(immediate=False, initiator_task_tag=probe.next_itt(),
                            cmd_sn=behind, exp_stat_sn=probe.exp_stat_sn, data=b"stale"))
    # An in-window NOP-Out is answered; the two ignored ones never are.
    itt = probe.next_itt()
    probe.send(codec.NopOut(immediate=False, initiator_task_tag=itt,
                            cmd_sn=probe.take_cmd_sn(), exp_stat_sn=probe.exp_stat_sn,
                            data=b"in-window"))
    reply = probe.recv()
    assert isinstance(reply, codec.NopIn)
    assert (reply.initiator_task_tag, reply.data) == (itt, b"in-window")
    assert reply.exp_cmd_sn == probe.cmd_sn   # only the in-window command moved ExpCmdSN
    health.assert_survived()


def test_login_in_full_feature_phase_is_rejected(probe: RawConnection,
                                                 health: NodeHealth) -> None:
    wire = bytes(ISCSILoginRequest(transit=1, csg=1, nsg=3, isid=probe.isid, tsih=probe.tsih,
                                   initiator_task_tag=probe.next_itt(), cmd_sn=probe.cmd_sn,
                                   exp_stat_sn=probe.exp_stat_sn))
    probe.send_bytes(wire)
    reject = probe.recv()
    assert isinstance(reject, codec.Reject)
    assert reject.reason == RejectReason.PROTOCOL_ERROR
    assert reject.data == wire[:48]
    assert probe.nop(b"alive").data == b"alive"
    health.assert_survived()


def test_data_out_for_an_unknown_task_is_rejected(probe: RawConnection,
                                                  health: NodeHealth) -> None:
    probe.send_bytes(bytes(ISCSIDataOut(initiator_task_tag=0x0BADBEEF,
                                        target_transfer_tag=0x1234,
                                        exp_stat_sn=probe.exp_stat_sn, data=b"\xaa" * 512)))
    reject = probe.recv()
    assert isinstance(reject, codec.Reject)
    assert reject.reason == RejectReason.INVALID_PDU_FIELD
    assert struct.unpack_from(">I", reject.data, 16)[0] == 0x0BADBEEF
    assert probe.nop(b"alive").data == b"alive"
    health.assert_survived()


def test_four_gib_write_is_refused_without_allocating(probe: RawConnection,
                                                     health: NodeHealth) -> None:
    itt = probe.next_itt()
    cdb = Write(lba=0, blocks=0x7FFFFF, size=16).encode()
    probe.send(codec.ScsiCommand(write=True, final=True, initiator_task_tag=itt,
                                 expected_data_transfer_length=0xFFFFFFFF,
                                 cmd_sn=probe.take_cmd_sn(), exp_stat_sn=probe.exp_stat_sn,
                                 cdb=cdb, data=b"\x00" * 4096))
    response = probe.recv()
    assert isinstance(response, codec.ScsiResponse)
    assert response.initiator_task_tag == itt
    assert response.status == ScsiStatus.CHECK_CONDITION
    sense = SenseData.decode(response.data[2:])
    assert sense.key == SenseKey.ILLEGAL_REQUEST
    assert (sense.asc, sense.ascq) == (0x24, 0x00)   # INVALID FIELD IN CDB
    health.assert_survived()


def test_writes_that_never_send_data_hit_the_budget(probe: RawConnection,
                                                   health: NodeHealth) -> None:
    per_write = 512 * 1024
    statuses = []
    for i in range(PENDING_WRITE_BUDGET // per_write + 2):
        itt = probe.next_itt()
        probe.send(codec.ScsiCommand(write=True, final=True, initiator_task_tag=itt,
                                     expected_data_transfer_length=per_write,
                                     cmd_sn=probe.take_cmd_sn(), exp_stat_sn=probe.exp_stat_sn,
                                     cdb=Write(lba=i * 1024, blocks=1024, size=10).encode()))
        pdu = probe.recv()   # an R2T while under budget, TASK SET FULL beyond it
        if isinstance(pdu, codec.ScsiResponse):
            statuses.append(pdu.status)
        else:
            assert isinstance(pdu, codec.R2T) and pdu.initiator_task_tag == itt
            statuses.append("r2t")
    assert statuses == ["r2t"] * (PENDING_WRITE_BUDGET // per_write) + \
        [ScsiStatus.TASK_SET_FULL] * 2
    health.assert_survived()


def test_a_peer_that_never_reads_costs_bounded_memory(probe: RawConnection,
                                                      health: NodeHealth) -> None:
    """Thousands of 64 KiB reads from a peer that never reads its socket: the window
    admits a queue depth of them, the node stops reading when its send buffer fills,
    and its memory stays bounded."""
    probe.sock.setblocking(False)
    sent = 0
    cdb = Read(lba=0, blocks=128, size=10).encode()
    wire = b"".join(codec.encode(codec.ScsiCommand(
        read=True, initiator_task_tag=0x100000 + i, expected_data_transfer_length=65536,
        cmd_sn=(probe.cmd_sn + i) & 0xFFFFFFFF, exp_stat_sn=probe.exp_stat_sn, cdb=cdb))
        for i in range(4000))
    try:
        while sent < len(wire):
            sent += probe.sock.send(wire[sent:])
    except BlockingIOError:
        pass   # the node stopped reading: backpressure reached the sender
    health.assert_survived()
