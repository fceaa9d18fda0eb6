"""Integrity checker: one hand-made history per verdict, and clean runs report nothing."""

from __future__ import annotations

import json

from harness.checks.integrity import IntegrityCheck

BS = 4096


def kinds(verdict):
    return [(p.kind, p.offset, p.length) for p in verdict.problems]


def test_clean_run_reports_nothing(scenario):
    scenario.write(0, 0, 0, 2, invoke=10, complete=20)
    scenario.write(1, 0, 4, invoke=15, complete=25)
    scenario.write(0, 1, 0, invoke=30, complete=40)
    verdict = scenario.integrity()
    assert verdict.valid, verdict.problems
    assert verdict.stats["devices"]["image"]["written_blocks"] == 3


def test_acknowledged_write_missing_is_lost(scenario):
    scenario.write(0, 0, 3, invoke=10, complete=20, apply=False)
    verdict = scenario.integrity()
    assert kinds(verdict) == [("lost", 3 * BS, BS)]
    problem = verdict.problems[0]
    assert [r["type"] for r in problem.records] == ["invoke", "ok"]
    assert problem.records[0]["seq"] == 0


def test_adjacent_lost_blocks_of_one_write_merge(scenario):
    scenario.write(0, 0, 2, 4, invoke=10, complete=20, apply=False)
    assert kinds(scenario.integrity()) == [("lost", 2 * BS, 4 * BS)]


def test_older_write_back_after_newer_ack_is_stale(scenario):
    scenario.write(0, 0, 5, invoke=10, complete=20)
    old = bytes(scenario.image)
    scenario.write(1, 0, 5, invoke=30, complete=40)
    verdict = scenario.integrity(old)
    assert kinds(verdict) == [("stale", 5 * BS, BS)]
    assert {r["op"] for r in verdict.problems[0].records} == {0, 1}


def test_concurrent_writes_may_land_in_either_order(scenario):
    scenario.write(0, 0, 5, invoke=10, complete=30)
    first = bytes(scenario.image)
    scenario.write(1, 0, 5, invoke=20, complete=40)
    assert scenario.integrity(first).valid
    assert scenario.integrity().valid


def test_info_write_may_or_may_not_be_visible(scenario):
    scenario.write(0, 0, 1, invoke=10, complete=20)
    before = bytes(scenario.image)
    scenario.write(0, 1, 1, invoke=30, complete=90, outcome="info")
    assert scenario.integrity(before).valid
    assert scenario.integrity().valid


def test_unfinished_write_counts_as_info(scenario):
    scenario.write(0, 0, 6, invoke=10, complete=None, outcome=None, apply=False)
    assert scenario.integrity().valid
    scenario.write(0, 1, 7, invoke=10, complete=None, outcome=None)
    assert scenario.integrity().valid


def test_info_write_is_still_overwritten_by_later_ok_write(scenario):
    scenario.write(0, 0, 1, invoke=10, complete=20, outcome="info")
    scenario.write(1, 0, 1, invoke=30, complete=40, apply=False)
    # the info write may have landed after the ok write: still acceptable
    assert scenario.integrity().valid


def test_failed_write_must_not_be_visible(scenario):
    scenario.write(0, 0, 2, invoke=10, complete=20, outcome="fail", apply=False)
    assert scenario.integrity().valid
    scenario.write(0, 1, 3, invoke=10, complete=20, outcome="fail")
    verdict = scenario.integrity()
    assert kinds(verdict) == [("phantom", 3 * BS, BS)]
    assert "failed" in verdict.problems[0].message


def test_stamp_never_issued_is_phantom(scenario):
    scenario.put(4, scenario.stamp(9, 99, 4))
    verdict = scenario.integrity()
    assert kinds(verdict) == [("phantom", 4 * BS, BS)]
    assert "never issued" in verdict.problems[0].message


def test_sectors_of_two_writes_in_one_block_are_torn(scenario):
    scenario.write(0, 0, 2, invoke=10, complete=20)
    old = scenario.stamps[(0, 0)]
    scenario.write(1, 0, 2, invoke=30, complete=40)
    image = bytearray(scenario.image)
    image[2 * BS + 2048:3 * BS] = old[2048:]
    verdict = scenario.integrity(image)
    assert kinds(verdict) == [("torn", 2 * BS, BS)]
    assert "sectors from" in verdict.problems[0].message


def test_half_written_block_is_torn(scenario):
    scenario.write(0, 0, 2, invoke=10, complete=20)
    image = bytearray(scenario.image)
    image[2 * BS + 512:3 * BS] = bytes(BS - 512)
    assert kinds(scenario.integrity(image)) == [("torn", 2 * BS, BS)]


def test_tearing_at_logical_block_boundaries_is_allowed_for_concurrent_writes(scenario):
    scenario.write(0, 0, 2, invoke=10, complete=30)
    first = scenario.stamps[(0, 0)]
    scenario.write(1, 0, 2, invoke=20, complete=40)
    image = bytearray(scenario.image)
    image[2 * BS:2 * BS + 1024] = first[:1024]  # 512-byte logical blocks: SBC allows it
    assert scenario.integrity(image).valid


