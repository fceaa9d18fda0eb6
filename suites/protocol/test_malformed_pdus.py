"""Malformed PDUs: each gets the RFC 7143 answer, and nobody else notices.

- unknown opcode: a Reject (reason 0x05, command not supported) quoting the header;
  the connection lives on;
- a header cut short by the end of the stream: that connection is closed;
- a DataSegmentLength above the declared MaxRecvDataSegmentLength, or the 24-bit
  maximum: a Reject (protocol error), then the connection is closed, without the
  node reading or allocating the announced segment;
- a wrong header digest: the connection is closed (the header cannot be trusted);
- a wrong data digest: the PDU is discarded with a Reject (reason 0x02, data
  digest error) and the connection lives on.

The PDUs are crafted with the scapy layers of ``harness.iscsi.layers`` (lengths and
digests overridden where the probe lies). After each one the node is alive, the
bystander session answers and the node's memory stayed bounded
(``NodeHealth.assert_survived``).
"""

from __future__ import annotations

import socket

from harness.iscsi import codec
from harness.iscsi.codes import RejectReason
from harness.iscsi.layers import ISCSI, ISCSINopOut
from suites.protocol.conftest import PROBE_INITIATOR, NodeHealth
from suites.protocol.wire import RawConnection


def nop_out(conn: RawConnection, payload: bytes = b"", **fields: object) -> ISCSINopOut:
    """A NOP-Out as a scapy layer, any field (lengths, digests) overridable."""
    return ISCSINopOut(immediate=1, initiator_task_tag=conn.next_itt(), cmd_sn=conn.cmd_sn,
                       exp_stat_sn=conn.exp_stat_sn, data=payload, **fields)


def expect_reject(conn: RawConnection) -> codec.Reject:
    pdu = conn.recv()
    assert isinstance(pdu, codec.Reject), f"expected a Reject, got {pdu!r}"
    return pdu


def test_unknown_opcode_is_rejected(probe: RawConnection, health: NodeHealth) -> None:
    wire = bytes(ISCSI(immediate=1, opcode=0x1C))   # an opcode RFC 7143 does not define
    probe.send_bytes(wire)
    reject = expect_reject(probe)
    assert reject.reason == RejectReason.COMMAND_NOT_SUPPORTED
    assert reject.data == wire[:48]
    assert probe.nop(b"same-connection").data == b"same-connection"
    health.assert_survived()


def test_truncated_header_closes_that_connection(probe: RawConnection,
                                                 health: NodeHealth) -> None:
    probe.send_bytes(bytes(nop_out(probe))[:20])
    probe.sock.shutdown(socket.SHUT_WR)
    assert probe.closed_by_peer()
    health.assert_survived()


def test_segment_above_the_declared_limit(probe: RawConnection, health: NodeHealth) -> None:
    # what this target declared at login (65536 on the reference node), plus one word
    probe.send_bytes(bytes(nop_out(probe, data_segment_length=probe.max_send_dsl + 4)))
    reject = expect_reject(probe)
    assert reject.reason == RejectReason.PROTOCOL_ERROR
    assert probe.closed_by_peer()
    health.assert_survived()


def test_absurd_segment_length_is_not_allocated(probe: RawConnection,
                                                health: NodeHealth) -> None:
    # 16 MiB - 1, the largest a BHS can announce; the node must not wait for or buffer it.
    probe.send_bytes(bytes(nop_out(probe, data_segment_length=0xFFFFFF)) + b"\x00" * 4096)
    assert expect_reject(probe).reason == RejectReason.PROTOCOL_ERROR
    assert probe.closed_by_peer()
    health.assert_survived()


def test_wrong_header_digest_closes_the_connection(probe_node, health: NodeHealth) -> None:
    with RawConnection(*probe_node.portals[0]) as conn:
        result = conn.login(PROBE_INITIATOR, probe_node.iqn, isid=0x400000000001, digests=True)
        assert result.ok and conn.header_digest
        conn.send_bytes(bytes(nop_out(conn, with_header_digest=True,
                                      header_digest=0xDEADBEEF)))
        assert conn.closed_by_peer()
    health.assert_survived()


def test_wrong_data_digest_is_rejected_and_the_connection_lives(probe_node,
                                                               health: NodeHealth) -> None:
    with RawConnection(*probe_node.portals[0]) as conn:
        assert conn.login(PROBE_INITIATOR, probe_node.iqn, isid=0x400000000002,
                          digests=True).ok
        assert conn.data_digest
        conn.send_bytes(bytes(nop_out(conn, b"payload!", with_header_digest=True,
                                      with_data_digest=True, data_digest=0xDEADBEEF)))
        reject = expect_reject(conn)
        assert reject.reason == RejectReason.DATA_DIGEST_ERROR
        assert conn.nop(b"digest-ok").data == b"digest-ok"
    health.assert_survived()
