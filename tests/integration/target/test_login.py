"""Login, discovery, NOP and logout against a real node process on loopback."""

from __future__ import annotations

import pytest

from fixtures.reference_target import ReferenceTarget, ReferenceTargetFactory, lun_target
from harness.iscsi import codec
from harness.iscsi.codes import LoginStatus
from suites.protocol.wire import RawConnection

INITIATOR = "iqn.2026-11.org.splitbrain.test:initiator-a"


def test_discovery_lists_every_portal(reference_target: ReferenceTarget) -> None:
    host, port = reference_target.portals[0]
    with RawConnection(host, port) as conn:
        assert conn.login(INITIATOR).ok
        found = conn.text([("SendTargets", "All")])
        assert found["TargetName"] == [reference_target.iqn]
        assert sorted(found["TargetAddress"]) == sorted(
            f"{h}:{p},1" for h, p in reference_target.portals)
        assert conn.logout().response == 0


def test_normal_login_nop_and_session_listing(reference_target: ReferenceTarget) -> None:
    host, port = reference_target.portals[1]
    with RawConnection(host, port) as conn:
        result = conn.login(INITIATOR, reference_target.iqn)
        assert result.ok and result.tsih != 0
        assert result.keys["TargetPortalGroupTag"] == "1"
        reply = conn.nop(b"ping-payload")
        assert isinstance(reply, codec.NopIn) and reply.data == b"ping-payload"
        sessions = reference_target.management.sessions()
        assert [(s["initiator"], s["tsih"]) for s in sessions] == [(INITIATOR, result.tsih)]
        assert sessions[0]["connections"][0]["portal"] == f"{host}:{port}"


@pytest.mark.parametrize(("target", "status"), [
    ("iqn.2026-11.org.splitbrain.test:absent", LoginStatus.NOT_FOUND),
])
def test_unknown_target_is_not_found(reference_target: ReferenceTarget, target: str,
                                     status: int) -> None:
    with RawConnection(*reference_target.portals[0]) as conn:
        result = conn.login(INITIATOR, target)
        assert result.status == status
        assert conn.closed_by_peer()


def test_acl_refuses_other_initiators(reference_target_factory: ReferenceTargetFactory) -> None:
    node = reference_target_factory.start(targets=(lun_target(initiators=[INITIATOR]),))
    with RawConnection(*node.portals[0]) as conn:
        assert conn.login("iqn.2026-11.org.splitbrain.test:stranger", node.iqn).status == \
            LoginStatus.AUTHORIZATION_FAILURE
    with RawConnection(*node.portals[0]) as conn:
        assert conn.login(INITIATOR, node.iqn).ok
        # Discovery hides targets the initiator may not use.
    with RawConnection(*node.portals[0]) as conn:
        assert conn.login("iqn.2026-11.org.splitbrain.test:stranger").ok
        assert "TargetName" not in conn.text([("SendTargets", "All")])


def test_reinstatement_closes_the_old_session(reference_target: ReferenceTarget) -> None:
    host, port = reference_target.portals[0]
    old = RawConnection(host, port)
    new = RawConnection(host, port)
    try:
        first = old.login(INITIATOR, reference_target.iqn, isid=0x23D000001)
        second = new.login(INITIATOR, reference_target.iqn, isid=0x23D000001)
        assert first.ok and second.ok and second.tsih != first.tsih
        assert old.closed_by_peer()
        assert new.nop(b"x").data == b"x"
        sessions = reference_target.management.sessions()
        assert [s["tsih"] for s in sessions] == [second.tsih]
    finally:
        old.close()
        new.close()
