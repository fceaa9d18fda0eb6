"""The login walk (``harness.initiator.login.run_login``) against a scripted target.

The scripted target answers with the harness's own target-side negotiation and
CHAP (``harness.iscsi``), so these tests need no socket; the same walk is proven
against tgtd in tests/integration/initiator.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

import pytest

from harness.initiator.errors import LoginFailed, LoginRejected, ProtocolError
from harness.initiator.login import ChapSecrets, LoginSpec, run_login
from harness.iscsi.chap import ChapCredentials, ChapTarget
from harness.iscsi.codes import LoginStatus
from harness.iscsi.initiator_pdus import LoginRequest
from harness.iscsi.keys import decode_keys, encode_keys
from harness.iscsi.negotiation import Negotiation
from harness.iscsi.target_pdus import LoginResponse

INITIATOR = "iqn.2026-11.test:initiator"
TARGET = "iqn.2026-11.test:target"
USER, SECRET = "alice", b"alice-secret-123"
TARGET_USER, TARGET_SECRET = "target", b"target-secret-45"


@dataclass
class ScriptedTarget:
    """A target's login side: negotiation, optional CHAP, a log of what it saw."""

    chap: bool = False
    mutual_secret: bytes = TARGET_SECRET
    refuse: int | None = None  # (class << 8) | detail to answer the first request with
    redirect: str | None = None
    csg_override: int | None = None
    seen: list[LoginRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.negotiation = Negotiation(role="target", preferences={
            "AuthMethod": "CHAP" if self.chap else "None", "InitialR2T": "Yes",
            "MaxRecvDataSegmentLength": "65536", "MaxBurstLength": "131072"})
        self.authenticator = ChapTarget({USER: SECRET},
                                        credentials=ChapCredentials(TARGET_USER,
                                                                    self.mutual_secret))
        self.stat_sn = 7
        self.chap_state = 0

    async def exchange(self, request: LoginRequest) -> LoginResponse:
        self.seen.append(request)
        answers: list[tuple[str, str]] = []
        status = 0
        pairs = decode_keys(request.data)
        if self.refuse is not None:
            status = self.refuse
        else:
            answers = self.negotiation.receive(pairs)
            security = dict(self.negotiation.security)
            if request.csg == 0 and self.chap:
                if self.chap_state == 0 and "CHAP_A" in security:
                    answers += self.authenticator.challenge(security)
                    self.chap_state = 1
                elif self.chap_state == 1 and "CHAP_R" in security:
                    try:
                        answers += self.authenticator.verify(security)
                        self.chap_state = 2
                    except Exception:
                        status = LoginStatus.AUTHENTICATION_FAILURE
            if request.csg == 1:
                answers += self.negotiation.offer(["MaxRecvDataSegmentLength"])
        transit = request.transit and status == 0 and (
            not self.chap or request.csg != 0 or self.chap_state == 2)
        self.stat_sn += 1
        data = encode_keys(answers)
        if self.redirect:
            status, data = LoginStatus.TARGET_MOVED_TEMPORARILY, encode_keys(
                [("TargetAddress", self.redirect)])
        return LoginResponse(
            transit=transit, csg=request.csg if self.csg_override is None else self.csg_override,
            nsg=request.nsg if transit else 0, isid=request.isid, tsih=0x1234 if transit else 0,
            initiator_task_tag=request.initiator_task_tag, stat_sn=self.stat_sn,
            exp_cmd_sn=request.cmd_sn, max_cmd_sn=request.cmd_sn + 31,
            status_class=status >> 8, status_detail=status & 0xFF, data=data)


def spec(chap: ChapSecrets | None = None, **extra: object) -> LoginSpec:
    return LoginSpec(initiator_name=INITIATOR, target_name=TARGET, isid=0x80_1234_5678_9A,
                     cmd_sn=100, initiator_task_tag=5, chap=chap, **extra)  # type: ignore[arg-type]


def login(target: ScriptedTarget, login_spec: LoginSpec):  # type: ignore[no-untyped-def]
    return asyncio.run(run_login(login_spec, target.exchange, where="127.0.0.1:3260"))


def test_login_without_chap_negotiates_operational_keys() -> None:
    target = ScriptedTarget()
    result = login(target, spec())
    assert result.tsih == 0x1234
    assert result.parameters.initial_r2t is True  # Yes OR No
    assert result.parameters.max_burst_length == 131072  # the smaller of the two
    assert result.parameters.peer_max_recv_data_segment_length == 65536
    assert result.exp_stat_sn == target.stat_sn + 1
    assert (result.exp_cmd_sn, result.max_cmd_sn) == (100, 131)
    first = dict(decode_keys(target.seen[0].data))
    assert first["InitiatorName"] == INITIATOR and first["TargetName"] == TARGET
    assert first["AuthMethod"] == "None" and first["SessionType"] == "Normal"
    assert all(r.immediate and r.cmd_sn == 100 for r in target.seen)
    assert [r.csg for r in target.seen] == [0, 1]


def test_one_way_and_mutual_chap() -> None:
    one_way = ScriptedTarget(chap=True)
    assert not login(one_way, spec(ChapSecrets(USER, SECRET.decode()))).mutual_chap
    mutual = ScriptedTarget(chap=True)
    result = login(mutual, spec(ChapSecrets(USER, SECRET.decode(), TARGET_USER,
                                            TARGET_SECRET.decode())))
    assert result.mutual_chap
    sent = [dict(decode_keys(r.data)) for r in mutual.seen]
    assert any("CHAP_C" in keys and "CHAP_R" in keys for keys in sent)  # our challenge


def test_wrong_secret_is_login_rejected_with_status() -> None:
    target = ScriptedTarget(chap=True)
    with pytest.raises(LoginRejected, match="authentication failed") as info:
        login(target, spec(ChapSecrets(USER, "wrong-secret-000")))
    assert (info.value.status_class, info.value.status_detail) == (2, 1)
    assert TARGET in str(info.value)


def test_target_failing_mutual_chap_is_login_failed() -> None:
    target = ScriptedTarget(chap=True, mutual_secret=b"impostor-secret-9")
    with pytest.raises(LoginFailed, match="mutual CHAP"):
        login(target, spec(ChapSecrets(USER, SECRET.decode(), TARGET_USER,
                                       TARGET_SECRET.decode())))


def test_target_without_chap_refuses_our_chap_offer() -> None:
    with pytest.raises(LoginFailed, match="does not accept CHAP"):
        login(ScriptedTarget(chap=False), spec(ChapSecrets(USER, SECRET.decode())))


@pytest.mark.parametrize(("code", "words"), [
    (LoginStatus.NOT_FOUND, "target not found"),
    (LoginStatus.AUTHORIZATION_FAILURE, "not authorized"),
    (LoginStatus.SERVICE_UNAVAILABLE, "service unavailable"),
])
def test_refusals_name_their_reason(code: int, words: str) -> None:
    with pytest.raises(LoginRejected, match=words):
        login(ScriptedTarget(refuse=code), spec())


def test_redirect_names_the_new_address() -> None:
    with pytest.raises(LoginRejected, match=re.escape("10.0.0.9:3260")) as info:
        login(ScriptedTarget(redirect="10.0.0.9:3260,1"), spec())
    assert info.value.redirect == "10.0.0.9:3260,1"


def test_wrong_stage_in_response_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="stage"):
        login(ScriptedTarget(csg_override=1), spec())


