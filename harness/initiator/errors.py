"""Typed errors of the harness's iSCSI initiator.

Every way a session can go wrong ends in one of these (or in a wire-layer
:class:`~harness.iscsi.errors.ProtocolError`, re-exported here), each with a
one-line message naming the target and what to do. The model:

- Login: ``LoginRejected`` when the target answers a Login Request with a
  non-zero Status-Class (authentication failed, not found, ...), ``LoginFailed``
  when this side gives up (negotiation or mutual CHAP the target failed).
- A command that completed with a non-GOOD status is *not* an error of the
  session; ``ScsiResult.raise_for_status`` turns it into ``CheckCondition``
  (carrying the decoded ``SenseData``), ``ReservationConflict``, ``ScsiStatusError``.
- ``Timeout`` says which operation waited how long. ``ConnectionLost``,
  ``ProtocolError`` (garbage, truncation, wrong digest, unexpected opcode) and
  ``SessionFailed`` mean the session is unusable; ``TaskAborted`` that a task
  was aborted by task management before it completed.
"""

from __future__ import annotations

from harness.errors import SplitbrainError
from harness.iscsi.codes import LoginStatus
from harness.iscsi.errors import (
    ConnectionClosed,
    DigestError,
    PduTooLarge,
    ProtocolError,
    TruncatedPdu,
    UnknownOpcode,
)
from harness.scsi.sense import SenseData

__all__ = [
    "CheckCondition",
    "CommandRejected",
    "ConnectionClosed",
    "ConnectionLost",
    "DigestError",
    "InitiatorError",
    "LoginFailed",
    "LoginRejected",
    "PduTooLarge",
    "ProtocolError",
    "ReservationConflict",
    "ScsiStatusError",
    "SessionFailed",
    "TaskAborted",
    "TaskFailedAtTarget",
    "TaskManagementFailed",
    "Timeout",
    "TruncatedPdu",
    "UnexpectedPdu",
    "UnknownOpcode",
]


class InitiatorError(SplitbrainError):
    """Base of the initiator's own errors."""


class ConnectionLost(InitiatorError):
    """The TCP connection could not be made, or broke under the session."""


class LoginFailed(InitiatorError):
    """This side could not complete the login (negotiation, mutual CHAP, bad answers)."""


_LOGIN_REASONS: dict[int, str] = {
    LoginStatus.TARGET_MOVED_TEMPORARILY: "target moved temporarily",
    LoginStatus.TARGET_MOVED_PERMANENTLY: "target moved permanently",
    LoginStatus.INITIATOR_ERROR: "initiator error",
    LoginStatus.AUTHENTICATION_FAILURE: "authentication failed",
    LoginStatus.AUTHORIZATION_FAILURE: "initiator not authorized (ACL)",
    LoginStatus.NOT_FOUND: "target not found",
    LoginStatus.TARGET_REMOVED: "target removed",
    LoginStatus.UNSUPPORTED_VERSION: "unsupported iSCSI version",
    LoginStatus.TOO_MANY_CONNECTIONS: "too many connections",
    LoginStatus.MISSING_PARAMETER: "missing parameter",
    LoginStatus.CANT_INCLUDE_IN_SESSION: "cannot include connection in session",
    LoginStatus.SESSION_TYPE_NOT_SUPPORTED: "session type not supported",
    LoginStatus.SESSION_DOES_NOT_EXIST: "session does not exist",
    LoginStatus.INVALID_DURING_LOGIN: "invalid request during login",
    LoginStatus.TARGET_ERROR: "target error",
    LoginStatus.SERVICE_UNAVAILABLE: "service unavailable",
    LoginStatus.OUT_OF_RESOURCES: "target out of resources",
}

_LOGIN_ADVICE: dict[int, str] = {
    LoginStatus.AUTHENTICATION_FAILURE: "check the CHAP user and secret",
    LoginStatus.AUTHORIZATION_FAILURE: "add this initiator name to the target's ACL",
    LoginStatus.NOT_FOUND: "check the target name (run discovery)",
    LoginStatus.TARGET_REMOVED: "check the target name (run discovery)",
}


class LoginRejected(LoginFailed):
    """The target refused the login with a non-zero Status-Class."""

    def __init__(self, target: str, portal: str, status_class: int, status_detail: int,
                 *, redirect: str | None = None) -> None:
        code = (status_class << 8) | status_detail
        reason = _LOGIN_REASONS.get(code, f"status 0x{status_class:02x}/0x{status_detail:02x}")
        advice = _LOGIN_ADVICE.get(code)
        if redirect:
            advice = f"log in at {redirect} instead"
        if advice is None:
            advice = "retry later" if status_class == 3 else "check the login parameters"
        super().__init__(f"login to {target} at {portal} rejected: {reason}; {advice}")
        self.target = target
        self.portal = portal
        self.status_class = status_class
        self.status_detail = status_detail
        self.reason = reason
        self.redirect = redirect


class Timeout(InitiatorError):
    """An operation did not complete within its deadline."""

    def __init__(self, operation: str, seconds: float, where: str) -> None:
        super().__init__(
            f"{operation} on {where} did not complete within {seconds:g} s; the target is "
            "silent or overloaded (check it, or raise the timeout)"
        )
        self.operation = operation
        self.seconds = seconds
        self.where = where


class SessionFailed(InitiatorError):
    """The session is unusable (an earlier failure, or it was closed); log in again."""


class UnexpectedPdu(ProtocolError):
    """A well-formed PDU the initiator must never receive in this state."""


class CommandRejected(ProtocolError):
    """The target answered a PDU with a Reject PDU."""

    def __init__(self, message: str, reason: int) -> None:
        super().__init__(message)
        self.reason = reason


class TaskAborted(InitiatorError):
    """A task was aborted (ABORT TASK, LUN RESET, ...) or ended with TASK ABORTED status."""


class TaskFailedAtTarget(InitiatorError):
    """A SCSI Response with iSCSI Response 'Target Failure' (no SCSI status): this
    command failed, the session goes on."""


class TaskManagementFailed(InitiatorError):
    """A task management function did not complete (its response code says why)."""

    def __init__(self, message: str, response: int) -> None:
        super().__init__(message)
        self.response = response


class ScsiStatusError(InitiatorError):
    """A SCSI command completed with a status other than GOOD."""

    def __init__(self, message: str, status: int, sense: SenseData | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.sense = sense


class CheckCondition(ScsiStatusError):
    """CHECK CONDITION; ``sense`` holds the decoded sense data (None if the target sent none)."""


class ReservationConflict(ScsiStatusError):
    """RESERVATION CONFLICT: another I_T nexus holds a persistent reservation."""
