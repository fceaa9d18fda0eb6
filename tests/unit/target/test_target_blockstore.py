"""ImageFile: sparse creation, I/O, durability (group-committed fdatasync), unmap, resize."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from harness.target import blockstore
from harness.target.blockstore import BlockStore, ImageFile, ImageFileError

MiB = 1 << 20


def test_created_sparse_with_given_size(tmp_path: Path) -> None:
    img = ImageFile.open(tmp_path / "lun0.img", 64 * MiB)
    try:
        assert isinstance(img, BlockStore)
        assert (img.num_blocks, img.block_size) == (64 * MiB // 512, 512)
        assert os.path.getsize(img.path) == 64 * MiB
        assert img.allocated_bytes() < MiB
    finally:
        img.close()


def test_open_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(ImageFileError, match="give a size"):
        ImageFile.open(tmp_path / "missing.img")
    with pytest.raises(ImageFileError, match="multiple"):
        ImageFile.open(tmp_path / "odd.img", 1000)
    with pytest.raises(ImageFileError, match="power of two"):
        ImageFile.open(tmp_path / "bs.img", MiB, block_size=1000)
    ImageFile.open(tmp_path / "a.img", MiB).close()
    with pytest.raises(ImageFileError, match="not the configured"):
        ImageFile.open(tmp_path / "a.img", 2 * MiB)
    reopened = ImageFile.open(tmp_path / "a.img")
    assert reopened.num_blocks == MiB // 512
    reopened.close()


async def test_write_read_round_trip_small_and_large(tmp_path: Path) -> None:
    img = ImageFile.open(tmp_path / "x.img", 8 * MiB, block_size=4096, write_through=False)
    try:
        small = os.urandom(4096)
        large = os.urandom(2 * MiB)  # above INLINE_LIMIT: goes through the executor
        await img.write(3, small)
        await img.write(16, large)
        await img.write(1000, memoryview(small))
        assert await img.read(3, 1) == small
        assert await img.read(16, len(large) // 4096) == large
        assert await img.read(1000, 1) == small
        assert await img.read(0, 1) == bytes(4096)
    finally:
        img.close()


async def test_write_through_and_fua_sync_before_returning(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(blockstore.os, "fdatasync", lambda fd: calls.append(fd))
    img = ImageFile.open(tmp_path / "x.img", MiB, write_through=False)
    try:
        await img.write(0, bytes(512))
        assert calls == []
        await img.write(0, bytes(512), fua=True)
        assert calls == [img.fileno()]
        img.write_through = True
        await img.write(1, bytes(512))
        assert len(calls) == 2
        await img.flush()  # nothing new written since the last sync: no second fdatasync
        assert len(calls) == 2
    finally:
        img.close()


async def test_group_commit_never_reuses_a_sync_that_started_before_the_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()
    syncs: list[int] = []

    def slow_fdatasync(fd: int) -> None:
        syncs.append(fd)
        started.set()
        release.wait(5)

    monkeypatch.setattr(blockstore.os, "fdatasync", slow_fdatasync)
    img = ImageFile.open(tmp_path / "x.img", MiB)
    try:
        first = asyncio.create_task(img.write(0, b"a" * 512))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        # a sync is in flight; these writes complete after it started
        later = [asyncio.create_task(img.write(i, b"b" * 512)) for i in range(1, 9)]
        await asyncio.sleep(0)
        assert len(syncs) == 1
        release.set()
        await asyncio.gather(first, *later)
        assert len(syncs) == 2  # one more sync covers all eight later writes together
    finally:
        release.set()
        img.close()


async def test_unmap_punches_holes_and_reads_zeros(tmp_path: Path) -> None:
    img = ImageFile.open(tmp_path / "x.img", 16 * MiB, write_through=False)
    try:
        await img.write(0, os.urandom(8 * MiB))
        before = img.allocated_bytes()
        await img.unmap(0, 4 * MiB // 512)
        assert await img.read(0, 8) == bytes(4096)
        assert img.allocated_bytes() <= before - 3 * MiB
        assert await img.read(4 * MiB // 512, 1) != bytes(512)
    finally:
        img.close()


async def test_unmap_zero_fill_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blockstore, "_fallocate", None)
    img = ImageFile(tmp_path / "x.img", os.open(tmp_path / "x.img", os.O_RDWR | os.O_CREAT),
                    512, 4096)
    img._punch_holes = False
    os.ftruncate(img.fileno(), 4096 * 512)
    try:
        await img.write(10, b"z" * 1024)
        await img.unmap(10, 2)
        assert await img.read(10, 2) == bytes(1024)
    finally:
        img.close()


async def test_write_repeated_and_resize(tmp_path: Path) -> None:
    img = ImageFile.open(tmp_path / "x.img", MiB, write_through=False)
    try:
        await img.write_repeated(5, b"q" * 512, 1500)
        assert await img.read(5, 1500) == b"q" * 512 * 1500
        assert await img.read(1505, 1) == bytes(512)
        await img.resize(4096)
        assert img.num_blocks == 4096 and os.path.getsize(img.path) == 4096 * 512
    finally:
        img.close()


async def test_read_only_image_refuses_writes(tmp_path: Path) -> None:
    ImageFile.open(tmp_path / "x.img", MiB).close()
    img = ImageFile.open(tmp_path / "x.img", read_only=True)
    try:
        with pytest.raises(blockstore.BlockStoreError, match="read-only"):
            await img.write(0, bytes(512))
    finally:
        img.close()
