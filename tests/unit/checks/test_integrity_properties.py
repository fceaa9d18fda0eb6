"""Property tests of the integrity checker against a brute-force oracle of the model:
any image built from acceptable values is clean, and replacing one block that must hold
acknowledged data with an unacceptable value is reported at exactly that block."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario_history import Scenario

BLOCKS = 8
BS = 4096

write_st = st.tuples(
    st.integers(0, BLOCKS - 1),          # first block
    st.integers(1, 3),                   # blocks
    st.integers(0, 100),                 # invoke
    st.integers(1, 50),                  # duration
    st.sampled_from(["ok", "ok", "ok", "info", "fail"]),
)


def acceptable(writes, block):
    """Brute force: the values block may hold (write indexes, or None for initial)."""
    covering = [i for i, w in enumerate(writes) if w[0] <= block < w[0] + w[1]]
    ok = [i for i in covering if writes[i][4] == "ok"]
    values = set()
    if not ok:
        values.add(None)
    for i in covering:
        _, _, inv, dur, outcome = writes[i]
        if outcome == "fail":
            continue
        end = float("inf") if outcome == "info" else inv + dur
        if not any(writes[j][2] > end for j in ok):
            values.add(i)
    return values


def build(tmp_path, writes, choices):
    s = Scenario(tmp_path)
    for i, (b0, n, inv, dur, outcome) in enumerate(writes):
        n = min(n, BLOCKS - b0)
        writes[i] = (b0, n, inv, dur, outcome)
        s.write(i, 0, b0, n, invoke=inv, complete=inv + dur, outcome=outcome, apply=False)
    image = bytearray(BLOCKS * BS)
    for block in range(BLOCKS):
        options = sorted(acceptable(writes, block), key=lambda v: -1 if v is None else v)
        value = options[choices.draw(st.integers(0, len(options) - 1))]
        if value is not None:
            b0 = writes[value][0]
            data = s.stamps[(value, 0)]
            image[block * BS:(block + 1) * BS] = data[(block - b0) * BS:(block - b0 + 1) * BS]
    return s, image


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(write_st, min_size=1, max_size=12), st.data())
def test_any_acceptable_image_is_clean(tmp_path_factory, writes, data):
    s, image = build(tmp_path_factory.mktemp("p"), writes, data)
    verdict = s.integrity(bytes(image))
    assert verdict.valid, [p.message for p in verdict.problems]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(write_st, min_size=1, max_size=12), st.data())
def test_one_unacceptable_block_is_reported_exactly(tmp_path_factory, writes, data):
    s, image = build(tmp_path_factory.mktemp("p"), writes, data)
    bad_choices = []
    for block in range(BLOCKS):
        ok_values = acceptable(writes, block)
        covering = [i for i, w in enumerate(writes) if w[0] <= block < w[0] + w[1]
                    and w[4] != "fail"]
        candidates = [v for v in [None, *covering] if v not in ok_values]
        bad_choices += [(block, v) for v in candidates]
    if not bad_choices:
        return
    block, value = bad_choices[data.draw(st.integers(0, len(bad_choices) - 1))]
    if value is None:
        image[block * BS:(block + 1) * BS] = bytes(BS)
        expected_kind = "lost"
    else:
        b0 = writes[value][0]
        image[block * BS:(block + 1) * BS] = s.stamps[(value, 0)][(block - b0) * BS:
                                                                  (block - b0 + 1) * BS]
        expected_kind = "stale"
    verdict = s.integrity(bytes(image))
    assert [(p.kind, p.offset, p.length) for p in verdict.problems] == [
        (expected_kind, block * BS, BS)]
