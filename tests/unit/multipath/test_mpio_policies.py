"""Load-balance policies: ALUA tiers first, then each MSDSM policy's own choice."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.initiator.mpio.policies import (
    ALUA_CARRIES_IO,
    POLICIES,
    FailoverOnly,
    LeastBlocks,
    LeastQueueDepth,
    PathSnapshot,
    PolicyError,
    RoundRobin,
    RoundRobinWithSubset,
    WeightedPaths,
    policy_named,
    tier,
)
from harness.initiator.mpio.status import AluaState, PathState

USABLE_ALUA = (AluaState.ACTIVE_OPTIMIZED, AluaState.ACTIVE_NON_OPTIMIZED)


@st.composite
def path_sets(draw):
    n = draw(st.integers(min_value=1, max_value=6))
    paths = []
    preferred_index = draw(st.one_of(st.none(), st.integers(0, n - 1)))
    for i in range(n):
        paths.append(
            PathSnapshot(
                name=f"p{i}",
                state=draw(st.sampled_from(list(PathState))),
                designation=draw(st.sampled_from([PathState.ACTIVE, PathState.STANDBY])),
                alua=draw(st.sampled_from(list(AluaState))),
                outstanding=draw(st.integers(0, 8)),
                bytes_in_flight=draw(st.integers(0, 1 << 20)),
                weight=draw(st.integers(0, 5)),
                preferred=preferred_index == i,
            )
        )
    return paths


def _by_name(paths):
    return {p.name: p for p in paths}


@settings(max_examples=300)
@given(paths=path_sets(), policy_name=st.sampled_from(sorted(POLICIES)))
def test_every_policy_picks_a_usable_path_of_the_best_tier(paths, policy_name):
    policy = policy_named(policy_name)
    pick = policy.select(paths)
    honour = policy.honour_designation
    tiers = [tier(p, honour_designation=honour) for p in paths]
    usable = [p for p, t in zip(paths, tiers, strict=True)
              if p.state.healthy and p.alua in ALUA_CARRIES_IO]
    if not usable:
        assert pick is None
        return
    chosen = _by_name(paths)[pick]
    assert chosen.state in (PathState.ACTIVE, PathState.STANDBY)
    assert chosen.alua not in (AluaState.UNAVAILABLE, AluaState.OFFLINE, AluaState.TRANSITIONING)
    assert tier(chosen, honour_designation=honour) == min(tiers)


@settings(max_examples=300)
@given(paths=path_sets())
def test_failover_only_never_picks_a_standby_while_an_active_path_is_usable(paths):
    pick = FailoverOnly().select(paths)
    active_usable = [
        p for p in paths
        if p.state.healthy and p.designation == PathState.ACTIVE and p.alua in USABLE_ALUA
    ]
    if active_usable:
        chosen = _by_name(paths)[pick]
        assert chosen.designation == PathState.ACTIVE
        assert chosen.alua != AluaState.STANDBY


@settings(max_examples=300)
@given(paths=path_sets())
def test_least_queue_depth_picks_a_minimum_of_its_tier(paths):
    policy = LeastQueueDepth()
    pick = policy.select(paths)
    tier_paths = policy.best_tier(paths)
    if pick is not None:
        assert _by_name(paths)[pick].outstanding == min(p.outstanding for p in tier_paths)


@settings(max_examples=300)
@given(paths=path_sets())
def test_least_blocks_picks_the_fewest_bytes_in_flight_of_its_tier(paths):
    policy = LeastBlocks()
    pick = policy.select(paths)
    tier_paths = policy.best_tier(paths)
    if pick is not None:
        assert _by_name(paths)[pick].bytes_in_flight == min(p.bytes_in_flight for p in tier_paths)


@settings(max_examples=300)
@given(paths=path_sets())
def test_weighted_paths_picks_the_lowest_weight_of_its_tier(paths):
    policy = WeightedPaths()
    pick = policy.select(paths)
    if pick is not None:
        assert _by_name(paths)[pick].weight == min(p.weight for p in policy.best_tier(paths))


@settings(max_examples=200)
@given(paths=path_sets(), rounds=st.integers(1, 5))
def test_round_robin_spreads_evenly_over_its_tier(paths, rounds):
    policy = RoundRobin()
    tier_paths = policy.best_tier(paths)
    picks = Counter(policy.select(paths) for _ in range(rounds * max(1, len(tier_paths))))
    if not tier_paths:
        assert picks == Counter({None: rounds})
        return
    assert picks == Counter({p.name: rounds for p in tier_paths})


def _healthy(name, **kw):
    return PathSnapshot(name=name, **kw)


def test_round_robin_ignores_designation_but_subset_honours_it():
    paths = [_healthy("a"), _healthy("b", designation=PathState.STANDBY), _healthy("c")]
    rr = RoundRobin()
    assert [rr.select(paths) for _ in range(3)] == ["a", "b", "c"]
    rrws = RoundRobinWithSubset()
    assert [rrws.select(paths) for _ in range(4)] == ["a", "c", "a", "c"]


def test_round_robin_with_subset_falls_back_to_standby_when_the_subset_is_down():
    paths = [
        _healthy("a", state=PathState.FAILED),
        _healthy("b", designation=PathState.STANDBY),
        _healthy("c", state=PathState.RECONNECTING),
    ]
    assert RoundRobinWithSubset().select(paths) == "b"


def test_round_robin_cursor_survives_a_path_leaving_and_returning():
    rr = RoundRobin()
    full = [_healthy("a"), _healthy("b"), _healthy("c")]
    assert rr.select(full) == "a"
    assert rr.select(full) == "b"
    without_c = [full[0], full[1], _healthy("c", state=PathState.FAILED)]
    assert rr.select(without_c) == "a"
    assert [rr.select(full) for _ in range(3)] == ["b", "c", "a"]


def test_alua_optimized_paths_win_over_non_optimized_and_standby():
    paths = [
        _healthy("ano", alua=AluaState.ACTIVE_NON_OPTIMIZED),
        _healthy("sb", alua=AluaState.STANDBY),
        _healthy("ao", alua=AluaState.ACTIVE_OPTIMIZED, outstanding=50, weight=9),
    ]
    for name in POLICIES:
        assert policy_named(name).select(paths) == "ao", name


def test_alua_standby_is_used_only_when_nothing_better_is_left():
    paths = [
        _healthy("sb", alua=AluaState.STANDBY),
        _healthy("un", alua=AluaState.UNAVAILABLE),
        _healthy("off", alua=AluaState.OFFLINE),
        _healthy("tr", alua=AluaState.TRANSITIONING),
    ]
    for name in POLICIES:
        assert policy_named(name).select(paths) == "sb", name
    assert all(policy_named(n).select(paths[1:]) is None for n in POLICIES)


def test_failover_only_fails_back_to_the_preferred_path_and_otherwise_sticks():
    fo = FailoverOnly()
    paths = [_healthy("a"), _healthy("b", preferred=True), _healthy("c")]
    assert fo.select(paths) == "b"
    down = [paths[0], _healthy("b", preferred=True, state=PathState.FAILED), paths[2]]
    assert fo.select(down) == "a"
    # a non-preferred path in use stays in use while it works
    assert fo.select([_healthy("a", state=PathState.FAILED), paths[1], paths[2]]) == "b"
    fo2 = FailoverOnly()
    assert fo2.select([_healthy("a", state=PathState.FAILED), _healthy("b"), _healthy("c")]) == "b"
    assert fo2.select([_healthy("a"), _healthy("b"), _healthy("c")]) == "b"
    assert fo.select(paths) == "b"


def test_least_queue_depth_breaks_ties_round_robin():
    lqd = LeastQueueDepth()
    paths = [
        _healthy("a", outstanding=2), _healthy("b", outstanding=1), _healthy("c", outstanding=1)
    ]
    assert [lqd.select(paths) for _ in range(4)] == ["b", "c", "b", "c"]


@pytest.mark.parametrize(
    ("name", "cls"),
    [("RR", RoundRobin), ("round-robin", RoundRobin), ("FOO", FailoverOnly),
     ("LQD", LeastQueueDepth), ("weighted-paths", WeightedPaths), ("lb", LeastBlocks),
     ("RoundRobinWithSubset", RoundRobinWithSubset)],
)
def test_policies_are_found_by_their_names_and_msdsm_short_names(name, cls):
    assert type(policy_named(name)) is cls


def test_an_unknown_policy_name_lists_the_known_ones():
    with pytest.raises(PolicyError, match="round-robin"):
        policy_named("random")
