"""Persistent reservations (SPC-4 5.13) and legacy RESERVE/RELEASE(6), as a pure state machine.

Model: a *registration* binds a reservation key to an I_T nexus: an initiator
port (``<iqn>,i,0x<isid>``, or a bare ``<iqn>`` when a TransportID of format 0
named a whole initiator device) and one target port, or every target port when
registered with ALL_TG_PT. Every I_T nexus is covered by at most one
registration. A *reservation* has a type and either one holder registration or,
for the all-registrants types, every registrant as holder. PRgeneration counts
successful REGISTER, REGISTER AND IGNORE EXISTING KEY, CLEAR, PREEMPT, PREEMPT
AND ABORT and REGISTER AND MOVE actions.

Every PR OUT action returns a ``PrOutcome``: the status and sense to report, the
unit attentions to establish (per registration, so the logical unit can map them
onto the I_T nexuses it knows) and, for PREEMPT AND ABORT, whose tasks to abort.
``conflicts(nexus, access)`` answers the SPC-4 conflict table for every other
command. The whole state is a ``PrState`` value: ``snapshot()`` and ``apply()``
let an HA device replicate it, ``on_change`` is called after every change, and
with APTPL set the state is written to an ``AptplFile`` (write, fsync, rename)
before the command completes, and restored from it at start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from harness.scsi.reservations import (
    FullStatusDescriptor,
    PrOutAction,
    PrOutParameters,
    PrType,
    ReadFullStatusData,
    ReadKeysData,
    ReadReservationData,
    RegisterAndMoveParameters,
    ReportCapabilitiesData,
    TransportId,
)
from harness.scsi.sense import (
    AdditionalSense,
    Asc,
    SenseData,
    SenseKey,
    illegal_request,
    invalid_field_in_cdb,
    invalid_field_in_parameter_list,
)
from harness.scsi.status import ScsiStatus
from harness.target.nexus import ItNexus
from harness.target.pr_state import (
    ALL_PORTS,
    AptplFile,
    PrPersistenceError,
    PrState,
    RegId,
    Registration,
    Reservation,
)

__all__ = ["Access", "AptplFile", "PersistentReservations", "PrOutcome", "PrPersistenceError",
           "PrState", "Registration", "Reservation"]


class Access(Enum):
    """How a command is treated in the presence of reservations."""

    NONE = "none"          # never conflicts (INQUIRY, REPORT LUNS, REQUEST SENSE, PR IN, RTPG)
    INFO = "info"          # allowed under persistent reservations (TEST UNIT READY, READ CAPACITY)
    SENSE = "sense"        # MODE SENSE, REPORT SUPPORTED OPCODES: registrants and WE types
    READ = "read"          # reads medium: allowed by write-exclusive types
    WRITE = "write"        # changes medium or state: only holders/registrants as the type says
    PR_OUT = "pr_out"      # PERSISTENT RESERVE OUT: its own rules
    LEGACY = "legacy"      # RESERVE(6)/RELEASE(6): their own rules


@dataclass(frozen=True, slots=True)
class PrOutcome:
    status: ScsiStatus = ScsiStatus.GOOD
    sense: SenseData | None = None
    attentions: tuple[tuple[Registration, AdditionalSense], ...] = ()
    aborted: tuple[Registration, ...] = ()
    changed: bool = False


GOOD = PrOutcome()
CONFLICT = PrOutcome(ScsiStatus.RESERVATION_CONFLICT)


def _check(sense: SenseData) -> PrOutcome:
    return PrOutcome(ScsiStatus.CHECK_CONDITION, sense)


@dataclass
class PersistentReservations:
    """The reservation state machine of one logical unit."""

    aptpl_file: AptplFile | None = None
    on_change: Callable[[PrState], None] | None = None
    max_registrations: int = 1024
    _regs: dict[RegId, Registration] = field(default_factory=dict, init=False)
    _res: Reservation | None = field(default=None, init=False)
    _gen: int = field(default=0, init=False)
    _aptpl: bool = field(default=False, init=False)
    _legacy: tuple[str, str] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.aptpl_file is not None:
            saved = self.aptpl_file.load()
            if saved is not None and saved.aptpl:
                self._install(saved)
                self._legacy = None  # SPC-2 reservations never survive power loss

    # -- state as a value -----------------------------------------------------------

    def snapshot(self) -> PrState:
        return PrState(self._gen, tuple(self._regs.values()), self._res, self._aptpl,
                       self._legacy)

    def apply(self, state: PrState) -> None:
        """Adopt ``state`` (from a replica); persists it when APTPL is set."""
        self._install(state)
        self._persist()

    def _install(self, state: PrState) -> None:
        self._regs = {r.id: r for r in state.registrations}
        self._res = state.reservation
        self._gen = state.generation
        self._aptpl = state.aptpl
        self._legacy = state.legacy_holder

    def _persist(self) -> None:
        if self.aptpl_file is None:
            return
        try:
            if self._aptpl:
                self.aptpl_file.save(self.snapshot())
            else:
                self.aptpl_file.remove()
        except OSError as exc:
            raise PrPersistenceError(f"APTPL file {self.aptpl_file.path}: cannot write "
                                     f"({exc.strerror}); check the state directory") from None

    def _commit(self, before: PrState, outcome: PrOutcome) -> PrOutcome:
        """Persist a change (rolling back if that fails) and announce it."""
        try:
            self._persist()
        except PrPersistenceError:
            self._install(before)
            return _check(SenseData.of(SenseKey.HARDWARE_ERROR, Asc.INTERNAL_TARGET_FAILURE))
        if self.on_change is not None:
            self.on_change(self.snapshot())
        return outcome

    # -- queries ----------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._gen

    @property
    def reservation(self) -> Reservation | None:
        return self._res

    @property
    def registrations(self) -> tuple[Registration, ...]:
        return tuple(self._regs.values())

    def registration_for(self, nexus: ItNexus) -> Registration | None:
        regs = self._regs
        if not regs:
            return None
        ip, tp = nexus.key
        reg = regs.get((ip, tp)) or regs.get((ip, ALL_PORTS))
        if reg is None:
            name = ip.partition(",i,")[0]
            reg = regs.get((name, tp)) or regs.get((name, ALL_PORTS))
        return reg

    def _holds(self, reg: Registration | None) -> bool:
        res = self._res
        return reg is not None and res is not None and (res.holder is None
                                                        or res.holder == reg.id)

    def is_holder(self, nexus: ItNexus) -> bool:
        return self._holds(self.registration_for(nexus))

    def conflicts(self, nexus: ItNexus, access: Access) -> bool:
        """Whether a command of class ``access`` from ``nexus`` gets RESERVATION CONFLICT."""
        if self._legacy is not None and self._legacy != nexus.key and access not in (
                Access.NONE, Access.LEGACY):
            return True
        res = self._res
        if res is None or access in (Access.NONE, Access.INFO, Access.PR_OUT, Access.LEGACY):
            return False
        reg = self.registration_for(nexus)
        if reg is not None and (res.holder is None or res.holder == reg.id
                                or res.pr_type.registrants_only):
            return False
        if access is Access.READ:
            return res.pr_type.exclusive_access
        if access is Access.SENSE:  # SPC-4 table 45: any registrant, or a WE type
            return reg is None and res.pr_type.exclusive_access
        return True

    # -- PERSISTENT RESERVE IN --------------------------------------------------------

    def read_keys(self) -> ReadKeysData:
        return ReadKeysData(self._gen, tuple(r.key for r in self._regs.values()))

    def read_reservation(self) -> ReadReservationData:
        res = self._res
        if res is None:
            return ReadReservationData(self._gen)
        key = 0 if res.holder is None else self._regs[res.holder].key
        return ReadReservationData(self._gen, key, res.pr_type, res.scope)

    def report_capabilities(self) -> ReportCapabilitiesData:
        return ReportCapabilitiesData(ptpl_c=self.aptpl_file is not None, ptpl_a=self._aptpl)

    def read_full_status(self) -> ReadFullStatusData:
        out = []
        for reg in self._regs.values():
            holder = self._holds(reg)
            out.append(FullStatusDescriptor(
                reg.key, TransportId.from_port_name(reg.initiator_port),
                0 if reg.all_tg_pt else reg.relative_target_port, reg.all_tg_pt, holder,
                self._res.pr_type if holder and self._res else None,
                self._res.scope if holder and self._res else 0))
        return ReadFullStatusData(self._gen, tuple(out))

    # -- PERSISTENT RESERVE OUT -------------------------------------------------------

    def persistent_reserve_out(
        self, nexus: ItNexus, action: int, pr_type: int, scope: int,
        params: PrOutParameters | RegisterAndMoveParameters,
        resolve_port: Callable[[int], str | None] | None = None,
    ) -> PrOutcome:
        """Run one PR OUT service action from ``nexus`` (the parameter list already parsed)."""
        if self.conflicts(nexus, Access.PR_OUT):
            return CONFLICT
        before = self.snapshot()
        if isinstance(params, RegisterAndMoveParameters):
            if action != PrOutAction.REGISTER_AND_MOVE:
                return _check(invalid_field_in_cdb(1, 4))
            outcome = self._register_and_move(nexus, params, resolve_port)
        else:
            if params.spec_i_pt and action != PrOutAction.REGISTER:
                return _check(invalid_field_in_parameter_list(20, 3))
            if action in (PrOutAction.REGISTER, PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY):
                outcome = self._register(
                    nexus, params, action == PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY)
            elif action == PrOutAction.RESERVE:
                outcome = self._reserve(nexus, params, pr_type, scope)
            elif action == PrOutAction.RELEASE:
                outcome = self._release(nexus, params, pr_type, scope)
            elif action == PrOutAction.CLEAR:
                outcome = self._clear(nexus, params)
            elif action in (PrOutAction.PREEMPT, PrOutAction.PREEMPT_AND_ABORT):
                outcome = self._preempt(nexus, params, pr_type, scope,
                                        action == PrOutAction.PREEMPT_AND_ABORT)
            else:
                return _check(invalid_field_in_cdb(1, 4))
        return self._commit(before, outcome) if outcome.changed else outcome

    def _bump(self) -> None:
        self._gen = (self._gen + 1) & 0xFFFFFFFF

    def _own(self, nexus: ItNexus, key: int) -> Registration | PrOutcome:
        reg = self.registration_for(nexus)
        if reg is None or reg.key != key:
            return CONFLICT
        return reg

    def _register(self, nexus: ItNexus, p: PrOutParameters, ignore: bool) -> PrOutcome:
        reg = self.registration_for(nexus)
        sak = p.service_action_key
        if reg is not None:
            if not ignore and p.key != reg.key:
                return CONFLICT
            if p.spec_i_pt:
                return _check(invalid_field_in_parameter_list(20, 3))
            self._aptpl = p.aptpl
            self._bump()
            if sak == 0:
                return self._unregister(reg)
            self._regs[reg.id] = Registration(sak, reg.initiator_port, reg.target_port,
                                              reg.relative_target_port)
            return PrOutcome(changed=True)
        if not ignore and p.key != 0:
            return CONFLICT
        if sak == 0:
            return _check(invalid_field_in_parameter_list(8)) if p.spec_i_pt else GOOD
        port = None if p.all_tg_pt else nexus.target_port
        new = [Registration(sak, nexus.initiator_port, port, nexus.relative_target_port_id)]
        new += [Registration(sak, t.port_name, port, nexus.relative_target_port_id)
                for t in p.transport_ids]
        for i, cand in enumerate(new):
            if any(cand.overlaps(r) for r in self._regs.values()) or any(
                    cand.overlaps(r) for r in new[:i]):
                return _check(invalid_field_in_parameter_list(20, 2) if i == 0
                              else invalid_field_in_parameter_list(24))
        if len(self._regs) + len(new) > self.max_registrations:
            return _check(illegal_request(Asc.INSUFFICIENT_REGISTRATION_RESOURCES))
        for cand in new:
            self._regs[cand.id] = cand
        self._aptpl = p.aptpl
        self._bump()
        return PrOutcome(changed=True)

    def _unregister(self, reg: Registration) -> PrOutcome:
        del self._regs[reg.id]
        res = self._res
        attentions: list[tuple[Registration, AdditionalSense]] = []
        if res is not None and res.holder == reg.id:
            self._res = None
            if res.pr_type.registrants_only:
                attentions = [(r, Asc.RESERVATIONS_RELEASED) for r in self._regs.values()]
        elif res is not None and res.holder is None and not self._regs:
            self._res = None
        return PrOutcome(attentions=tuple(attentions), changed=True)

    def _reserve(self, nexus: ItNexus, p: PrOutParameters, pr_type: int,
                 scope: int) -> PrOutcome:
        bad = _validate_type(pr_type, scope)
        if bad is not None:
            return bad
        reg = self._own(nexus, p.key)
        if isinstance(reg, PrOutcome):
            return reg
        t = PrType(pr_type)
        if self._res is not None:
            if self._holds(reg) and self._res.pr_type == t and self._res.scope == scope:
                return GOOD
            return CONFLICT
        self._res = Reservation(t, None if t.all_registrants else reg.id, scope)
        return PrOutcome(changed=True)

    def _release(self, nexus: ItNexus, p: PrOutParameters, pr_type: int,
                 scope: int) -> PrOutcome:
        reg = self._own(nexus, p.key)
        if isinstance(reg, PrOutcome):
            return reg
        res = self._res
        if res is None or not self._holds(reg):
            return GOOD
        if int(res.pr_type) != pr_type or res.scope != scope:
            return _check(illegal_request(Asc.INVALID_RELEASE_OF_PERSISTENT_RESERVATION))
        self._res = None
        attentions = ()
        if res.pr_type.registrants_only or res.pr_type.all_registrants:
            attentions = tuple((r, Asc.RESERVATIONS_RELEASED) for r in self._regs.values()
                               if r.id != reg.id)
        return PrOutcome(attentions=attentions, changed=True)

    def _clear(self, nexus: ItNexus, p: PrOutParameters) -> PrOutcome:
        reg = self._own(nexus, p.key)
        if isinstance(reg, PrOutcome):
            return reg
        attentions = tuple((r, Asc.RESERVATIONS_PREEMPTED) for r in self._regs.values()
                           if r.id != reg.id)
        self._regs.clear()
        self._res = None
        self._bump()
        return PrOutcome(attentions=attentions, changed=True)

    def _preempt(self, nexus: ItNexus, p: PrOutParameters, pr_type: int, scope: int,
                 abort: bool) -> PrOutcome:
        reg = self._own(nexus, p.key)
        if isinstance(reg, PrOutcome):
            return reg
        sak, res = p.service_action_key, self._res
        released: list[Registration] = []
        if res is not None and res.holder is None and sak == 0:
            bad = _validate_type(pr_type, scope)     # all registrants: preempt everyone else
            if bad is not None:
                return bad
            victims = [r for r in self._regs.values() if r.id != reg.id]
            t = PrType(pr_type)
            self._res = Reservation(t, None if t.all_registrants else reg.id, scope)
        elif res is not None and res.holder is not None and sak == self._regs[res.holder].key:
            bad = _validate_type(pr_type, scope)     # preempt the holder
            if bad is not None:
                return bad
            victims = [r for r in self._regs.values() if r.key == sak and r.id != reg.id]
            t = PrType(pr_type)
            self._res = Reservation(t, None if t.all_registrants else reg.id, scope)
            if (res.pr_type, res.scope) != (t, scope):
                released = [r for r in self._regs.values()
                            if r.id != reg.id and r not in victims]
        else:
            if sak == 0:
                return _check(invalid_field_in_parameter_list(8))
            victims = [r for r in self._regs.values() if r.key == sak]
            if not victims:
                return CONFLICT
        for victim in victims:
            del self._regs[victim.id]
        if self._res is not None and self._res.holder is None and not self._regs:
            self._res = None
        self._bump()
        attentions = [(v, Asc.REGISTRATIONS_PREEMPTED) for v in victims if v.id != reg.id]
        attentions += [(r, Asc.RESERVATIONS_RELEASED) for r in released]
        return PrOutcome(attentions=tuple(attentions),
                         aborted=tuple(v for v in victims if v.id != reg.id) if abort else (),
                         changed=True)

    def _register_and_move(self, nexus: ItNexus, p: RegisterAndMoveParameters,
                           resolve_port: Callable[[int], str | None] | None) -> PrOutcome:
        reg = self._own(nexus, p.key)
        if isinstance(reg, PrOutcome):
            return reg
        res = self._res
        if res is None or res.holder is None or res.holder != reg.id:
            return CONFLICT
        if p.service_action_key == 0:
            return _check(invalid_field_in_parameter_list(8))
        if p.transport_id.isid is None:
            return _check(invalid_field_in_parameter_list(24))
        target_port = resolve_port(p.relative_target_port) if resolve_port else None
        if target_port is None:
            return _check(invalid_field_in_parameter_list(18))
        dest = ItNexus(p.transport_id.port_name, target_port, p.relative_target_port)
        if dest == nexus or reg.covers(dest):
            return _check(invalid_field_in_parameter_list(24))
        dest_reg = self.registration_for(dest)
        if dest_reg is None:
            if len(self._regs) >= self.max_registrations:
                return _check(illegal_request(Asc.INSUFFICIENT_REGISTRATION_RESOURCES))
            dest_reg = Registration(p.service_action_key, dest.initiator_port, target_port,
                                    p.relative_target_port)
            self._regs[dest_reg.id] = dest_reg
        self._res = Reservation(res.pr_type, dest_reg.id, res.scope)
        if p.unreg:
            del self._regs[reg.id]
        self._aptpl = p.aptpl
        self._bump()
        return PrOutcome(changed=True)

    # -- legacy RESERVE(6) / RELEASE(6) and resets ------------------------------------

    def reserve6(self, nexus: ItNexus) -> PrOutcome:
        if self._regs or (self._legacy is not None and self._legacy != nexus.key):
            return CONFLICT
        if self._legacy == nexus.key:
            return GOOD
        self._legacy = nexus.key
        return self._notify(PrOutcome(changed=True))

    def release6(self, nexus: ItNexus) -> PrOutcome:
        if self._regs:
            return CONFLICT
        if self._legacy != nexus.key:
            return GOOD
        self._legacy = None
        return self._notify(PrOutcome(changed=True))

    def _notify(self, outcome: PrOutcome) -> PrOutcome:
        if self.on_change is not None:
            self.on_change(self.snapshot())
        return outcome

    @property
    def legacy_holder(self) -> tuple[str, str] | None:
        return self._legacy

    def reset(self) -> None:
        """LOGICAL UNIT RESET: releases a RESERVE(6) reservation; PR state is kept."""
        if self._legacy is not None:
            self._legacy = None
            self._notify(GOOD)

    def nexus_lost(self, nexus: ItNexus) -> None:
        """I_T nexus loss: releases that nexus's RESERVE(6) reservation."""
        if self._legacy == nexus.key:
            self._legacy = None
            self._notify(GOOD)


def _validate_type(pr_type: int, scope: int) -> PrOutcome | None:
    if scope != 0:
        return _check(invalid_field_in_cdb(2, 7))
    try:
        PrType(pr_type)
    except ValueError:
        return _check(invalid_field_in_cdb(2, 3))
    return None