def test_tearing_inside_a_4k_logical_block_is_never_allowed(make_scenario):
    s = make_scenario(logical_block_size=4096)
    s.write(0, 0, 2, invoke=10, complete=30)
    first = s.stamps[(0, 0)]
    s.write(1, 0, 2, invoke=20, complete=40)
    image = bytearray(s.image)
    image[2 * BS:2 * BS + 1024] = first[:1024]
    assert kinds(s.integrity(image)) == [("torn", 2 * BS, BS)]


def test_block_stamped_for_another_address_is_misplaced(scenario):
    scenario.write(0, 0, 5, invoke=10, complete=20)
    scenario.write(0, 1, 3, invoke=10, complete=20)
    image = bytearray(scenario.image)
    image[3 * BS:4 * BS] = scenario.stamps[(0, 0)]
    verdict = scenario.integrity(image)
    assert kinds(verdict) == [("misplaced", 3 * BS, BS)]
    assert f"byte offset {5 * BS}" in verdict.problems[0].message


def test_bad_crc_is_corrupt(scenario):
    scenario.write(0, 0, 1, invoke=10, complete=20)
    image = bytearray(scenario.image)
    image[BS + 700] ^= 0x40
    verdict = scenario.integrity(image)
    assert kinds(verdict) == [("corrupt", BS, BS)]
    assert "sector 1" in verdict.problems[0].message


def test_garbage_in_never_written_block_of_empty_device_is_corrupt(scenario):
    image = bytearray(scenario.image)
    image[9 * BS + 5] = 1
    assert kinds(scenario.integrity(image)) == [("corrupt", 9 * BS, BS)]


def test_unknown_initial_content_is_accepted_where_nothing_was_acknowledged(make_scenario):
    s = make_scenario(initial="unknown")
    image = bytearray(s.image)
    image[9 * BS:10 * BS] = b"\xab" * BS
    image[8 * BS:9 * BS] = s.stamp(0, 5, 8, generation=0x1234)
    assert s.integrity(image).valid
    s.write(0, 0, 9, invoke=10, complete=20, apply=False)
    image[9 * BS:10 * BS] = b"\xab" * BS
    assert kinds(s.integrity(image)) == [("corrupt", 9 * BS, BS)]


def test_block_of_another_run_on_an_empty_device_is_misplaced(scenario):
    image = bytearray(scenario.image)
    image[8 * BS:9 * BS] = scenario.stamp(0, 5, 8, generation=0x1234)
    verdict = scenario.integrity(image)
    assert kinds(verdict) == [("misplaced", 8 * BS, BS)]
    assert "another run" in verdict.problems[0].message


def test_problems_are_json_with_records(scenario):
    scenario.write(0, 0, 3, invoke=10, complete=20, apply=False)
    doc = json.loads(json.dumps(scenario.integrity().to_json()))
    assert doc["valid"] is False
    assert doc["counts"] == {"lost": 1}
    (p,) = doc["problems"]
    assert (p["kind"], p["offset"], p["length"], p["device"]) == ("lost", 3 * BS, BS, "image")
    assert p["records"][1]["type"] == "ok"


def test_check_in_chunks_matches_whole_buffer(scenario):
    scenario.write(0, 0, 3, 3, invoke=10, complete=20, apply=False)
    whole = scenario.integrity()
    check = IntegrityCheck(scenario.load())
    image = bytes(scenario.image)
    problems = []
    for off in range(0, len(image), 2 * BS):
        problems += check.check_buffer(off, image[off:off + 2 * BS], "image")
    assert [(p.kind, p.offset) for p in problems] == [("lost", 3 * BS), ("lost", 4 * BS)]
    assert [(p.kind, p.offset) for p in whole.problems] == [("lost", 3 * BS)]


class MemoryDevice:
    """A BlockDevice over a bytes image; reads at or past ``fail_at`` raise."""

    block_size = 512

    def __init__(self, image: bytes, name: str, fail_at: int | None = None) -> None:
        self.image, self.name, self.fail_at = image, name, fail_at
        self.num_blocks = len(image) // 512

    async def read(self, lba, count):
        from harness.workload.device import Completion
        from harness.workload.errors import DeviceError

        if self.fail_at is not None and (lba + count) * 512 > self.fail_at:
            raise DeviceError(f"path {self.name} lost")
        return Completion(self.image[lba * 512:(lba + count) * 512], self.name)


def test_every_path_is_read_and_a_failing_path_is_unreadable(scenario):
    import asyncio

    from harness.checks.integrity import check_devices

    scenario.write(0, 0, 3, invoke=10, complete=20, apply=False)
    image = bytes(scenario.image)
    devices = {"p0": MemoryDevice(image, "p0"), "p1": MemoryDevice(image, "p1", 8 * BS)}
    verdict = asyncio.run(check_devices(scenario.load(), devices, chunk=4 * BS))
    assert sorted((p.device, p.kind, p.offset, p.length) for p in verdict.problems) == [
        ("p0", "lost", 3 * BS, BS), ("p1", "lost", 3 * BS, BS),
        ("p1", "unreadable", 8 * BS, 8 * BS)]
    assert "path p1 lost" in next(p for p in verdict.problems if p.kind == "unreadable").message
