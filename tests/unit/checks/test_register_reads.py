"""Register checker: reads during the run, one hand-made history per verdict."""

from __future__ import annotations

from harness.checks.register import check_reads

BS = 4096


def problems(scenario):
    return [(p.kind, p.offset) for p in check_reads(scenario.load()).problems]


def test_reads_of_current_values_are_clean(scenario):
    scenario.read(0, invoke=1, complete=2)
    scenario.write(0, 0, 0, invoke=10, complete=20)
    scenario.read(0, invoke=30, complete=40)
    scenario.write(0, 1, 0, invoke=50, complete=60)
    scenario.read(0, invoke=70, complete=80)
    verdict = check_reads(scenario.load())
    assert verdict.valid, verdict.problems
    assert verdict.stats == {"reads": 3, "blocks": 3}


def test_read_of_overwritten_value_is_stale_and_names_the_fault(scenario):
    scenario.write(0, 0, 2, invoke=10, complete=20)
    old = bytes(scenario.image[2 * BS:3 * BS])
    scenario.write(1, 0, 2, invoke=30, complete=40)
    scenario.fault("kill node1", 45, 100)
    scenario.read(2, invoke=50, complete=60, path="p1", data=old)
    verdict = check_reads(scenario.load())
    assert [(p.kind, p.offset) for p in verdict.problems] == [("stale_read", 2 * BS)]
    p = verdict.problems[0]
    assert p.detail["faults"] == ["kill node1"]
    assert "kill node1" in p.message and p.device == "p1"
    types = [r["type"] for r in p.records]
    assert types.count("fault") == 2 and types.count("invoke") == 3


def test_read_concurrent_with_overwrite_may_return_either(scenario):
    scenario.write(0, 0, 2, invoke=10, complete=20)
    old = bytes(scenario.image[2 * BS:3 * BS])
    scenario.write(1, 0, 2, invoke=30, complete=40)
    new = bytes(scenario.image[2 * BS:3 * BS])
    scenario.read(2, invoke=35, complete=45, data=old)
    scenario.read(2, invoke=25, complete=32, data=new)
    assert problems(scenario) == []


def test_initial_content_after_acknowledged_write_is_stale(scenario):
    scenario.write(0, 0, 3, invoke=10, complete=20, apply=False)
    scenario.read(3, invoke=30, complete=40)
    assert problems(scenario) == [("stale_read", 3 * BS)]


def test_info_write_may_appear_at_any_later_time(scenario):
    scenario.write(0, 0, 1, invoke=10, complete=20, outcome="info")
    info = bytes(scenario.image[BS:2 * BS])
    scenario.write(1, 0, 1, invoke=30, complete=40)
    scenario.read(1, invoke=500, complete=510, data=info)
    scenario.read(1, invoke=500, complete=510, data=bytes(BS))
    # zeros are stale (the ok write completed), the info write is not
    assert problems(scenario) == [("stale_read", BS)]


def test_value_from_the_future_is_reported(scenario):
    scenario.read(4, invoke=1, complete=5, data=scenario.stamp(0, 0, 4))
    scenario.write(0, 0, 4, invoke=10, complete=20)
    assert problems(scenario) == [("future_read", 4 * BS)]


def test_failed_write_read_back_is_phantom(scenario):
    scenario.write(0, 0, 4, invoke=10, complete=20, outcome="fail")
    scenario.read(4, invoke=30, complete=40)
    assert problems(scenario) == [("phantom_read", 4 * BS)]


def test_torn_and_corrupt_reads_are_reported(scenario):
    scenario.write(0, 0, 6, invoke=10, complete=20)
    scenario.write(1, 0, 6, invoke=30, complete=40)
    torn = bytearray(scenario.image[6 * BS:7 * BS])
    torn[:256] = scenario.stamps[(0, 0)][:256]  # tear inside a 512-byte sector
    scenario.read(6, invoke=50, complete=60, data=bytes(torn))
    bad = bytearray(scenario.image[6 * BS:7 * BS])
    bad[100] ^= 1
    scenario.read(6, invoke=50, complete=60, data=bytes(bad))
    assert problems(scenario) == [("corrupt_read", 6 * BS), ("corrupt_read", 6 * BS)]
    mixed = bytearray(scenario.image[6 * BS:7 * BS])
    mixed[:2048] = scenario.stamps[(0, 0)][:2048]  # old half after the new write completed
    scenario.read(6, invoke=70, complete=80, data=bytes(mixed))
    assert problems(scenario)[-1] == ("torn_read", 6 * BS)


def test_multi_block_read_reports_only_the_bad_block(scenario):
    scenario.write(0, 0, 8, 3, invoke=10, complete=20)
    data = bytearray(scenario.image[8 * BS:11 * BS])
    data[BS:2 * BS] = bytes(BS)
    scenario.read(8, 3, invoke=30, complete=40, data=bytes(data))
    assert problems(scenario) == [("stale_read", 9 * BS)]


def test_read_torn_at_logical_blocks_during_concurrent_writes_is_allowed(make_scenario):
    for lbs, expected in ((512, []), (4096, [("torn_read", 6 * BS)])):
        s = make_scenario(logical_block_size=lbs)
        s.write(0, 0, 6, invoke=10, complete=50)
        first = s.stamps[(0, 0)]
        s.write(1, 0, 6, invoke=20, complete=60)
        mixed = bytearray(s.image[6 * BS:7 * BS])
        mixed[:1024] = first[:1024]
        s.read(6, invoke=30, complete=40, data=bytes(mixed))
        assert problems(s) == expected, lbs
