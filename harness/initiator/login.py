"""The initiator's side of the iSCSI login phase (RFC 7143 sections 6 and 12).

The model: a login is a sequence of Login Request/Response exchanges that walks
the stages security negotiation (CSG 0) -> operational negotiation (CSG 1) ->
full feature phase (NSG 3). In the security stage the initiator declares its
name, the session type and the target, and offers ``AuthMethod`` (``CHAP`` when
it has credentials, else ``None``); with CHAP it runs the exchange of
:mod:`harness.iscsi.chap` (one-way, or mutual when it knows the target's
secret). In the operational stage it offers its preferences and answers the
target's offers through :class:`harness.iscsi.negotiation.Negotiation`. A
response with a non-zero Status-Class ends the login with ``LoginRejected``;
an answer this side cannot accept ends it with ``LoginFailed``.

``run_login`` does no I/O itself: the session passes an ``exchange`` coroutine
that sends one Login Request and returns the matching Login Response (with the
timeout applied), so the walk is testable without a socket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from harness.initiator.errors import LoginFailed, LoginRejected
from harness.iscsi.chap import ChapAlgorithm, ChapCredentials, ChapInitiator
from harness.iscsi.codes import LoginStatusClass, Stage
from harness.iscsi.errors import NegotiationError, ProtocolError
from harness.iscsi.initiator_pdus import LoginRequest
from harness.iscsi.keys import SessionParameters, TextAssembler, decode_keys, encode_keys
from harness.iscsi.negotiation import Negotiation
from harness.iscsi.target_pdus import LoginResponse

MAX_LOGIN_EXCHANGES = 32
"""A login that needs more round trips than this is a target stuck in a loop."""

DEFAULT_OPERATIONAL: dict[str, str] = {
    "HeaderDigest": "None",
    "DataDigest": "None",
    "MaxConnections": "1",
    "InitialR2T": "No",
    "ImmediateData": "Yes",
    "MaxRecvDataSegmentLength": "262144",
    "MaxBurstLength": "16776192",
    "FirstBurstLength": "262144",
    "DefaultTime2Wait": "0",
    "DefaultTime2Retain": "0",
    "MaxOutstandingR2T": "1",
    "DataPDUInOrder": "Yes",
    "DataSequenceInOrder": "Yes",
    "ErrorRecoveryLevel": "0",
}
"""What a Normal session offers unless the caller overrides a key."""

DISCOVERY_OPERATIONAL = ("HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength",
                         "DefaultTime2Wait", "DefaultTime2Retain")
"""The operational keys that matter in a Discovery session."""


@dataclass(frozen=True)
class ChapSecrets:
    """CHAP for a login: the initiator's account, and the target's for mutual CHAP.

    ``algorithms`` are offered in order. MD5 alone by default: offered ``CHAP_A=7,5``,
    tgtd 1.0.85 picks SHA-256 and then refuses the SHA-256 response (status 0x0200),
    so offering more than MD5 is opt-in until that is explained.
    """

    user: str
    secret: str = field(repr=False)
    target_user: str | None = None
    target_secret: str | None = field(default=None, repr=False)
    algorithms: tuple[ChapAlgorithm, ...] = (ChapAlgorithm.MD5,)

    @property
    def mutual(self) -> bool:
        return self.target_secret is not None


@dataclass
class LoginSpec:
    """What to log in to and how."""

    initiator_name: str
    target_name: str | None  # None for a Discovery session
    isid: int
    tsih: int = 0
    cid: int = 0
    cmd_sn: int = 1
    initiator_task_tag: int = 0
    chap: ChapSecrets | None = None
    preferences: dict[str, str] = field(default_factory=dict)
    initiator_alias: str | None = None

    @property
    def discovery(self) -> bool:
        return self.target_name is None


@dataclass
class LoginResult:
    """What the login agreed: parameters, TSIH and the sequence numbers to go on with."""

    parameters: SessionParameters
    agreed: dict[str, str]
    tsih: int
    exp_stat_sn: int
    exp_cmd_sn: int
    max_cmd_sn: int
    target_portal_group_tag: int | None
    mutual_chap: bool


Exchange = Callable[[LoginRequest], Awaitable[LoginResponse]]


def _operational_preferences(spec: LoginSpec) -> dict[str, str]:
    prefs = dict(DEFAULT_OPERATIONAL)
    prefs.update(spec.preferences)
    if spec.discovery:
        prefs = {k: v for k, v in prefs.items() if k in DISCOVERY_OPERATIONAL}
    return prefs


async def run_login(spec: LoginSpec, exchange: Exchange, *, where: str) -> LoginResult:
    """Walk the login stages with ``exchange``; raise LoginRejected/LoginFailed/ProtocolError."""
    label = spec.target_name or "discovery"
    prefs = _operational_preferences(spec)
    chap: ChapInitiator | None = None
    if spec.chap is not None:
        target_creds = None
        if spec.chap.mutual:
            assert spec.chap.target_secret is not None
            target_creds = ChapCredentials(spec.chap.target_user or "", spec.chap.target_secret)
        chap = ChapInitiator(ChapCredentials(spec.chap.user, spec.chap.secret),
                             target=target_creds, algorithms=spec.chap.algorithms)
    negotiation = Negotiation(
        role="initiator",
        preferences={**prefs, "AuthMethod": "CHAP" if chap is not None else "None"})

    pairs: list[tuple[str, str]] = [("InitiatorName", spec.initiator_name)]
    if spec.initiator_alias:
        pairs.append(("InitiatorAlias", spec.initiator_alias))
    pairs.append(("SessionType", "Discovery" if spec.discovery else "Normal"))
    if spec.target_name is not None:
        pairs.append(("TargetName", spec.target_name))
    pairs += negotiation.offer(["AuthMethod"])

    stage = Stage.SECURITY_NEGOTIATION
    chap_step = 0  # 0: AuthMethod offered, 1: CHAP_A sent, 2: CHAP_R sent, 3: verified
    exp_stat_sn = 0
    for _ in range(MAX_LOGIN_EXCHANGES):
        if stage is Stage.SECURITY_NEGOTIATION:
            transit = chap is None or chap_step >= 2
            nsg = Stage.LOGIN_OPERATIONAL_NEGOTIATION
        else:
            transit, nsg = True, Stage.FULL_FEATURE_PHASE
        response, received = await _exchange_all(
            exchange, spec, stage, transit, nsg, pairs, exp_stat_sn, where, label)
        exp_stat_sn = (response.stat_sn + 1) & 0xFFFFFFFF
        if response.csg != stage:
            raise ProtocolError(
                f"login to {label} at {where}: the target answered in stage {response.csg} "
                f"a request in stage {int(stage)}; it breaks RFC 7143")
        try:
            pairs = negotiation.receive(received)
            if chap is not None and stage is Stage.SECURITY_NEGOTIATION:
                chap_step = _chap_step(chap, chap_step, negotiation, response, label, where,
                                       pairs)
        except NegotiationError as exc:  # includes AuthenticationError
            raise LoginFailed(f"login to {label} at {where} failed: {exc}") from None
        if not response.transit:
            continue
        if response.nsg == Stage.FULL_FEATURE_PHASE:
            break
        if response.nsg != Stage.LOGIN_OPERATIONAL_NEGOTIATION:
            raise ProtocolError(
                f"login to {label} at {where}: the target asked for next stage "
                f"{response.nsg}, which is not a login stage; it breaks RFC 7143")
        if stage is Stage.SECURITY_NEGOTIATION:
            if chap is not None and chap_step < 3:
                raise LoginFailed(
                    f"login to {label} at {where}: the target left security negotiation "
                    "before CHAP completed; check the target's CHAP setup")
            stage = Stage.LOGIN_OPERATIONAL_NEGOTIATION
            pairs += negotiation.offer(list(prefs))
    else:
        raise LoginFailed(
            f"login to {label} at {where} did not finish within {MAX_LOGIN_EXCHANGES} "
            "exchanges; the target keeps negotiating")
    if chap is not None and chap_step < 3:
        raise LoginFailed(f"login to {label} at {where}: the target skipped CHAP; check "
                          "the target's CHAP setup")
    params = negotiation.parameters
    return LoginResult(
        parameters=params,
        agreed=dict(negotiation.agreed),
        tsih=response.tsih,
        exp_stat_sn=exp_stat_sn,
        exp_cmd_sn=response.exp_cmd_sn,
        max_cmd_sn=response.max_cmd_sn,
        target_portal_group_tag=params.target_portal_group_tag,
        mutual_chap=chap is not None and chap.mutual,
    )


def _chap_step(chap: ChapInitiator, step: int, negotiation: Negotiation,
               response: LoginResponse, label: str, where: str,
               pairs: list[tuple[str, str]]) -> int:
    """Advance the CHAP exchange by one response; appends the keys to send to ``pairs``."""
    if step == 0:
        method = negotiation.agreed.get("AuthMethod")
        if method != "CHAP" or "AuthMethod" in negotiation.rejected:
            raise LoginFailed(
                f"login to {label} at {where}: the target does not accept CHAP (it answered "
                f"AuthMethod={negotiation.rejected.get('AuthMethod', method)}); log in without "
                "CHAP or enable CHAP on the target")
        pairs += chap.start()
        return 1
    if step == 1:
        pairs += chap.respond(negotiation.security)
        return 2
    if step == 2 and response.transit:
        chap.verify(negotiation.security)
        return 3
    return step


async def _exchange_all(exchange: Exchange, spec: LoginSpec, stage: Stage, transit: bool,
                        nsg: Stage, pairs: list[tuple[str, str]], exp_stat_sn: int, where: str,
                        target_label: str) -> tuple[LoginResponse, list[tuple[str, str]]]:
    """Send ``pairs`` (split over several PDUs with the C bit if needed) and collect the
    whole answer (asking for continuations while the target sets C)."""
    text = encode_keys(pairs)
    chunks = [text[i : i + 8192] for i in range(0, len(text), 8192)] or [b""]
    assembler = TextAssembler()
    for index, chunk in enumerate(chunks):
        more = index < len(chunks) - 1
        response = await exchange(LoginRequest(
            transit=transit and not more, continue_=more, csg=stage, nsg=nsg if transit else 0,
            isid=spec.isid, tsih=spec.tsih, initiator_task_tag=spec.initiator_task_tag,
            cid=spec.cid, cmd_sn=spec.cmd_sn, exp_stat_sn=exp_stat_sn, data=chunk))
        _check_status(response, spec, where, target_label)
        exp_stat_sn = (response.stat_sn + 1) & 0xFFFFFFFF
        if more and response.data:
            raise ProtocolError(f"login to {target_label} at {where}: the target answered a "
                                "continued Login Request with keys; it breaks RFC 7143")
    while True:
        received = assembler.feed(response.data, continue_=response.continue_)
        if received is not None:
            return response, received
        response = await exchange(LoginRequest(
            transit=False, csg=stage, nsg=0, isid=spec.isid, tsih=spec.tsih,
            initiator_task_tag=spec.initiator_task_tag, cid=spec.cid, cmd_sn=spec.cmd_sn,
            exp_stat_sn=exp_stat_sn))
        _check_status(response, spec, where, target_label)
        exp_stat_sn = (response.stat_sn + 1) & 0xFFFFFFFF


def _check_status(response: LoginResponse, spec: LoginSpec, where: str,
                  target_label: str) -> None:
    if response.status_class == LoginStatusClass.SUCCESS:
        if response.initiator_task_tag != spec.initiator_task_tag:
            raise ProtocolError(
                f"login to {target_label} at {where}: Login Response carries task tag "
                f"0x{response.initiator_task_tag:08x}, not ours; the target breaks RFC 7143")
        return
    redirect = None
    if response.status_class == LoginStatusClass.REDIRECTION and response.data:
        try:
            redirect = dict(decode_keys(response.data)).get("TargetAddress")
        except ProtocolError:
            redirect = None
    raise LoginRejected(target_label, where, response.status_class, response.status_detail,
                        redirect=redirect)
