"""The target side of the login phase (RFC 7143 sections 6 and 11.12-11.13).

Model: a ``LoginNegotiation`` belongs to one connection and consumes its Login
Requests one at a time, answering each with a Login Response. It walks the
stages security (CSG 0) -> operational (CSG 1) -> full feature (3):

- the first request names the initiator, the session type and (for a normal
  session) the target; an unknown target is *not found*, an initiator outside the
  target's ACL is an *authorization failure*;
- a target with CHAP configured demands ``AuthMethod=CHAP`` and runs the exchange
  through ``harness.iscsi.chap`` (one-way, or mutual when configured); without
  it, a login that skips security is refused as an *authentication failure*;
- operational keys are answered with ``harness.iscsi.keys.negotiate`` from the
  node's offer (``SessionLimits``), and the agreed values become the session's
  ``OperationalParameters`` and the connection's digest and segment settings;
- on the transit to full feature phase a TSIH is assigned; a login with TSIH 0
  for a nexus that already has a session *reinstates* it.

Text requests of the full feature phase (SendTargets) are answered by
``text_response_pairs``: a discovery session lists every target the initiator may
see with every portal of this node.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.iscsi import codec, keys
from harness.iscsi.codes import LoginStatus, Stage
from harness.iscsi.errors import AuthenticationError, NegotiationError, ProtocolError

if TYPE_CHECKING:
    from harness.target.connection import Connection
    from harness.target.node import Node
    from harness.target.portal import Portal
    from harness.target.session import Session
    from harness.target.targets import ExportedTarget


@dataclass
class OperationalParameters:
    """What the data path needs of the agreed session keys."""

    initial_r2t: bool = True
    immediate_data: bool = True
    first_burst_length: int = 65536
    max_burst_length: int = 262144
    max_outstanding_r2t: int = 1
    error_recovery_level: int = 0
    data_pdu_in_order: bool = True
    data_sequence_in_order: bool = True


class LoginRefused(Exception):
    def __init__(self, status: LoginStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class LoginNegotiation:
    """One connection's login phase, driven by its Login Requests."""

    def __init__(self, node: Node, portal: Portal, conn: Connection) -> None:
        self.node, self.portal, self.conn = node, portal, conn
        self.limits = node.limits
        self.session: Session | None = None
        self.failed = False
        self.failure = ""
        self.first: codec.LoginRequest | None = None
        self.target: ExportedTarget | None = None
        self.session_type = "Normal"
        self.initiator_name = ""
        self.initiator_alias = ""
        self.agreed: dict[str, str] = {}
        self.authenticated = False
        self.auth_required = False
        self.chap: Any = None
        self.stage = Stage.SECURITY_NEGOTIATION
        self.text = keys.TextAssembler()
        self.sent_target_info = False
        self.declared_mrdsl = False
        self.digests = (False, False)

    # -- one step -------------------------------------------------------------------------

    def step(self, req: codec.LoginRequest) -> codec.LoginResponse:
        """The Login Response to ``req`` (sets ``failed`` or ``session`` when done)."""
        try:
            return self._step(req)
        except LoginRefused as refusal:
            return self._refuse(req, refusal.status, str(refusal))
        except AuthenticationError as exc:
            return self._refuse(req, LoginStatus.AUTHENTICATION_FAILURE, str(exc))
        except (NegotiationError, ProtocolError) as exc:
            return self._refuse(req, LoginStatus.INITIATOR_ERROR, str(exc))

    def _refuse(self, req: codec.LoginRequest, status: LoginStatus,
                reason: str) -> codec.LoginResponse:
        self.failed = True
        self.failure = f"{status.name.lower()}: {reason}"
        return codec.LoginResponse(csg=req.csg, nsg=0, isid=req.isid, tsih=0,
                                   initiator_task_tag=req.initiator_task_tag,
                                   stat_sn=self.conn.take_stat_sn(), exp_cmd_sn=req.cmd_sn,
                                   max_cmd_sn=req.cmd_sn, status_class=status >> 8,
                                   status_detail=status & 0xFF)

    def _step(self, req: codec.LoginRequest) -> codec.LoginResponse:
        if self.first is None:
            self._first_request(req)
        elif req.isid != self.first.isid or req.tsih != self.first.tsih or \
                req.cid != self.first.cid:
            raise LoginRefused(LoginStatus.INITIATOR_ERROR,
                               "ISID, TSIH or CID changed during the login")
        if req.csg not in (Stage.SECURITY_NEGOTIATION, Stage.LOGIN_OPERATIONAL_NEGOTIATION) or \
                (req.transit and req.nsg not in (Stage.LOGIN_OPERATIONAL_NEGOTIATION,
                                                 Stage.FULL_FEATURE_PHASE)) or \
                (req.transit and req.nsg <= req.csg):
            raise LoginRefused(LoginStatus.INITIATOR_ERROR,
                               f"illegal stage transition CSG={req.csg} NSG={req.nsg}")
        if req.csg < self.stage:
            raise LoginRefused(LoginStatus.INITIATOR_ERROR, "login went back a stage")
        self.stage = Stage(req.csg)
        pairs = self.text.feed(req.data, continue_=req.continue_)
        if pairs is None:  # more text follows: acknowledge with an empty response
            return self._response(req, b"", transit=False)
        answer: list[tuple[str, str]] = []
        if req.csg == Stage.SECURITY_NEGOTIATION:
            self._security(pairs, answer)
        else:
            if self.auth_required and not self.authenticated:
                raise LoginRefused(LoginStatus.AUTHENTICATION_FAILURE,
                                   "this target requires CHAP; the initiator skipped security")
            self._operational(pairs, answer)
        self._announce_target(answer)
        transit = bool(req.transit)
        if req.csg == Stage.SECURITY_NEGOTIATION and self.auth_required and \
                not self.authenticated:
            transit = False
        if transit and req.nsg == Stage.FULL_FEATURE_PHASE:
            if not self.declared_mrdsl and req.csg == Stage.LOGIN_OPERATIONAL_NEGOTIATION:
                answer.append(("MaxRecvDataSegmentLength",
                               str(self.limits.max_recv_data_segment_length)))
                self.declared_mrdsl = True
            return self._complete(req, answer)
        return self._response(req, keys.encode_keys(answer), transit=transit)

    def _first_request(self, req: codec.LoginRequest) -> None:
        self.first = req
        if req.version_min > 0:
            raise LoginRefused(LoginStatus.UNSUPPORTED_VERSION,
                               f"versions {req.version_min}-{req.version_max}; only 0 exists")
        self.conn.cid = req.cid
        self.conn.stat_sn = req.exp_stat_sn
        if req.continue_:
            # The names may arrive in a later segment: identified once the text is whole.
            return
        self._identify(dict(keys.decode_keys(req.data)))

    def _identify(self, pairs: dict[str, str]) -> None:
        name = pairs.get("InitiatorName", "")
        if not name:
            raise LoginRefused(LoginStatus.MISSING_PARAMETER, "no InitiatorName")
        self.initiator_name = name
        self.initiator_alias = pairs.get("InitiatorAlias", "")
        self.session_type = pairs.get("SessionType", "Normal")
        if self.session_type not in ("Normal", "Discovery"):
            raise LoginRefused(LoginStatus.SESSION_TYPE_NOT_SUPPORTED,
                               f"SessionType={self.session_type}")
        if self.session_type == "Normal":
            target_name = pairs.get("TargetName", "")
            if not target_name:
                raise LoginRefused(LoginStatus.MISSING_PARAMETER, "no TargetName")
            target = self.node.targets.get(target_name)
            if target is None:
                raise LoginRefused(LoginStatus.NOT_FOUND, f"no target {target_name}")
            if not target.config.admits(name):
                raise LoginRefused(LoginStatus.AUTHORIZATION_FAILURE,
                                   f"{name} is not in the ACL of {target_name}")
            self.target = target
            self.auth_required = target.config.chap is not None
            if self.auth_required:
                from harness.target.authentication import TargetChap

                self.chap = TargetChap(target.config.chap)

    # -- stages ---------------------------------------------------------------------------

    def _security(self, pairs: list[tuple[str, str]], answer: list[tuple[str, str]]) -> None:
        if not self.initiator_name:
            self._identify(dict(pairs))
        chap_keys = [(k, v) for k, v in pairs if k in keys.SECURITY_KEYS]
        for key, value in pairs:
            if key == "AuthMethod":
                own = "CHAP" if self.auth_required else "None"
                chosen = keys.negotiate(key, value, own)
                if chosen == keys.REJECT or chosen is None:
                    raise LoginRefused(LoginStatus.AUTHENTICATION_FAILURE,
                                       f"initiator offers AuthMethod={value}, target needs {own}")
                answer.append((key, chosen))
                self.agreed[key] = chosen
                if chosen == "None":
                    self.authenticated = True
            elif key in keys.SECURITY_KEYS or key in _IDENTITY_KEYS:
                continue
            else:
                self._answer_operational(key, value, answer)
        if chap_keys:
            if self.chap is None or self.agreed.get("AuthMethod") != "CHAP":
                raise LoginRefused(LoginStatus.INITIATOR_ERROR, "CHAP keys without AuthMethod")
            done, reply = self.chap.step(dict(chap_keys))
            answer.extend(reply)
            if done:
                self.authenticated = True
        elif "AuthMethod" not in self.agreed and not self.auth_required:
            self.authenticated = True

    def _operational(self, pairs: list[tuple[str, str]], answer: list[tuple[str, str]]) -> None:
        if not self.initiator_name:
            self._identify(dict(pairs))
        for key, value in pairs:
            if key in _IDENTITY_KEYS:
                continue
            if key in keys.SECURITY_KEYS or key == "AuthMethod":
                raise LoginRefused(LoginStatus.INITIATOR_ERROR,
                                   f"{key} outside the security stage")
            self._answer_operational(key, value, answer)

    def _answer_operational(self, key: str, value: str,
                            answer: list[tuple[str, str]]) -> None:
        limits = self.limits
        own = {
            "HeaderDigest": "CRC32C,None", "DataDigest": "CRC32C,None",
            "MaxConnections": "1", "InitialR2T": "No", "ImmediateData": "Yes",
            "MaxBurstLength": str(limits.max_burst_length),
            "FirstBurstLength": str(limits.first_burst_length),
            "DefaultTime2Wait": "2", "DefaultTime2Retain": "0",
            "MaxOutstandingR2T": "8", "DataPDUInOrder": "Yes", "DataSequenceInOrder": "Yes",
            "ErrorRecoveryLevel": "0", "iSCSIProtocolLevel": "1",
            "TaskReporting": "RFC3720",
        }
        if key == "MaxRecvDataSegmentLength":
            keys.validate(key, value)
            self.agreed[key] = value
            if not self.declared_mrdsl:
                answer.append((key, str(limits.max_recv_data_segment_length)))
                self.declared_mrdsl = True
            return
        context = {"SessionType": self.session_type, **self.agreed}
        reply = keys.negotiate(key, value, own.get(key), context=context)
        if reply is None:  # declarative key from the initiator (alias, ...)
            return
        answer.append((key, reply))
        if reply not in keys.SPECIAL_VALUES:  # otherwise the RFC default stays in force
            self.agreed[key] = reply

    def _announce_target(self, answer: list[tuple[str, str]]) -> None:
        if self.sent_target_info or self.target is None:
            return
        self.sent_target_info = True
        answer.append(("TargetPortalGroupTag", str(self.portal.tpgt)))
        if self.target.config.alias:
            answer.append(("TargetAlias", self.target.config.alias))

    # -- responses and completion ---------------------------------------------------------

    def _response(self, req: codec.LoginRequest, data: bytes, *, transit: bool,
                  tsih: int = 0) -> codec.LoginResponse:
        nsg = req.nsg if transit else 0
        depth = self.limits.queue_depth
        return codec.LoginResponse(transit=transit, csg=req.csg, nsg=nsg, isid=req.isid,
                                   tsih=tsih or req.tsih,
                                   initiator_task_tag=req.initiator_task_tag,
                                   stat_sn=self.conn.take_stat_sn(), exp_cmd_sn=req.cmd_sn,
                                   max_cmd_sn=(req.cmd_sn + depth - 1) & 0xFFFFFFFF,
                                   data=data)

    def _complete(self, req: codec.LoginRequest,
                  answer: list[tuple[str, str]]) -> codec.LoginResponse:
        from harness.target.session import Session

        if not self.initiator_name:
            raise LoginRefused(LoginStatus.MISSING_PARAMETER, "no InitiatorName")
        if self.auth_required and not self.authenticated:
            raise LoginRefused(LoginStatus.AUTHENTICATION_FAILURE, "CHAP not completed")
        table = self.node.sessions
        conn = self.conn
        agreed = self.agreed
        # Digests start with the first PDU after the final Login Response.
        self.digests = (agreed.get("HeaderDigest") == "CRC32C",
                        agreed.get("DataDigest") == "CRC32C")
        conn.max_send_dsl = keys.parse_number(agreed.get("MaxRecvDataSegmentLength", "8192"))
        conn.max_recv_dsl = self.limits.max_recv_data_segment_length if self.declared_mrdsl \
            else 8192
        target_iqn = self.target.config.iqn if self.target else None
        if req.tsih:
            session = table.by_tsih(req.tsih)
            if session is None or session.isid != req.isid or \
                    session.initiator_name.lower() != self.initiator_name.lower():
                raise LoginRefused(LoginStatus.SESSION_DOES_NOT_EXIST,
                                   f"no session with TSIH {req.tsih}")
            old = [c for c in session.connections if c.cid == req.cid]
            if not old:
                raise LoginRefused(LoginStatus.TOO_MANY_CONNECTIONS,
                                   "MaxConnections is 1 for this target")
            session.attach(conn)       # connection reinstatement: the session lives on
            for c in old:
                session.abort_tasks(lambda t, c=c: t.conn is c)
                c.abort("connection reinstated")
            self.session = session
            return self._response(req, keys.encode_keys(answer), transit=True,
                                  tsih=session.tsih)
        old_session = table.find(self.initiator_name, req.isid, target_iqn)
        if old_session is not None:
            asyncio.get_running_loop().create_task(table.reinstate(old_session))
            table.remove(old_session)
        params = self._parameters()
        session = Session(table, initiator_name=self.initiator_name,
                          initiator_alias=self.initiator_alias, isid=req.isid,
                          tsih=table.allocate_tsih(), target=self.target,
                          tpgt=self.portal.tpgt, params=params, cmd_sn=req.cmd_sn,
                          queue_depth=self.limits.queue_depth,
                          write_budget=self.limits.max_pending_write_bytes)
        session.attach(conn)
        table.add(session)
        self.session = session
        return self._response(req, keys.encode_keys(answer), transit=True, tsih=session.tsih)

    def _parameters(self) -> OperationalParameters:
        a = self.agreed

        def number(key: str) -> int:
            return keys.parse_number(a.get(key) or keys.KEYS[key].default or "0")

        def flag(key: str) -> bool:
            return (a.get(key) or keys.KEYS[key].default) == "Yes"

        return OperationalParameters(
            initial_r2t=flag("InitialR2T"), immediate_data=flag("ImmediateData"),
            first_burst_length=number("FirstBurstLength"),
            # Never ask for more than this node's limit, even when the initiator left the
            # key at its default: R2Ts may always ask for less than MaxBurstLength.
            max_burst_length=min(number("MaxBurstLength"), self.limits.max_burst_length),
            max_outstanding_r2t=number("MaxOutstandingR2T"),
            error_recovery_level=number("ErrorRecoveryLevel"),
            data_pdu_in_order=flag("DataPDUInOrder"),
            data_sequence_in_order=flag("DataSequenceInOrder"))


_IDENTITY_KEYS = frozenset({"InitiatorName", "InitiatorAlias", "TargetName", "SessionType"})
