"""The persistent reservation state machine: SPC-4 rules, conflicts, APTPL, invariants."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from harness.scsi.reservations import PrOutAction, PrOutParameters, PrType, TransportId
from harness.scsi.reservations import RegisterAndMoveParameters as MoveParams
from harness.scsi.sense import Asc
from harness.scsi.status import ScsiStatus
from harness.target.nexus import ItNexus
from harness.target.reservations import (
    Access,
    AptplFile,
    PersistentReservations,
    PrPersistenceError,
    PrState,
)

T1, T2 = "iqn.2026-01.lab:ha1,t,0x0001", "iqn.2026-01.lab:ha1,t,0x0002"
A = ItNexus("iqn.2026-01.lab:node-a,i,0x400000000001", T1, 1)
A2 = ItNexus("iqn.2026-01.lab:node-a,i,0x400000000001", T2, 2)
B = ItNexus("iqn.2026-01.lab:node-b,i,0x400000000001", T1, 1)
C = ItNexus("iqn.2026-01.lab:node-c,i,0x400000000001", T1, 1)
WE, EA = PrType.WRITE_EXCLUSIVE, PrType.EXCLUSIVE_ACCESS
WE_RO, EA_RO = PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY, PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY
WE_AR, EA_AR = PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS, PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS


def out(pr: PersistentReservations, nexus: ItNexus, action: PrOutAction, *, key: int = 0,
        sak: int = 0, pr_type: int = 0, scope: int = 0, **flags: object):
    return pr.persistent_reserve_out(nexus, action, pr_type, scope,
                                     PrOutParameters(key, sak, **flags))  # type: ignore[arg-type]


def register(pr: PersistentReservations, nexus: ItNexus, key: int, **flags: object) -> None:
    assert out(pr, nexus, PrOutAction.REGISTER, sak=key, **flags).status == ScsiStatus.GOOD


def test_register_reserve_read_back() -> None:
    pr = PersistentReservations()
    register(pr, A, 0xA)
    register(pr, B, 0xB)
    assert pr.read_keys().keys == (0xA, 0xB) and pr.generation == 2
    assert out(pr, A, PrOutAction.RESERVE, key=0xA, pr_type=WE_RO).status == ScsiStatus.GOOD
    assert pr.generation == 2  # RESERVE does not count
    res = pr.read_reservation()
    assert (res.key, res.pr_type) == (0xA, WE_RO)
    full = pr.read_full_status().descriptors
    assert [(d.key, d.holder, d.transport_id.port_name) for d in full] == [
        (0xA, True, A.initiator_port), (0xB, False, B.initiator_port)]


def test_register_with_wrong_key_conflicts_and_does_not_count() -> None:
    pr = PersistentReservations()
    assert out(pr, A, PrOutAction.REGISTER, key=5, sak=6).status == ScsiStatus.RESERVATION_CONFLICT
    register(pr, A, 1)
    assert out(pr, A, PrOutAction.REGISTER, key=2, sak=3).status == ScsiStatus.RESERVATION_CONFLICT
    assert pr.generation == 1
    assert out(pr, A, PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, key=9, sak=3).status == 0
    assert pr.read_keys().keys == (3,) and pr.generation == 2


def test_unregistered_register_with_zero_key_is_a_no_op() -> None:
    pr = PersistentReservations()
    assert out(pr, A, PrOutAction.REGISTER, sak=0).status == ScsiStatus.GOOD
    assert pr.generation == 0 and pr.read_keys().keys == ()


def test_registrations_are_per_i_t_nexus() -> None:
    pr = PersistentReservations()
    register(pr, A, 1)
    register(pr, A2, 1)  # same initiator port through a second target port: its own nexus
    assert pr.read_keys().keys == (1, 1)
    assert out(pr, A, PrOutAction.RESERVE, key=1, pr_type=WE).status == 0
    assert pr.conflicts(A2, Access.WRITE) and not pr.conflicts(A, Access.WRITE)


def test_all_tg_pt_covers_every_target_port() -> None:
    pr = PersistentReservations()
    register(pr, A, 7, all_tg_pt=True)
    assert pr.registration_for(A2) is not None
    full = pr.read_full_status().descriptors
    assert full[0].all_tg_pt and len(full) == 1
    assert out(pr, A2, PrOutAction.RESERVE, key=7, pr_type=EA).status == 0
    assert not pr.conflicts(A, Access.WRITE)


def test_conflict_table() -> None:
    cases = {
        #      holder  reg-nonholder(R/W)   unregistered(R/W)
        WE: (False, (False, True), (False, True)),
        EA: (False, (True, True), (True, True)),
        WE_RO: (False, (False, False), (False, True)),
        EA_RO: (False, (False, False), (True, True)),
        WE_AR: (False, (False, False), (False, True)),
        EA_AR: (False, (False, False), (True, True)),
    }
    for t, (holder, registered, stranger) in cases.items():
        pr = PersistentReservations()
        register(pr, A, 1)
        register(pr, B, 2)
        assert out(pr, A, PrOutAction.RESERVE, key=1, pr_type=t).status == 0
        assert pr.conflicts(A, Access.WRITE) is holder, t
        assert (pr.conflicts(B, Access.READ), pr.conflicts(B, Access.WRITE)) == registered, t
        assert (pr.conflicts(C, Access.READ), pr.conflicts(C, Access.WRITE)) == stranger, t
        for n in (A, B, C):
            assert not pr.conflicts(n, Access.NONE) and not pr.conflicts(n, Access.INFO)
        assert not pr.conflicts(B, Access.SENSE), t  # registrants may always MODE SENSE
        assert pr.conflicts(C, Access.SENSE) is t.exclusive_access, t


def test_reserve_rules() -> None:
    pr = PersistentReservations()
    register(pr, A, 1)
    register(pr, B, 2)
    assert out(pr, C, PrOutAction.RESERVE, key=0, pr_type=WE).status == 0x18
    assert out(pr, A, PrOutAction.RESERVE, key=1, pr_type=9).sense.field_pointer.byte == 2
    assert out(pr, A, PrOutAction.RESERVE, key=1, pr_type=WE, scope=1).status == 2
    assert out(pr, A, PrOutAction.RESERVE, key=1, pr_type=WE).status == 0
    assert out(pr, A, PrOutAction.RESERVE, key=1, pr_type=WE).status == 0   # same again: GOOD
    assert out(pr, A, PrOutAction.RESERVE, key=1, pr_type=EA).status == 0x18  # other type
    assert out(pr, B, PrOutAction.RESERVE, key=2, pr_type=WE).status == 0x18


def test_release_rules_and_attentions() -> None:
    pr = PersistentReservations()
    for n, k in ((A, 1), (B, 2), (C, 3)):
        register(pr, n, k)
    out(pr, A, PrOutAction.RESERVE, key=1, pr_type=WE_RO)
    assert out(pr, B, PrOutAction.RELEASE, key=2, pr_type=WE_RO).status == 0  # not holder
    assert pr.reservation is not None
    bad = out(pr, A, PrOutAction.RELEASE, key=1, pr_type=WE)
    assert bad.sense.is_(Asc.INVALID_RELEASE_OF_PERSISTENT_RESERVATION)
    done = out(pr, A, PrOutAction.RELEASE, key=1, pr_type=WE_RO)
    assert pr.reservation is None
    assert sorted(r.key for r, code in done.attentions if code == Asc.RESERVATIONS_RELEASED) \
        == [2, 3]


def test_unregister_holder_releases() -> None:
    pr = PersistentReservations()
    register(pr, A, 1)
    register(pr, B, 2)
    out(pr, A, PrOutAction.RESERVE, key=1, pr_type=EA_RO)
    res = out(pr, A, PrOutAction.REGISTER, key=1, sak=0)
    assert pr.reservation is None and pr.read_keys().keys == (2,)
    assert [code for _, code in res.attentions] == [Asc.RESERVATIONS_RELEASED]


def test_all_registrants_reservation_survives_until_last_registrant() -> None:
    pr = PersistentReservations()
    register(pr, A, 1)
    register(pr, B, 2)
    out(pr, B, PrOutAction.RESERVE, key=2, pr_type=WE_AR)
    assert pr.read_reservation().key == 0
    out(pr, B, PrOutAction.REGISTER, key=2, sak=0)
    assert pr.reservation is not None and pr.is_holder(A)
    out(pr, A, PrOutAction.REGISTER, key=1, sak=0)
    assert pr.reservation is None


def test_clear() -> None:
    pr = PersistentReservations()
    register(pr, A, 1)
    register(pr, B, 2)
    out(pr, A, PrOutAction.RESERVE, key=1, pr_type=WE)
    assert out(pr, C, PrOutAction.CLEAR, key=3).status == 0x18
    res = out(pr, B, PrOutAction.CLEAR, key=2)
    assert pr.reservation is None and not pr.registrations and pr.generation == 3
    assert [(r.key, code) for r, code in res.attentions] == [(1, Asc.RESERVATIONS_PREEMPTED)]


def test_preempt_holder_moves_reservation() -> None:
    pr = PersistentReservations()
    register(pr, A, 1)
    register(pr, B, 2)
    register(pr, C, 3)
    out(pr, A, PrOutAction.RESERVE, key=1, pr_type=WE_RO)
    res = out(pr, B, PrOutAction.PREEMPT_AND_ABORT, key=2, sak=1, pr_type=EA_RO)
    assert res.status == 0
    assert pr.read_reservation().key == 2 and pr.reservation.pr_type == EA_RO
    assert pr.read_keys().keys == (2, 3)
    assert {(r.key, code) for r, code in res.attentions} == {
        (1, Asc.REGISTRATIONS_PREEMPTED), (3, Asc.RESERVATIONS_RELEASED)}
    assert [r.key for r in res.aborted] == [1]


def test_preempt_without_reservation_removes_registrations() -> None:
    pr = PersistentReservations()
    register(pr, A, 1)
    register(pr, B, 2)
    assert out(pr, A, PrOutAction.PREEMPT, key=1, sak=9).status == 0x18  # no such key
    assert out(pr, A, PrOutAction.PREEMPT, key=1, sak=0).sense.is_(
        Asc.INVALID_FIELD_IN_PARAMETER_LIST)
    res = out(pr, A, PrOutAction.PREEMPT, key=1, sak=2)
    assert res.status == 0 and pr.read_keys().keys == (1,) and pr.reservation is None
    assert not res.aborted


def test_preempt_all_registrants_with_zero_key() -> None:
    pr = PersistentReservations()
    for n, k in ((A, 1), (B, 2), (C, 3)):
        register(pr, n, k)
    out(pr, A, PrOutAction.RESERVE, key=1, pr_type=EA_AR)
    res = out(pr, B, PrOutAction.PREEMPT, key=2, sak=0, pr_type=WE)
    assert pr.read_keys().keys == (2,) and pr.read_reservation().key == 2
    assert sorted(r.key for r, _ in res.attentions) == [1, 3]


def test_preempt_self_changes_type() -> None:
    pr = PersistentReservations()
    register(pr, A, 1)
    out(pr, A, PrOutAction.RESERVE, key=1, pr_type=WE)
    assert out(pr, A, PrOutAction.PREEMPT, key=1, sak=1, pr_type=EA).status == 0
    assert pr.read_keys().keys == (1,) and pr.reservation.pr_type == EA


def test_spec_i_pt_registers_named_ports() -> None:
    pr = PersistentReservations()
    tids = (TransportId.from_port_name(B.initiator_port),
            TransportId("iqn.2026-01.lab:node-c"))
    res = out(pr, A, PrOutAction.REGISTER, sak=5, spec_i_pt=True, transport_ids=tids)
    assert res.status == 0 and pr.read_keys().keys == (5, 5, 5) and pr.generation == 1
    assert pr.registration_for(C) is not None  # format 0: every port of node-c
    again = out(pr, C, PrOutAction.REGISTER, key=5, sak=6, spec_i_pt=True,
                transport_ids=(TransportId.from_port_name(B.initiator_port),))
    assert again.sense.is_(Asc.INVALID_FIELD_IN_PARAMETER_LIST)  # C is registered already


def test_spec_i_pt_with_a_registered_target_is_refused_atomically() -> None:
    pr = PersistentReservations()
    register(pr, B, 2)
    res = out(pr, A, PrOutAction.REGISTER, sak=5, spec_i_pt=True,
              transport_ids=(TransportId.from_port_name(B.initiator_port),))
    assert res.status == 2 and pr.read_keys().keys == (2,)


def test_register_and_move() -> None:
    pr = PersistentReservations()
    register(pr, A, 1)
    out(pr, A, PrOutAction.RESERVE, key=1, pr_type=WE)
    ports = {1: T1}.get
    move = MoveParams(1, 9, TransportId.from_port_name(B.initiator_port), 1, unreg=True)
    res = pr.persistent_reserve_out(A, PrOutAction.REGISTER_AND_MOVE, WE, 0, move, ports)
    assert res.status == 0
    assert pr.read_keys().keys == (9,) and pr.read_reservation().key == 9 and pr.is_holder(B)
    bad = MoveParams(9, 9, TransportId.from_port_name(B.initiator_port), 1)
    assert pr.persistent_reserve_out(B, PrOutAction.REGISTER_AND_MOVE, WE, 0, bad,
                                     ports).sense.is_(Asc.INVALID_FIELD_IN_PARAMETER_LIST)
    unknown_port = MoveParams(9, 9, TransportId.from_port_name(A.initiator_port), 7)
    assert pr.persistent_reserve_out(B, PrOutAction.REGISTER_AND_MOVE, WE, 0, unknown_port,
                                     ports).sense.field_pointer.byte == 18


def test_spec_i_pt_only_with_register() -> None:
    pr = PersistentReservations()
    register(pr, A, 1)
    res = out(pr, A, PrOutAction.RESERVE, key=1, pr_type=WE, spec_i_pt=True)
    assert res.sense.is_(Asc.INVALID_FIELD_IN_PARAMETER_LIST)


def test_legacy_reserve_release() -> None:
    pr = PersistentReservations()
    assert pr.reserve6(A).status == 0
    assert pr.reserve6(B).status == 0x18
    assert pr.conflicts(B, Access.READ) and pr.conflicts(B, Access.INFO)
    assert not pr.conflicts(B, Access.NONE) and not pr.conflicts(A, Access.WRITE)
    assert out(pr, B, PrOutAction.REGISTER, sak=1).status == 0x18
    assert pr.release6(B).status == 0 and pr.legacy_holder is not None  # no effect
    pr.nexus_lost(A)
    assert pr.legacy_holder is None
    register(pr, B, 1)
    assert pr.reserve6(A).status == 0x18 and pr.release6(A).status == 0x18


def test_aptpl_persists_and_restores(tmp_path: Path) -> None:
    path = tmp_path / "lu0.pr"
    pr = PersistentReservations(aptpl_file=AptplFile(path))
    register(pr, A, 1, aptpl=True)
    out(pr, A, PrOutAction.RESERVE, key=1, pr_type=WE_RO)
    again = PersistentReservations(aptpl_file=AptplFile(path))
    assert again.snapshot() == pr.snapshot()
    assert again.report_capabilities().ptpl_a
    register(pr, B, 2)  # APTPL = 0 in the last REGISTER: nothing survives power loss
    assert not path.exists()
    assert PersistentReservations(aptpl_file=AptplFile(path)).read_keys().keys == ()
    assert not list(tmp_path.iterdir())


def test_aptpl_corrupt_file_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "lu0.pr"
    path.write_text("{not json")
    with pytest.raises(PrPersistenceError, match="corrupt"):
        PersistentReservations(aptpl_file=AptplFile(path))


def test_aptpl_write_failure_rolls_back(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    aptpl = AptplFile(tmp_path / "lu0.pr")
    pr = PersistentReservations(aptpl_file=aptpl)
    aptpl.path = blocker / "sub" / "lu0.pr"  # the state directory became unusable
    res = out(pr, A, PrOutAction.REGISTER, sak=1, aptpl=True)
    assert res.status == ScsiStatus.CHECK_CONDITION and pr.read_keys().keys == ()
    assert pr.generation == 0


def test_snapshot_apply_replicates_and_notifies() -> None:
    seen: list[PrState] = []
    primary = PersistentReservations(on_change=seen.append)
    register(primary, A, 1)
    out(primary, A, PrOutAction.RESERVE, key=1, pr_type=WE_RO)
    assert len(seen) == 2 and seen[-1] == primary.snapshot()
    replica = PersistentReservations()
    replica.apply(PrState.from_json(seen[-1].to_json()))
    assert replica.snapshot() == primary.snapshot()
    assert replica.conflicts(B, Access.WRITE) and replica.is_holder(A)


# -- invariants under random sequences --------------------------------------------------

NEXUSES = [A, A2, B, C, ItNexus("iqn.2026-01.lab:node-b,i,0x400000000002", T2, 2)]
KEYS = st.sampled_from([0, 1, 2, 3])


class PrMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pr = PersistentReservations()
        self.generation = 0

    @rule(n=st.sampled_from(NEXUSES), action=st.sampled_from(PrOutAction),
          key=KEYS, sak=KEYS, pr_type=st.sampled_from([*PrType, 0, 2]),
          all_tg_pt=st.booleans(), spec=st.booleans(), move_to=st.sampled_from(NEXUSES))
    def pr_out(self, n: ItNexus, action: PrOutAction, key: int, sak: int, pr_type: int,
               all_tg_pt: bool, spec: bool, move_to: ItNexus) -> None:
        before = self.pr.snapshot()
        if action == PrOutAction.REGISTER_AND_MOVE:
            params = MoveParams(key, sak, TransportId.from_port_name(move_to.initiator_port),
                                move_to.relative_target_port_id)
        else:
            tids = (TransportId.from_port_name(move_to.initiator_port),) if spec else ()
            params = PrOutParameters(key, sak, spec and action == PrOutAction.REGISTER,
                                     all_tg_pt, False, tids)
        res = self.pr.persistent_reserve_out(n, action, pr_type, 0, params, {1: T1, 2: T2}.get)
        after = self.pr.snapshot()
        counted = action not in (PrOutAction.RESERVE, PrOutAction.RELEASE)
        if res.status != ScsiStatus.GOOD:
            assert after == before
        elif counted and after.registrations != before.registrations:
            assert after.generation == before.generation + 1
        else:
            assert after.generation in (before.generation, before.generation + 1)
        if not counted:
            assert after.generation == before.generation

    @invariant()
    def one_registration_per_nexus(self) -> None:
        for n in NEXUSES:
            covering = [r for r in self.pr.registrations if r.covers(n)]
            assert len(covering) <= 1

    @invariant()
    def holder_is_registered(self) -> None:
        res = self.pr.reservation
        if res is not None:
            assert self.pr.registrations, "a reservation with no registrant"
            if res.holder is not None:
                assert res.holder in {r.id for r in self.pr.registrations}

    @invariant()
    def keys_are_nonzero(self) -> None:
        assert all(r.key for r in self.pr.registrations)

    @invariant()
    def generation_never_decreases(self) -> None:
        assert self.pr.generation >= self.generation
        self.generation = self.pr.generation


PrMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30,
                                       deadline=None)
TestPrMachine = PrMachine.TestCase


def test_registration_resources_are_bounded() -> None:
    pr = PersistentReservations(max_registrations=2)
    register(pr, A, 1)
    register(pr, B, 2)
    res = out(pr, C, PrOutAction.REGISTER, sak=3)
    assert res.sense.is_(Asc.INSUFFICIENT_REGISTRATION_RESOURCES)
    assert pr.read_keys().keys == (1, 2) and pr.generation == 2


def test_generation_wraps_at_32_bits() -> None:
    pr = PersistentReservations()
    pr.apply(PrState(generation=0xFFFFFFFF))
    register(pr, A, 1)
    assert pr.generation == 0
