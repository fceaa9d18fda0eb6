"""What a multipath device does with a command that did not end GOOD on a path.

The MSDSM and dm-multipath draw the same line: a failure that belongs to the
*path* (the connection died, the port went standby, the node stopped serving)
is hidden from the caller and the command is re-driven on another path; a
failure that belongs to the *data or the request* (a medium error, an illegal
request, a reservation conflict) is the caller's answer, and re-driving it would
be a lie. In between sit transient conditions that are retried a bounded number
of times (Windows RetryCount / RetryInterval).

:func:`classify` maps one :class:`~harness.initiator.mpio.link.ScsiOutcome` to a
:class:`Verdict`; it is pure so the table is tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from harness.initiator.mpio.link import ScsiOutcome
from harness.initiator.mpio.status import AluaState
from harness.scsi.sense import Asc, SenseKey
from harness.scsi.status import ScsiStatus


class Action(Enum):
    """What the device does next with the command."""

    DONE = "done"  # GOOD: hand the data to the caller
    RETRY = "retry"  # transient: retry (counted against retry_count), any path
    REDRIVE = "redrive"  # the path cannot serve it now: another path, not counted
    FAIL_PATH = "fail-path"  # the path is broken: fail it, recover it, re-drive elsewhere
    FAIL = "fail"  # the caller's answer: raise it


@dataclass(frozen=True)
class Verdict:
    """The action, why, and (for ALUA answers) the port's new access state."""

    action: Action
    reason: str
    alua: AluaState | None = None
    refresh_alua: bool = False
    delay: bool = False  # wait retry_interval before the retry


_ALUA_NOT_READY = {
    Asc.NOT_READY_ASYMMETRIC_ACCESS_TRANSITION[:2]: AluaState.TRANSITIONING,
    Asc.NOT_READY_TARGET_PORT_STANDBY[:2]: AluaState.STANDBY,
    Asc.NOT_READY_TARGET_PORT_UNAVAILABLE[:2]: AluaState.UNAVAILABLE,
}


def classify(outcome: ScsiOutcome) -> Verdict:
    """The verdict on one command's outcome (see the module docstring)."""
    status = outcome.status
    if outcome.good:
        return Verdict(Action.DONE, "good")
    if status == ScsiStatus.RESERVATION_CONFLICT:
        return Verdict(Action.FAIL, "reservation conflict")
    if status in (ScsiStatus.BUSY, ScsiStatus.TASK_SET_FULL):
        return Verdict(Action.RETRY, ScsiStatus(status).name.lower().replace("_", " "), delay=True)
    if status == ScsiStatus.TASK_ABORTED:
        return Verdict(Action.RETRY, "task aborted")
    if status != ScsiStatus.CHECK_CONDITION:
        return Verdict(Action.FAIL, f"unexpected SCSI status 0x{status:02x}")
    sense = outcome.sense
    if sense is None:
        return Verdict(Action.FAIL, "CHECK CONDITION without sense data")
    key = sense.key
    if key == SenseKey.UNIT_ATTENTION:
        refresh = sense.is_(Asc.ASYMMETRIC_ACCESS_STATE_CHANGED) or sense.is_(
            Asc.IMPLICIT_ASYMMETRIC_ACCESS_STATE_TRANSITION_FAILED
        )
        return Verdict(Action.RETRY, f"unit attention: {sense.additional.name}",
                       refresh_alua=refresh)
    if key == SenseKey.NOT_READY:
        alua = _ALUA_NOT_READY.get((sense.asc, sense.ascq))
        if alua is AluaState.TRANSITIONING:
            return Verdict(Action.REDRIVE, "port in ALUA transition", alua=alua,
                           refresh_alua=True, delay=True)
        if alua is not None:
            return Verdict(Action.REDRIVE, f"port is ALUA {alua.name.lower()}", alua=alua,
                           refresh_alua=True)
        return Verdict(Action.FAIL_PATH, f"not ready: {sense.additional.name}")
    if key == SenseKey.ABORTED_COMMAND:
        return Verdict(Action.RETRY, f"aborted command: {sense.additional.name}")
    if key == SenseKey.HARDWARE_ERROR and sense.is_(Asc.LOGICAL_UNIT_COMMUNICATION_FAILURE):
        return Verdict(Action.FAIL_PATH, "logical unit communication failure")
    if key == SenseKey.RECOVERED_ERROR:
        return Verdict(Action.DONE, "recovered error")
    return Verdict(Action.FAIL, f"{key.name.lower().replace('_', ' ')}: {sense.additional.name}")
