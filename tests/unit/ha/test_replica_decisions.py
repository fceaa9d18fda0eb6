"""Pure HA decisions: sync loss, reconnect plans and lone start-up."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.target.ha.replica import (
    FailoverStrategy,
    MetadataError,
    ReplicaMetadata,
    ReplicaState,
    ReplicaSummary,
    ResyncMode,
    SyncLossDecision,
    decide_on_sync_loss,
    holds_newer_writes,
    plan_reconnect,
    startup_state,
)

S, SI, NS = (ReplicaState.SYNCHRONIZED, ReplicaState.SYNCHRONIZING,
             ReplicaState.NOT_SYNCHRONIZED)
HB, NM = FailoverStrategy.HEARTBEAT, FailoverStrategy.NODE_MAJORITY
ON, STOP = SyncLossDecision.CARRY_ON_ALONE, SyncLossDecision.STOP


def summary(node: str, priority: int, **kw) -> ReplicaSummary:
    base = dict(generation=1, state=S, alone=False, partner_left_at=0, clean_shutdown=False,
                dirty_map_valid=False)
    base.update(kw)
    return ReplicaSummary(node=node, priority=priority, **base)


@pytest.mark.parametrize(("strategy", "mine", "theirs", "alive", "witness", "expected"), [
    (HB, 1, 2, True, None, ON),     # sync lost, heartbeat alive: higher priority carries on
    (HB, 2, 1, True, None, STOP),   # ... lower priority stops: no split brain
    (HB, 2, 1, False, None, ON),    # sync and heartbeat lost: carry on (split-brain risk)
    (HB, 1, 2, False, None, ON),
    (NM, 2, 1, True, True, ON),     # node majority: the witness decides
    (NM, 1, 2, True, False, STOP),
    (NM, 1, 2, False, None, STOP),  # no partner, no witness: no majority
])
def test_decide_on_sync_loss(strategy, mine, theirs, alive, witness, expected):
    assert decide_on_sync_loss(strategy, my_priority=mine, partner_priority=theirs,
                               partner_alive=alive, witness_granted=witness) is expected


@pytest.mark.parametrize("strategy", [HB, NM])
@pytest.mark.parametrize("alive", [True, False])
def test_the_source_of_a_resync_carries_on_when_its_synchronizing_partner_is_lost(strategy,
                                                                                  alive):
    """Found by chaos primary-dies-while-sync-silent: the lower-priority survivor lost its
    link while resyncing the returned primary, saw its heartbeat answer and stopped by
    priority; the primary, only Synchronizing, could not serve either: nobody served."""
    assert decide_on_sync_loss(strategy, my_priority=2, partner_priority=1,
                               partner_alive=alive, witness_granted=False,
                               partner_synchronized=False) is ON


def test_survivor_resyncs_returning_partner_fast():
    survivor = summary("a", 1, generation=2, alone=True, partner_left_at=1, dirty_map_valid=True)
    returning = summary("b", 2, generation=1, state=S)  # killed while synchronized
    plan = plan_reconnect(returning, survivor)
    assert (plan.source, plan.target, plan.mode) == ("a", "b", ResyncMode.FAST)


def test_survivor_that_restarted_uncleanly_needs_full_resync():
    survivor = summary("a", 1, generation=2, alone=True, partner_left_at=1, dirty_map_valid=False)
    plan = plan_reconnect(survivor, summary("b", 2, state=NS))
    assert (plan.source, plan.mode) == ("a", ResyncMode.FULL)


def test_replica_two_generations_behind_needs_full_resync():
    survivor = summary("a", 1, generation=5, alone=True, partner_left_at=4, dirty_map_valid=True)
    plan = plan_reconnect(survivor, summary("b", 2, generation=3, state=NS))
    assert plan.mode is ResyncMode.FULL


def test_lower_priority_survivor_is_still_the_source():
    survivor = summary("b", 2, generation=3, alone=True, partner_left_at=2, dirty_map_valid=True)
    plan = plan_reconnect(summary("a", 1, generation=2, state=NS), survivor)
    assert (plan.source, plan.mode) == ("b", ResyncMode.FAST)


def test_both_served_alone_is_split_brain():
    a = summary("a", 1, generation=2, alone=True, partner_left_at=1)
    b = summary("b", 2, generation=2, alone=True, partner_left_at=1)
    plan = plan_reconnect(a, b)
    assert plan.split_brain and plan.source is None and plan.mode is ResyncMode.NONE
    assert "split brain" in plan.reason and "administrator" in plan.reason
    assert plan_reconnect(b, a) == plan_reconnect(b, a)  # both nodes reach the same verdict
    assert plan_reconnect(b, a).source is None


def test_merge_after_split_brain_defect_keeps_the_higher_generation():
    a = summary("a", 1, generation=2, alone=True, partner_left_at=1)
    b = summary("b", 2, generation=2, alone=True, partner_left_at=1)
    plan = plan_reconnect(a, b, merge_split_brain=True)
    assert plan.split_brain and plan.source == "a" and plan.mode is ResyncMode.FULL


def test_activity_log_survives_the_hello_round_trip():
    a = summary("a", 1, generation=2, alone=True, partner_left_at=1)
    from dataclasses import replace

    with_log = replace(a, activity_log=((2048, 2048), (0, 2048)))
    assert type(a).from_json(with_log.to_json()) == with_log


def test_neither_synchronized_nor_complete_waits_for_an_administrator():
    plan = plan_reconnect(summary("a", 1, state=NS), summary("b", 2, state=SI))
    assert plan.source is None and "administrator marks one synchronized" in plan.reason


def test_marked_replica_wins_even_against_a_newer_generation():
    marked = summary("b", 2, generation=3, alone=True, forced=True)
    newer = summary("a", 1, generation=4, alone=True, partner_left_at=2, dirty_map_valid=True)
    plan = plan_reconnect(newer, marked)
    assert (plan.source, plan.mode) == ("b", ResyncMode.FULL)


def test_clean_identical_replicas_need_no_resync_but_unclean_ones_do():
    a, b = summary("a", 1, clean_shutdown=True), summary("b", 2, clean_shutdown=True)
    assert plan_reconnect(a, b).mode is ResyncMode.NONE
    plan = plan_reconnect(replace(a, clean_shutdown=False), b)
    assert (plan.source, plan.mode) == ("a", ResyncMode.FULL)
    # a clean shutdown keeps the regions a stopped sequencer left suspect: copied
    suspect = replace(b, activity_log=((0, 128),), activity_log_known=True)
    plan = plan_reconnect(replace(a, activity_log_known=True), suspect)
    assert (plan.source, plan.mode) == ("a", ResyncMode.FAST)


summaries = st.builds(
    summary, st.sampled_from(["a"]), st.just(1), generation=st.integers(0, 4),
    state=st.sampled_from([S, SI, NS]), alone=st.booleans(), partner_left_at=st.integers(0, 4),
    clean_shutdown=st.booleans(), dirty_map_valid=st.booleans(), forced=st.booleans(),
    consistent=st.booleans())


@given(summaries, summaries)
def test_both_nodes_compute_the_same_plan(a, b):
    b = replace(b, node="b", priority=2)
    one, other = plan_reconnect(a, b), plan_reconnect(b, a)
    assert (one.source, one.target, one.mode) == (other.source, other.target, other.mode)
    assert one.needs_administrator == other.needs_administrator
    if one.needs_administrator:
        assert one.source is None
    if one.source is not None:
        src, dst = (a, b) if one.source == "a" else (b, a)
        # never a stale or half-copied replica as the source: a Synchronized one, or a
        # complete one that provably holds every write the other acknowledged
        assert src.state is S or (src.consistent and (
            (src.generation > dst.generation and dst.generation <= src.partner_left_at)
            or (src.generation == dst.generation and not src.alone and not dst.alone)))
        if src.state is S and dst.alone and dst.generation > dst.partner_left_at \
                and not src.forced:
            # a Synchronized replica never overwrites one that carried on alone past it
            # (carrying on alone always moves a replica past ``partner_left_at``)
            assert dst.generation < src.generation or not dst.consistent \
                or src.generation > dst.partner_left_at
    if a.alone and b.alone and not (a.forced and a.state is S) \
            and not (b.forced and b.state is S):
        assert one.source is None  # both carried on alone: split brain, never merged


def test_only_the_lone_survivor_may_serve_at_startup(tmp_path):
    meta = ReplicaMetadata(device="HA1", node="a", generation=2, state=S)
    assert startup_state(meta) is NS  # was in sync: the partner may be newer
    assert startup_state(replace(meta, alone=True)) is S
    assert startup_state(replace(meta, state=NS, alone=True)) is NS


def test_metadata_round_trips_and_bad_file_is_a_clear_error(tmp_path):
    meta = ReplicaMetadata(device="HA1", node="a", generation=3, state=SI).with_event("x")
    meta.save(tmp_path / "m.json")
    assert ReplicaMetadata.load(tmp_path / "m.json", "HA1", "a") == meta
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(MetadataError, match=r"HA metadata .* is unreadable"):
        ReplicaMetadata.load(tmp_path / "bad.json", "HA1", "a")


def test_both_down_uncleanly_resync_only_what_the_activity_logs_name():
    from dataclasses import replace

    a = replace(summary("a", 1, generation=3), activity_log=((0, 2048),),
                activity_log_known=True)
    b = replace(summary("b", 2, generation=3), activity_log_known=True)
    plan = plan_reconnect(a, b)
    assert (plan.source, plan.mode) == ("a", ResyncMode.FAST) and "activity logs" in plan.reason
    assert plan_reconnect(b, a) == plan
    unknown = replace(b, activity_log_known=False)  # no log found: anything may differ
    assert plan_reconnect(a, unknown).mode is ResyncMode.FULL


# -- neither replica Synchronized: the device picks the newest complete one ----------

def ns(node: str, priority: int, **kw) -> ReplicaSummary:
    return summary(node, priority, **{"state": NS, **kw})


#: (description, store1 (priority 1), store2 (priority 2), expected source, mode)
NEITHER_SYNCHRONIZED = [
    ("nightly case 1: store1 killed (g=3), store2 carried on alone (4), became the source of "
     "store1's resync, its disk failed: detached; store1 an unfinished resync target",
     ns("store1", 1, generation=3, partner_left_at=3, consistent=False),
     ns("store2", 2, generation=4, alone=True, partner_left_at=3, consistent=True,
        dirty_map_valid=True),
     "store2", ResyncMode.FAST),
    ("nightly case 2: as case 1, but store2 lost power while alone (its dirty map is gone)",
     ns("store1", 1, generation=3, partner_left_at=3, consistent=False),
     ns("store2", 2, generation=4, alone=True, partner_left_at=3, consistent=True),
     "store2", ResyncMode.FULL),
    ("store1 outdated (stopped on sync loss, complete) and store2 detached after carrying on",
     ns("store1", 1, generation=3, partner_left_at=3, consistent=True),
     ns("store2", 2, generation=4, alone=True, partner_left_at=3, consistent=True),
     "store2", ResyncMode.FULL),
    ("the newer side is the higher priority: direction does not follow priority",
     ns("store1", 1, generation=6, alone=True, partner_left_at=5, consistent=True,
        dirty_map_valid=True),
     ns("store2", 2, generation=5, partner_left_at=5, consistent=False),
     "store1", ResyncMode.FAST),
    ("the other is two generations behind: full copy",
     ns("store1", 1, generation=2, partner_left_at=2, consistent=True),
     ns("store2", 2, generation=4, alone=True, partner_left_at=3, consistent=True,
        dirty_map_valid=True),
     "store2", ResyncMode.FULL),
    ("the newer one is itself a half-done resync target: nobody can tell",
     ns("store1", 1, generation=3, partner_left_at=3, consistent=True),
     ns("store2", 2, generation=4, alone=True, partner_left_at=3, consistent=False),
     None, ResyncMode.NONE),
    ("true split brain: both carried on alone from generation 3",
     ns("store1", 1, generation=4, alone=True, partner_left_at=3, consistent=True),
     ns("store2", 2, generation=4, alone=True, partner_left_at=3, consistent=True),
     None, ResyncMode.NONE),
    ("split brain at different generations is still split brain",
     ns("store1", 1, generation=5, alone=True, partner_left_at=3, consistent=True),
     ns("store2", 2, generation=4, alone=True, partner_left_at=3, consistent=True),
     None, ResyncMode.NONE),
    ("generations that do not descend (store1 moved past store2's last sync point)",
     ns("store1", 1, generation=4, partner_left_at=4, consistent=True),
     ns("store2", 2, generation=5, alone=True, partner_left_at=3, consistent=True),
     None, ResyncMode.NONE),
    ("both stopped at the same generation (the freeze rule), both complete, logs known",
     replace(ns("store1", 1, generation=3, consistent=True), activity_log_known=True),
     replace(ns("store2", 2, generation=3, consistent=True), activity_log_known=True),
     "store1", ResyncMode.FAST),
    ("both stopped, no activity log on one side: full copy",
     replace(ns("store1", 1, generation=3, consistent=True), activity_log_known=True),
     ns("store2", 2, generation=3, consistent=True),
     "store1", ResyncMode.FULL),
    ("equal generations, the higher priority is the unfinished resync target",
     replace(ns("store1", 1, generation=3, consistent=False), activity_log_known=True),
     replace(ns("store2", 2, generation=3, consistent=True), activity_log_known=True),
     "store2", ResyncMode.FULL),
    ("equal generations, neither complete",
     ns("store1", 1, generation=3), ns("store2", 2, generation=3, state=SI),
     None, ResyncMode.NONE),
    ("equal generations, one carried on alone: cannot tell",
     ns("store1", 1, generation=3, consistent=True),
     ns("store2", 2, generation=3, alone=True, partner_left_at=2, consistent=True),
     None, ResyncMode.NONE),
]


@pytest.mark.parametrize(("store1", "store2", "source", "mode"),
                         [c[1:] for c in NEITHER_SYNCHRONIZED],
                         ids=[c[0][:60] for c in NEITHER_SYNCHRONIZED])
def test_neither_synchronized_picks_the_newest_complete_replica(store1, store2, source, mode):
    plan = plan_reconnect(store1, store2)
    assert (plan.source, plan.mode) == (source, mode), plan.reason
    assert plan_reconnect(store2, store1) == plan  # both nodes plan the same
    assert plan.needs_administrator is (source is None)  # (the node's status says so)
    if source is None:
        assert "administrator" in plan.reason
    else:
        assert plan.target == ({"store1", "store2"} - {source}).pop()


def test_true_split_brain_stays_split_brain_whatever_the_states():
    for s1, s2 in ((NS, NS), (S, NS), (NS, S), (S, S)):
        a = summary("a", 1, generation=4, alone=True, partner_left_at=3, consistent=True,
                    state=s1)
        b = summary("b", 2, generation=4, alone=True, partner_left_at=3, consistent=True,
                    state=s2)
        plan = plan_reconnect(a, b)
        assert plan.source is None and plan.split_brain, (s1, s2, plan)


def test_a_synchronized_replica_never_overwrites_one_that_carried_on_past_it():
    """store1 killed while Synchronized (its metadata still says so, generation 3);
    store2 carried on alone (4) and then detached on its own disk failure: store2 holds
    writes store1 never saw, so store2 is the source, not the Synchronized one."""
    store1 = summary("store1", 1, generation=3, partner_left_at=3, state=S)
    store2 = ns("store2", 2, generation=4, alone=True, partner_left_at=3, consistent=True,
                dirty_map_valid=True)
    plan = plan_reconnect(store1, store2)
    assert (plan.source, plan.target, plan.mode) == ("store2", "store1", ResyncMode.FAST)
    # but an administrator's mark on store1 still wins (StarWind's "mark as synchronized")
    forced = replace(store1, forced=True, alone=True, generation=4)
    assert plan_reconnect(forced, store2).source == "store1"


def test_marking_the_outdated_side_is_known_to_discard_acknowledged_writes():
    outdated = ns("store1", 1, generation=3, partner_left_at=3, consistent=False)
    survivor = ns("store2", 2, generation=4, alone=True, partner_left_at=3, consistent=True)
    assert holds_newer_writes(survivor, outdated)  # store1's mark would lose them
    assert not holds_newer_writes(outdated, survivor)
    split = replace(outdated, generation=4, alone=True, consistent=True)
    assert not holds_newer_writes(survivor, split)  # split brain: either mark is a choice
    stopped_together = ns("store1", 1, generation=4, consistent=True)
    assert not holds_newer_writes(replace(survivor, alone=False), stopped_together)


def test_old_metadata_without_the_consistent_field_loads_on_the_safe_side(tmp_path):
    import json

    for state, expected in ((S, True), (NS, False), (SI, False)):
        body = {"device": "HA1", "node": "a", "generation": 2, "state": state.value}
        (tmp_path / "m.json").write_text(json.dumps(body))
        assert ReplicaMetadata.load(tmp_path / "m.json", "HA1", "a").consistent is expected
    legacy = ReplicaSummary.from_json({k: v for k, v in summary("a", 1, state=NS).to_json()
                                       .items() if k != "consistent"})
    assert legacy.consistent is False


def test_consistent_round_trips_in_metadata_and_hello(tmp_path):
    meta = ReplicaMetadata(device="HA1", node="a", generation=3, state=NS, consistent=True)
    meta.save(tmp_path / "m.json")
    loaded = ReplicaMetadata.load(tmp_path / "m.json", "HA1", "a")
    assert loaded.consistent is True
    hello = ReplicaSummary.of(loaded, 1)
    assert ReplicaSummary.from_json(hello.to_json()).consistent is True
    assert loaded.partner_seen is None  # (older files have none either)
    seen = replace(meta, partner_seen=hello.to_json())
    seen.save(tmp_path / "m.json")
    partner = ReplicaMetadata.load(tmp_path / "m.json", "HA1", "a").partner_seen
    assert partner is not None and ReplicaSummary.from_json(partner) == hello
