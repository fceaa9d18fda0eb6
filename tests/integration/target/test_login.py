"""Login, discovery, NOP and logout against a real node process on loopback."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harness.iscsi import codec
from harness.iscsi.chap import ChapCredentials, ChapInitiator
from harness.iscsi.codes import LoginStatus
from harness.iscsi.errors import AuthenticationError
from harness.peers.reference_target import ReferenceTarget, ReferenceTargetFactory, lun_target
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


CHAP_ENV = {"T_CHAP_SECRET": "initiator-secret-1", "T_MUTUAL_SECRET": "target-secret-22"}


def chap_node(factory: ReferenceTargetFactory, *, mutual: bool) -> ReferenceTarget:
    chap = {"username": "hv-node", "secret": "${T_CHAP_SECRET}"}
    if mutual:
        chap |= {"mutual_username": "lun-target", "mutual_secret": "${T_MUTUAL_SECRET}"}
    return factory.start(targets=(lun_target(chap=chap),), env=CHAP_ENV)


@pytest.mark.parametrize("mutual", [False, True], ids=["one-way", "mutual"])
def test_chap_admits_the_right_secret(reference_target_factory: ReferenceTargetFactory,
                                      mutual: bool) -> None:
    node = chap_node(reference_target_factory, mutual=mutual)
    target = ChapCredentials("lun-target", b"target-secret-22") if mutual else None
    chap = ChapInitiator(ChapCredentials("hv-node", b"initiator-secret-1"), target=target)
    with RawConnection(*node.portals[0]) as conn:
        result = conn.login(INITIATOR, node.iqn, chap=chap)
        assert result.ok, f"login status 0x{result.status:04x}"
        assert conn.nop(b"after-chap").data == b"after-chap"


def test_chap_refuses_a_wrong_secret_and_a_skipped_security_stage(
        reference_target_factory: ReferenceTargetFactory) -> None:
    node = chap_node(reference_target_factory, mutual=False)
    chap = ChapInitiator(ChapCredentials("hv-node", b"not-the-secret"))
    with RawConnection(*node.portals[0]) as conn:
        assert conn.login(INITIATOR, node.iqn, chap=chap).status == \
            LoginStatus.AUTHENTICATION_FAILURE
        assert conn.closed_by_peer()
    with RawConnection(*node.portals[0]) as conn:
        assert conn.login(INITIATOR, node.iqn).status == LoginStatus.AUTHENTICATION_FAILURE


def test_mutual_chap_detects_an_impostor_target(
        reference_target_factory: ReferenceTargetFactory) -> None:
    node = chap_node(reference_target_factory, mutual=True)
    expected = ChapCredentials("lun-target", b"some-other-secret")
    chap = ChapInitiator(ChapCredentials("hv-node", b"initiator-secret-1"), target=expected)
    with RawConnection(*node.portals[0]) as conn, pytest.raises(AuthenticationError):
        conn.login(INITIATOR, node.iqn, chap=chap)


def test_long_send_targets_answer_spans_continuation_pdus(
        reference_target_factory: ReferenceTargetFactory) -> None:
    many = tuple(lun_target(f"iqn.2026-11.org.splitbrain.test:a-rather-long-target-name-{i:03d}",
                            luns=0) for i in range(40))
    node = reference_target_factory.start(name="many", targets=many)
    with RawConnection(*node.portals[0]) as conn:
        assert conn.login(INITIATOR, extra=(("MaxRecvDataSegmentLength", "512"),)).ok
        found = conn.text([("SendTargets", "All")])
        assert conn.responses > 5   # the answer did not fit one 512-byte segment
        assert found["TargetName"] == [t["iqn"] for t in many]
        assert len(found["TargetAddress"]) == 2 * len(many)


@pytest.mark.parametrize(("user_secret", "mutual_secret", "ok"), [
    ("initiator-secret-1", None, True),
    ("wrong-secret-0000", None, False),
    ("initiator-secret-1", "target-secret-22", True),
    ("initiator-secret-1", "an-impostor-secret", False),
], ids=["one-way", "wrong-secret", "mutual", "mutual-impostor"])
def test_chap_interoperates_with_libiscsi(reference_target_factory: ReferenceTargetFactory,
                                          user_secret: str, mutual_secret: str | None,
                                          ok: bool) -> None:
    if shutil.which("iscsi-inq") is None:
        pytest.skip("needs the Debian package libiscsi-bin (iscsi-inq)")
    node = chap_node(reference_target_factory, mutual=True)
    host, port = node.portals[0]
    url = f"iscsi://hv-node%{user_secret}@{host}:{port}/{node.iqn}/0"
    if mutual_secret is not None:
        url += f"?target_user=lun-target&target_password={mutual_secret}"
    done = subprocess.run(["iscsi-inq", url], capture_output=True, text=True, timeout=60,
                          check=False)
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    if ok:
        assert "DIRECT_ACCESS" in done.stdout


def test_ipv6_portal_is_discovered_and_served(
        reference_target_factory: ReferenceTargetFactory) -> None:
    import socket as socket_module

    try:
        with socket_module.socket(socket_module.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("IPv6 loopback (::1) is not available on this host")
    node = reference_target_factory.start(name="v6", addresses=("::1", "127.0.0.1"))
    host, port = node.portals[0]
    assert host == "::1"
    with RawConnection(host, port) as conn:
        assert conn.login(INITIATOR).ok
        found = conn.text([("SendTargets", "All")])
        assert f"[::1]:{port},1" in found["TargetAddress"]
    with RawConnection(host, port) as conn:
        assert conn.login(INITIATOR, node.iqn).ok
        assert conn.nop(b"v6").data == b"v6"


def test_login_text_split_across_pdus(reference_target: ReferenceTarget) -> None:
    """Login keys may span PDUs with the C bit set (RFC 7143 section 6.6)."""
    from harness.iscsi import keys
    from harness.iscsi.codes import Stage

    with RawConnection(*reference_target.portals[0]) as conn:
        text = keys.encode_keys([("InitiatorName", INITIATOR), ("SessionType", "Normal"),
                                 ("TargetName", reference_target.iqn), ("AuthMethod", "None")])
        first = conn._login_pdu(Stage.SECURITY_NEGOTIATION, Stage.LOGIN_OPERATIONAL_NEGOTIATION,
                                [], 0, 0)
        first.transit, first.continue_, first.data = False, True, text[:20]   # mid-key
        partial = conn._login_exchange(first)
        assert partial.ok and partial.keys == {} and not partial.response.transit
        rest = conn._login_pdu(Stage.SECURITY_NEGOTIATION, Stage.LOGIN_OPERATIONAL_NEGOTIATION,
                               [], 0, 0)
        rest.data = text[20:]
        answer = conn._login_exchange(rest)
        assert answer.ok and answer.response.transit
        assert answer.keys["AuthMethod"] == "None"
        final = conn._login_exchange(conn._login_pdu(
            Stage.LOGIN_OPERATIONAL_NEGOTIATION, Stage.FULL_FEATURE_PHASE,
            [("HeaderDigest", "None")], 0, 0))
        assert final.ok and final.tsih != 0
        assert conn.nop(b"split-login").data == b"split-login"
