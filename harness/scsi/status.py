"""SCSI status codes (SAM-5, table 43): the one byte a command completes with."""

from __future__ import annotations

from enum import IntEnum


class ScsiStatus(IntEnum):
    """The status byte of a completed SCSI command."""

    GOOD = 0x00
    CHECK_CONDITION = 0x02
    CONDITION_MET = 0x04
    BUSY = 0x08
    RESERVATION_CONFLICT = 0x18
    TASK_SET_FULL = 0x28
    ACA_ACTIVE = 0x30
    TASK_ABORTED = 0x40
