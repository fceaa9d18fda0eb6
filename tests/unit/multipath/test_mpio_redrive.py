"""The re-drive table: which outcomes are hidden from the caller and which are its answer."""

from __future__ import annotations

import pytest

from harness.initiator.mpio.link import ScsiOutcome
from harness.initiator.mpio.redrive import Action, classify
from harness.initiator.mpio.status import AluaState
from harness.scsi.sense import Asc, SenseData, SenseKey
from harness.scsi.status import ScsiStatus


def cc(key, code):
    return ScsiOutcome(ScsiStatus.CHECK_CONDITION, sense=SenseData.of(key, code))


@pytest.mark.parametrize(
    ("outcome", "action"),
    [
        (ScsiOutcome(ScsiStatus.GOOD), Action.DONE),
        (ScsiOutcome(ScsiStatus.CONDITION_MET), Action.DONE),
        (ScsiOutcome(ScsiStatus.RESERVATION_CONFLICT), Action.FAIL),
        (ScsiOutcome(ScsiStatus.BUSY), Action.RETRY),
        (ScsiOutcome(ScsiStatus.TASK_SET_FULL), Action.RETRY),
        (ScsiOutcome(ScsiStatus.TASK_ABORTED), Action.RETRY),
        (ScsiOutcome(ScsiStatus.ACA_ACTIVE), Action.FAIL),
        (ScsiOutcome(ScsiStatus.CHECK_CONDITION), Action.FAIL),
        (cc(SenseKey.MEDIUM_ERROR, Asc.UNRECOVERED_READ_ERROR), Action.FAIL),
        (cc(SenseKey.MEDIUM_ERROR, Asc.WRITE_ERROR), Action.FAIL),
        (cc(SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE), Action.FAIL),
        (cc(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED), Action.FAIL),
        (cc(SenseKey.MISCOMPARE, Asc.MISCOMPARE_DURING_VERIFY), Action.FAIL),
        (cc(SenseKey.UNIT_ATTENTION, Asc.POWER_ON_RESET), Action.RETRY),
        (cc(SenseKey.UNIT_ATTENTION, Asc.RESERVATIONS_PREEMPTED), Action.RETRY),
        (cc(SenseKey.ABORTED_COMMAND, Asc.NO_ADDITIONAL_SENSE), Action.RETRY),
        (cc(SenseKey.NOT_READY, Asc.NOT_READY_CAUSE_NOT_REPORTABLE), Action.FAIL_PATH),
        (cc(SenseKey.NOT_READY, Asc.NOT_READY_TARGET_PORT_STANDBY), Action.REDRIVE),
        (cc(SenseKey.NOT_READY, Asc.NOT_READY_TARGET_PORT_UNAVAILABLE), Action.REDRIVE),
        (cc(SenseKey.NOT_READY, Asc.NOT_READY_ASYMMETRIC_ACCESS_TRANSITION), Action.REDRIVE),
        (cc(SenseKey.HARDWARE_ERROR, Asc.LOGICAL_UNIT_COMMUNICATION_FAILURE), Action.FAIL_PATH),
        (cc(SenseKey.HARDWARE_ERROR, Asc.INTERNAL_TARGET_FAILURE), Action.FAIL),
        (cc(SenseKey.RECOVERED_ERROR, Asc.NO_ADDITIONAL_SENSE), Action.DONE),
    ],
)
def test_the_redrive_table(outcome, action):
    assert classify(outcome).action is action


def test_alua_answers_name_the_new_access_state_and_ask_for_a_refresh():
    v = classify(cc(SenseKey.NOT_READY, Asc.NOT_READY_TARGET_PORT_UNAVAILABLE))
    assert v.alua is AluaState.UNAVAILABLE and v.refresh_alua and not v.delay
    v = classify(cc(SenseKey.NOT_READY, Asc.NOT_READY_ASYMMETRIC_ACCESS_TRANSITION))
    assert v.alua is AluaState.TRANSITIONING and v.delay
    v = classify(cc(SenseKey.UNIT_ATTENTION, Asc.ASYMMETRIC_ACCESS_STATE_CHANGED))
    assert v.action is Action.RETRY and v.refresh_alua
