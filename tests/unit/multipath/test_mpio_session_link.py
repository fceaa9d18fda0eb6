"""SessionLink: the Session's view mapped onto the multipath device's (statuses vs lost paths)."""

from __future__ import annotations

import asyncio

import pytest

from harness.initiator.errors import (
    CheckCondition,
    ConnectionLost,
    ReservationConflict,
    SessionFailed,
    TaskAborted,
    Timeout,
)
from harness.initiator.mpio.link import PathLost, PathSpec
from harness.initiator.mpio.session_link import SessionLink
from harness.initiator.task import ScsiResult
from harness.iscsi.errors import TruncatedPdu
from harness.scsi.sense import Asc, SenseData, SenseKey
from harness.scsi.status import ScsiStatus

SPEC = PathSpec("127.0.0.1", 3260, "iqn.2026-11.test:t", lun=3)


class ScriptedSession:
    """Answers ``execute`` with a scripted result or exception; records the LUN used."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.failure = None
        self.luns: list[int | None] = []
        self.closed = False

    async def execute(self, cdb, lun=None, data_out=None, expected_in=0):
        self.luns.append(lun)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer

    def close(self):
        self.closed = True


def outcome_of(answer):
    session = ScriptedSession(answer)
    link = SessionLink(session, SPEC)
    result = asyncio.run(link.execute(b"\x00" * 6))
    assert session.luns == [3]
    return result


def test_good_data_passes_through():
    out = outcome_of(ScsiResult(ScsiStatus.GOOD, b"abc"))
    assert out.good and out.data == b"abc" and out.error is None


def test_a_check_condition_is_an_outcome_carrying_the_sessions_own_error():
    sense = SenseData.of(SenseKey.MEDIUM_ERROR, Asc.UNRECOVERED_READ_ERROR)
    out = outcome_of(ScsiResult(ScsiStatus.CHECK_CONDITION, sense=sense))
    assert out.status == ScsiStatus.CHECK_CONDITION and out.sense == sense
    assert isinstance(out.error, CheckCondition)


def test_a_reservation_conflict_is_an_outcome_not_a_lost_path():
    out = outcome_of(ScsiResult(ScsiStatus.RESERVATION_CONFLICT))
    assert isinstance(out.error, ReservationConflict)


def test_a_task_aborted_on_a_live_session_is_retryable_status():
    out = outcome_of(TaskAborted("aborted by LUN RESET"))
    assert out.status == ScsiStatus.TASK_ABORTED


@pytest.mark.parametrize("error", [
    ConnectionLost("reset by peer"),
    SessionFailed("session failed"),
    Timeout("READ 16", 5.0, "t at 127.0.0.1:3260"),
    TruncatedPdu("stream ended inside a PDU"),
    ConnectionResetError(104, "reset"),
])
def test_anything_that_breaks_the_session_is_a_lost_path(error):
    with pytest.raises(PathLost):
        outcome_of(error)
