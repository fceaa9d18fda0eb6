"""Block stamps: round trips and every classification, with hypothesis."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.workload.stamp import (
    SECTOR,
    BlockKind,
    SectorState,
    WriteId,
    classify_block,
    classify_blocks,
    encode_write,
    scan_sectors,
)

ids = st.builds(WriteId, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                st.integers(0, 2**63 - 1))
sectors_off = st.integers(0, 2**40)
block_sectors = st.sampled_from([1, 2, 8, 16])


@settings(max_examples=60, deadline=None)
@given(ids, sectors_off, block_sectors, st.integers(1, 4), st.integers(0, 2**32))
def test_every_written_block_reads_back_intact_with_its_id(wid, sector, k, nblocks, seed):
    offset = sector // k * k * SECTOR
    data = encode_write(offset, nblocks * k * SECTOR, wid, seed=seed, timestamp=123)
    blocks = classify_blocks(scan_sectors(data, offset), k * SECTOR)
    assert blocks.kind.tolist() == [BlockKind.INTACT] * nblocks
    assert {blocks.write_id(i) for i in range(nblocks)} == {wid}
    scan = scan_sectors(data, offset)
    assert scan.lba.tolist() == list(range(offset // SECTOR, offset // SECTOR + nblocks * k))
    assert int(scan.timestamp[0]) == 123


@settings(max_examples=30, deadline=None)
@given(ids, st.integers(0, 2**20), st.integers(0, 2**32))
def test_encoding_is_deterministic_and_payload_depends_on_seed(wid, sector, seed):
    a = encode_write(sector * SECTOR, 4096, wid, seed=seed, timestamp=1)
    assert a == encode_write(sector * SECTOR, 4096, wid, seed=seed, timestamp=1)
    b = encode_write(sector * SECTOR, 4096, wid, seed=seed + 1, timestamp=1)
    assert a[40:508] != b[40:508]


@settings(max_examples=60, deadline=None)
@given(ids, st.integers(0, 8 * SECTOR - 1), st.integers(1, 255))
def test_any_flipped_bit_makes_the_block_corrupt(wid, pos, flip):
    data = bytearray(encode_write(8192, 8 * SECTOR, wid, seed=1, timestamp=1))
    data[pos] ^= flip
    state = classify_block(bytes(data), 8192)
    assert state.kind == BlockKind.CORRUPT
    scan = scan_sectors(bytes(data), 8192)
    bad = pos // SECTOR
    assert scan.state[bad] in (SectorState.BAD_CRC, SectorState.GARBAGE)
    others = [s for i, s in enumerate(scan.state.tolist()) if i != bad]
    assert others == [SectorState.STAMPED] * 7


@settings(max_examples=40, deadline=None)
@given(ids, ids, st.integers(1, 7))
def test_sectors_from_two_writes_are_torn(a, b, cut):
    wa = encode_write(0, 4096, a, seed=1, timestamp=1)
    wb = encode_write(0, 4096, b, seed=1, timestamp=2)
    mixed = wa[:cut * SECTOR] + wb[cut * SECTOR:]
    state = classify_block(mixed, 0)
    if a == b:
        assert state.kind == BlockKind.INTACT
    else:
        assert state.kind == BlockKind.TORN
        assert state.sectors[:cut] == (a,) * cut and state.sectors[cut:] == (b,) * (8 - cut)


@given(ids, st.integers(1, 100))
def test_block_at_the_wrong_address_is_misplaced(wid, blocks_away):
    data = encode_write(4096 * blocks_away, 4096, wid, seed=1, timestamp=1)
    assert classify_block(data, 0).kind == BlockKind.MISPLACED


@given(st.integers(1, 7))
def test_zeros_never_written_and_partial_zeros_torn(cut):
    assert classify_block(bytes(4096), 0).kind == BlockKind.NEVER_WRITTEN
    data = encode_write(0, 4096, WriteId(1, 2, 3), seed=1, timestamp=1)
    assert classify_block(data[:cut * SECTOR] + bytes(4096 - cut * SECTOR), 0).kind == \
        BlockKind.TORN


@given(st.binary(min_size=1, max_size=64))
def test_foreign_bytes_are_corrupt(junk):
    data = bytearray(4096)
    data[100:100 + len(junk)] = junk
    expected = BlockKind.NEVER_WRITTEN if not any(junk) else BlockKind.CORRUPT
    assert classify_block(bytes(data), 0).kind == expected


def test_a_bad_sector_inside_a_long_valid_run_is_localised():
    data = bytearray(b"".join(encode_write(i * 65536, 65536, WriteId(1, 1, i), seed=1,
                                           timestamp=i) for i in range(64)))
    data[1000 * SECTOR + 300] ^= 0xFF
    scan = scan_sectors(bytes(data), 0)
    assert np.flatnonzero(scan.state != SectorState.STAMPED).tolist() == [1000]
    assert scan.state[1000] == SectorState.BAD_CRC
