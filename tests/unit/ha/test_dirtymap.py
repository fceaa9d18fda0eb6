"""The dirty-region map: marking, clearing, persistence, distrust of bad files."""

from __future__ import annotations

from harness.target.ha.dirtymap import DirtyMap


def test_marks_every_region_a_range_touches():
    m = DirtyMap(num_blocks=1000, block_size=512, region_bytes=64 * 512)  # 64 blocks/region
    m.mark(60, 10)  # crosses the boundary between regions 0 and 1
    assert list(m.dirty_regions()) == [0, 1] and len(m) == 2
    m.mark(999, 1)
    assert list(m.dirty_regions())[-1] == m.num_regions - 1
    assert m.region_extent(m.num_regions - 1) == (960, 40)  # last region is short


def test_clear_and_count():
    m = DirtyMap(num_blocks=256, block_size=512, region_bytes=32 * 512)
    m.mark_all()
    assert len(m) == 8
    m.clear(3)
    m.clear(3)
    assert len(m) == 7 and not m.is_dirty(3)


def test_saved_map_round_trips(tmp_path):
    m = DirtyMap(num_blocks=4096, block_size=512)
    m.mark(5, 1)
    m.mark(3000, 100)
    m.save(tmp_path / "d")
    loaded = DirtyMap.load(tmp_path / "d", 4096, 512)
    assert list(loaded.dirty_regions()) == list(m.dirty_regions())


def test_missing_or_corrupt_map_means_everything_is_dirty(tmp_path):
    assert len(DirtyMap.load(tmp_path / "absent", 4096, 512)) == 2
    (tmp_path / "bad").write_bytes(b"\x07\x00")
    assert len(DirtyMap.load(tmp_path / "bad", 4096, 512)) == 2
    (tmp_path / "short").write_bytes(b"\x00")
    assert len(DirtyMap.load(tmp_path / "short", 4096, 512)) == 2
