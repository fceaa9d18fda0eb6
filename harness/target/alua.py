"""Asymmetric logical unit access for one logical unit: target port groups and their states.

Model: every target port (relative target port id) belongs to exactly one
target port group; a group has one asymmetric access state, which decides what
a command arriving through any of its ports may do (SPC-4 5.16.2.4):

- active/optimized, active/non-optimized: everything;
- standby: INQUIRY, REPORT LUNS, REPORT/SET TARGET PORT GROUPS, REQUEST SENSE,
  MODE SENSE/SELECT, PERSISTENT RESERVE IN/OUT, READ CAPACITY and REPORT
  SUPPORTED OPERATION CODES; anything else is NOT READY, TARGET PORT IN STANDBY;
- unavailable: INQUIRY, REPORT LUNS, REPORT/SET TARGET PORT GROUPS, REQUEST
  SENSE, REPORT SUPPORTED OPERATION CODES; else NOT READY, TARGET PORT UNAVAILABLE;
- transitioning and offline: INQUIRY, REPORT LUNS, REPORT TARGET PORT GROUPS,
  REQUEST SENSE; else NOT READY, ASYMMETRIC ACCESS STATE TRANSITION (or OFFLINE).

A state change (management call or SET TARGET PORT GROUPS) returns whether
anything changed, so the logical unit can establish ASYMMETRIC ACCESS STATE
CHANGED unit attentions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.errors import SplitbrainError
from harness.scsi.alua import (
    AccessState,
    RtpgData,
    SupportedStates,
    TargetPortGroupDescriptor,
    TpgStatus,
)
from harness.scsi.opcodes import MaintenanceIn, MaintenanceOut, Opcode
from harness.scsi.sense import AdditionalSense, Asc, SenseData, SenseKey


class AluaError(SplitbrainError):
    """A target port group or access state asked for does not exist or is not allowed."""


NOT_READY_OFFLINE = AdditionalSense(0x04, 0x12, "LOGICAL UNIT NOT READY, OFFLINE")

# (opcode, service action or None) allowed per restricted state
_ALWAYS = frozenset({
    (Opcode.INQUIRY, None), (Opcode.REPORT_LUNS, None), (Opcode.REQUEST_SENSE, None),
    (Opcode.MAINTENANCE_IN, MaintenanceIn.REPORT_TARGET_PORT_GROUPS),
})
_UNAVAILABLE = _ALWAYS | {
    (Opcode.MAINTENANCE_OUT, MaintenanceOut.SET_TARGET_PORT_GROUPS),
    (Opcode.MAINTENANCE_IN, MaintenanceIn.REPORT_SUPPORTED_OPERATION_CODES),
}
_STANDBY = _UNAVAILABLE | {
    (Opcode.MODE_SENSE_6, None), (Opcode.MODE_SENSE_10, None),
    (Opcode.MODE_SELECT_6, None), (Opcode.MODE_SELECT_10, None),
    (Opcode.PERSISTENT_RESERVE_IN, None), (Opcode.PERSISTENT_RESERVE_OUT, None),
    (Opcode.READ_CAPACITY_10, None), (Opcode.SERVICE_ACTION_IN_16, 0x10),
}
_SERVICE_ACTION_OPS = frozenset({Opcode.MAINTENANCE_IN, Opcode.MAINTENANCE_OUT,
                                 Opcode.SERVICE_ACTION_IN_16})

_REFUSAL = {
    AccessState.STANDBY: (_STANDBY, Asc.NOT_READY_TARGET_PORT_STANDBY),
    AccessState.UNAVAILABLE: (_UNAVAILABLE, Asc.NOT_READY_TARGET_PORT_UNAVAILABLE),
    AccessState.TRANSITIONING: (_ALWAYS, Asc.NOT_READY_ASYMMETRIC_ACCESS_TRANSITION),
    AccessState.OFFLINE: (_ALWAYS, NOT_READY_OFFLINE),
}


def refusal(state: AccessState, cdb: bytes) -> SenseData | None:
    """The NOT READY sense for ``cdb`` through a port in ``state``, or None if allowed."""
    rule = _REFUSAL.get(state)
    if rule is None:
        return None
    allowed, code = rule
    op = cdb[0]
    sa = cdb[1] & 0x1F if op in _SERVICE_ACTION_OPS and len(cdb) > 1 else None
    if (op, sa) in allowed:
        return None
    return SenseData.of(SenseKey.NOT_READY, code)


@dataclass
class TargetPortGroup:
    group_id: int
    state: AccessState = AccessState.ACTIVE_OPTIMIZED
    relative_ports: set[int] = field(default_factory=set)
    preferred: bool = False
    status: TpgStatus = TpgStatus.NONE


@dataclass
class AluaGroups:
    """The target port groups of one logical unit."""

    groups: dict[int, TargetPortGroup] = field(default_factory=dict)
    supported: SupportedStates = field(default_factory=lambda: SupportedStates(offline=True))
    explicit: bool = True            # SET TARGET PORT GROUPS accepted
    implicit: bool = True            # the target changes states itself (failover)
    implicit_transition_time: int = 0
    auto_groups: bool = True         # a port of an unconfigured group joins it, active/optimized

    @classmethod
    def single(cls, relative_ports: set[int] | None = None) -> AluaGroups:
        """Active/optimized groups made as ports appear (a target without ALUA choices)."""
        if not relative_ports:
            return cls()
        return cls({1: TargetPortGroup(1, relative_ports=set(relative_ports))})

    def group(self, group_id: int) -> TargetPortGroup:
        try:
            return self.groups[group_id]
        except KeyError:
            raise AluaError(f"target port group {group_id} is not configured on this LU; "
                            f"known groups: {sorted(self.groups)}") from None

    def state_of(self, group_id: int) -> AccessState:
        grp = self.groups.get(group_id)
        return AccessState.UNAVAILABLE if grp is None else grp.state

    def admit_port(self, group_id: int, relative_port: int) -> None:
        """A nexus arrived through ``relative_port`` of ``group_id``: make RTPG show it."""
        grp = self.groups.get(group_id)
        if grp is not None and relative_port in grp.relative_ports:
            return
        if grp is None and not self.auto_groups:
            return  # an unconfigured group stays unavailable
        self.add_port(group_id, relative_port)

    def add_port(self, group_id: int, relative_port: int) -> None:
        for grp in self.groups.values():
            grp.relative_ports.discard(relative_port)
        self.groups.setdefault(group_id, TargetPortGroup(group_id)).relative_ports.add(
            relative_port)

    def set_state(self, group_id: int, state: AccessState, *, explicit: bool = False) -> bool:
        """Move a group to ``state``; return True if it changed."""
        grp = self.group(group_id)
        if not self.supported.allows(state) or state == AccessState.LBA_DEPENDENT:
            raise AluaError(f"access state {state.name} is not supported by target port "
                            f"group {group_id}")
        changed = grp.state != state
        grp.state = state
        grp.status = TpgStatus.SET_BY_STPG if explicit else TpgStatus.IMPLICIT_CHANGE
        return changed

    @property
    def tpgs(self) -> int:
        """The TPGS field of standard INQUIRY data."""
        return (1 if self.implicit else 0) | (2 if self.explicit else 0)

    def rtpg(self, *, extended: bool = False) -> RtpgData:
        return RtpgData(tuple(
            TargetPortGroupDescriptor(g.group_id, g.state, tuple(sorted(g.relative_ports)),
                                      g.preferred, self.supported, g.status)
            for g in sorted(self.groups.values(), key=lambda g: g.group_id)),
            extended, self.implicit_transition_time if extended else 0)
