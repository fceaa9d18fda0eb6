"""SCSI operation codes and service actions (SPC-4 / SBC-3) that this command set knows."""

from __future__ import annotations

from enum import IntEnum


class Opcode(IntEnum):
    """Operation codes (byte 0 of a CDB)."""

    TEST_UNIT_READY = 0x00
    REQUEST_SENSE = 0x03
    READ_6 = 0x08
    WRITE_6 = 0x0A
    INQUIRY = 0x12
    MODE_SELECT_6 = 0x15
    RESERVE_6 = 0x16
    RELEASE_6 = 0x17
    MODE_SENSE_6 = 0x1A
    START_STOP_UNIT = 0x1B
    READ_CAPACITY_10 = 0x25
    READ_10 = 0x28
    WRITE_10 = 0x2A
    WRITE_AND_VERIFY_10 = 0x2E
    VERIFY_10 = 0x2F
    PRE_FETCH_10 = 0x34
    SYNCHRONIZE_CACHE_10 = 0x35
    WRITE_SAME_10 = 0x41
    UNMAP = 0x42
    MODE_SELECT_10 = 0x55
    MODE_SENSE_10 = 0x5A
    PERSISTENT_RESERVE_IN = 0x5E
    PERSISTENT_RESERVE_OUT = 0x5F
    READ_16 = 0x88
    COMPARE_AND_WRITE = 0x89
    WRITE_16 = 0x8A
    ORWRITE_16 = 0x8B
    WRITE_AND_VERIFY_16 = 0x8E
    VERIFY_16 = 0x8F
    PRE_FETCH_16 = 0x90
    SYNCHRONIZE_CACHE_16 = 0x91
    WRITE_SAME_16 = 0x93
    SERVICE_ACTION_IN_16 = 0x9E
    REPORT_LUNS = 0xA0
    MAINTENANCE_IN = 0xA3
    MAINTENANCE_OUT = 0xA4
    READ_12 = 0xA8
    WRITE_12 = 0xAA
    WRITE_AND_VERIFY_12 = 0xAE
    VERIFY_12 = 0xAF


class ServiceActionIn16(IntEnum):
    """Service actions of SERVICE ACTION IN(16) (opcode 9Eh)."""

    READ_CAPACITY_16 = 0x10
    GET_LBA_STATUS = 0x12


class MaintenanceIn(IntEnum):
    """Service actions of MAINTENANCE IN (opcode A3h)."""

    REPORT_TARGET_PORT_GROUPS = 0x0A
    REPORT_SUPPORTED_OPERATION_CODES = 0x0C


class MaintenanceOut(IntEnum):
    """Service actions of MAINTENANCE OUT (opcode A4h)."""

    SET_TARGET_PORT_GROUPS = 0x0A


#: opcodes whose byte 1 bits 4..0 carry a service action
SERVICE_ACTION_OPCODES = frozenset({
    Opcode.SERVICE_ACTION_IN_16, Opcode.MAINTENANCE_IN, Opcode.MAINTENANCE_OUT,
    Opcode.PERSISTENT_RESERVE_IN, Opcode.PERSISTENT_RESERVE_OUT,
})


def cdb_length(opcode: int) -> int:
    """CDB length implied by the opcode's group code (SPC-4 4.2.5.1)."""
    group = opcode >> 5
    return {0: 6, 1: 10, 2: 10, 4: 16, 5: 12}.get(group, 0)