def test_target_that_never_transits_is_given_up_on() -> None:
    class Stubborn(ScriptedTarget):
        async def exchange(self, request: LoginRequest) -> LoginResponse:
            response = await super().exchange(request)
            response.transit, response.nsg = False, 0
            return response

    with pytest.raises(LoginFailed, match="did not finish"):
        login(Stubborn(), spec())


def test_discovery_offers_only_discovery_keys() -> None:
    target = ScriptedTarget()
    login(target, LoginSpec(initiator_name=INITIATOR, target_name=None, isid=1))
    offered = {k for r in target.seen for k, _ in decode_keys(r.data)}
    assert "TargetName" not in offered and "MaxBurstLength" not in offered
    assert dict(decode_keys(target.seen[0].data))["SessionType"] == "Discovery"


def test_login_text_split_over_pdus_with_the_c_bit() -> None:
    """The target sends its answer in 16-byte pieces (C bit set on all but the last);
    the initiator must ask for each continuation with an empty Login Request and
    reassemble the keys."""

    class Chatty(ScriptedTarget):
        pending: list[LoginResponse] = []
        continuations = 0

        async def exchange(self, request: LoginRequest) -> LoginResponse:
            if self.pending:
                assert not request.data and not request.transit  # a continuation request
                self.continuations += 1
                return self.pending.pop(0)
            whole = await super().exchange(request)
            pieces = [whole.data[i : i + 16] for i in range(0, len(whole.data), 16)] or [b""]
            responses = []
            for index, piece in enumerate(pieces):
                last = index == len(pieces) - 1
                responses.append(LoginResponse(
                    transit=whole.transit and last, continue_=not last, csg=whole.csg,
                    nsg=whole.nsg if last else 0, isid=whole.isid, tsih=whole.tsih,
                    initiator_task_tag=whole.initiator_task_tag, stat_sn=whole.stat_sn,
                    exp_cmd_sn=whole.exp_cmd_sn, max_cmd_sn=whole.max_cmd_sn, data=piece))
            self.pending = responses[1:]
            return responses[0]

    target = Chatty()
    result = login(target, spec())
    assert result.parameters.max_burst_length == 131072
    assert result.parameters.peer_max_recv_data_segment_length == 65536
    assert target.continuations >= 3
