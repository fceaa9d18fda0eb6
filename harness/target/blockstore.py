"""Block stores: what a logical unit reads and writes, and the sparse image file behind it.

Model: a ``BlockStore`` is an array of ``num_blocks`` blocks of ``block_size``
bytes with async ``read``, ``write`` (``fua=True`` means durable before return),
``flush`` (everything written so far durable), ``unmap`` (deallocate; unmapped
blocks read as zeros) and ``close``. ``write_through`` says whether every write is
made durable before it completes (the caching mode page shows it as WCE = 0).
The SCSI logical unit serves from any ``BlockStore``; an HA device plugs in a
mirrored store with the same shape.

``ImageFile`` is the local implementation: a sparse file created on demand with
a given size, accessed with ``os.pread``/``os.pwritev`` on a plain descriptor.
Small transfers run inline (a page-cache hit costs less than a thread hop);
large ones and every ``fdatasync`` run on the default executor. Concurrent
durability requests share one ``fdatasync`` (group commit): a request waits
for a sync that *started* after its own write completed, never an older one.
Unmap punches holes with ``fallocate(PUNCH_HOLE|KEEP_SIZE)`` and falls back to
writing zeros where the file system cannot.

Power loss without a plug (LazyFS's idea, inside the store): an image opened
with ``volatile=True`` keeps, for every write not yet covered by an
``fdatasync``, the blocks it overwrote. ``discard_volatile`` puts them back
(newest first, so the oldest content wins) and syncs: the image is then what a
disk would hold after losing power at this instant. A sync drops the pre-images
of every write captured before the sync started, so what the store reported
durable is never discarded. ``harness.target.power_loss`` serves the fault.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import os
import weakref
from pathlib import Path
from typing import Protocol, runtime_checkable

from harness.errors import SplitbrainError

INLINE_LIMIT = 64 * 1024          # transfers up to this size run on the event loop
ZERO_CHUNK = 1 << 20              # zero-fill fallback for unmap writes this much at a time
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02


class BlockStoreError(SplitbrainError):
    """An I/O on a block store failed; ``errno`` says why (the LU maps it to sense)."""

    def __init__(self, message: str, *, errno_: int = 0, writing: bool = False) -> None:
        super().__init__(message)
        self.errno = errno_
        self.writing = writing


class ImageFileError(BlockStoreError):
    """An image file cannot be created or opened as asked."""


@runtime_checkable
class BlockStore(Protocol):
    block_size: int
    num_blocks: int
    write_through: bool

    async def read(self, lba: int, count: int) -> bytes: ...
    async def write(self, lba: int, data: bytes, *, fua: bool = False) -> None: ...
    async def flush(self) -> None: ...
    async def unmap(self, lba: int, count: int) -> None: ...
    def close(self) -> None: ...


def _load_fallocate():  # type: ignore[no-untyped-def]
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        fn = libc.fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong)
    fn.restype = ctypes.c_int
    return fn


_fallocate = _load_fallocate()


#: images with a volatile layer in this process (what a power-loss fault discards)
VOLATILE_IMAGES: weakref.WeakSet[ImageFile] = weakref.WeakSet()


class ImageFile:
    """A sparse image file as a block store."""

    def __init__(self, path: str | Path, fd: int, block_size: int, num_blocks: int,
                 *, write_through: bool = True, read_only: bool = False,
                 volatile: bool = False) -> None:
        self.path = Path(path)
        self._fd = fd
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.write_through = write_through
        self.read_only = read_only
        self._written = 0        # completed writes so far (a counter, for group commit)
        self._durable = 0        # writes covered by a completed fdatasync
        self._sync_task: asyncio.Future[None] | None = None
        #: volatile layer: (capture number, offset, overwritten bytes) of unsynced writes
        self.volatile = volatile
        self._pre_images: list[tuple[int, int, bytes]] = []
        self._captured = 0
        if volatile:
            VOLATILE_IMAGES.add(self)
        self._punch_holes = _fallocate is not None
        # the file system's allocation unit: a write smaller than it is read-modify-write
        fs_block = os.fstat(fd).st_blksize
        self.physical_block_size = fs_block if (
            fs_block % block_size == 0 and fs_block & (fs_block - 1) == 0
            and fs_block <= 65536) else block_size

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, size: int | None = None, *, block_size: int = 512,
             write_through: bool = True, create: bool = True,
             read_only: bool = False, volatile: bool = False) -> ImageFile:
        """Open ``path``, creating a sparse file of ``size`` bytes when it does not exist.

        An existing file must have exactly ``size`` bytes when ``size`` is given
        (use ``resize`` to change it); ``size`` must be a whole number of blocks.
        """
        path = Path(path)
        if block_size < 512 or block_size & (block_size - 1):
            raise ImageFileError(f"image {path}: block size {block_size} is not a power of "
                                 "two of at least 512; use 512 or 4096")
        if size is not None and (size <= 0 or size % block_size):
            raise ImageFileError(f"image {path}: size {size} is not a positive multiple of "
                                 f"the block size {block_size}")
        flags = (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CLOEXEC
        exists = path.exists()
        if not exists:
            if not create or size is None:
                raise ImageFileError(f"image {path} does not exist; give a size to create it")
            flags |= os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise ImageFileError(f"image {path}: cannot open ({exc.strerror}); check the "
                                 "path and its permissions", errno_=exc.errno) from None
        try:
            actual = os.fstat(fd).st_size
            if not exists:
                os.ftruncate(fd, size)  # type: ignore[arg-type]
                actual = size  # type: ignore[assignment]
                _fsync_dir(path.parent)
            elif size is not None and actual != size:
                raise ImageFileError(
                    f"image {path} is {actual} bytes, not the configured {size}; "
                    "resize it through the management API or fix the configuration")
            if actual % block_size or actual == 0:
                raise ImageFileError(f"image {path} is {actual} bytes, not a positive multiple "
                                     f"of the block size {block_size}")
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, block_size, actual // block_size,
                   write_through=write_through, read_only=read_only, volatile=volatile)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        return self._fd

    # -- synchronous core (used inline and on the executor) ----------------------------

    def read_now(self, lba: int, count: int) -> bytes:
        """Read ``count`` blocks at ``lba`` on the calling thread."""
        length = count * self.block_size
        try:
            data = os.pread(self._fd, length, lba * self.block_size)
        except OSError as exc:
            raise BlockStoreError(f"image {self.path}: read of {count} blocks at LBA {lba} "
                                  f"failed: {exc.strerror}", errno_=exc.errno) from None
        if len(data) < length:  # a file shortened under us reads as zeros past its end
            data += bytes(length - len(data))
        return data

    def write_now(self, lba: int, data: bytes | bytearray | memoryview) -> None:
        """Write whole blocks at ``lba`` on the event loop's thread (no durability)."""
        self._pwrite_all([data], lba * self.block_size, lba)
        self._written += 1

    def _write_blocks(self, lba: int, data: bytes | bytearray | memoryview) -> None:
        self._pwrite_all([data], lba * self.block_size, lba)

    def _write_repeated(self, lba: int, block: bytes, count: int) -> None:
        """Write ``block`` into ``count`` consecutive blocks (WRITE SAME)."""
        per_call = max(1, min(_IOV_MAX, ZERO_CHUNK // self.block_size))
        done = 0
        while done < count:
            n = min(per_call, count - done)
            self._pwrite_all([block] * n, (lba + done) * self.block_size, lba + done)
            done += n

    def _pwrite_all(self, bufs: list, offset: int, lba: int) -> None:
        if self.read_only:
            raise BlockStoreError(f"image {self.path} is read-only", errno_=errno.EROFS,
                                  writing=True)
        views = [memoryview(b).cast("B") for b in bufs]
        total = sum(v.nbytes for v in views)
        if self.volatile:
            self._capture(offset, total)
        written = 0
        try:
            while written < total:
                n = os.pwritev(self._fd, views, offset + written)
                if n <= 0:
                    raise OSError(errno.EIO, "short write")
                written += n
                if written < total:  # drop what the kernel took, keep the rest
                    views = _advance(views, n)
        except OSError as exc:
            raise BlockStoreError(f"image {self.path}: write at LBA {lba} failed: "
                                  f"{exc.strerror}", errno_=exc.errno or errno.EIO,
                                  writing=True) from None

    def _unmap(self, lba: int, count: int) -> None:
        offset, length = lba * self.block_size, count * self.block_size
        if self.volatile and not self.read_only:
            self._capture(offset, length)
        if self._punch_holes and _fallocate is not None:
            rc = _fallocate(self._fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)
            if rc == 0:
                return
            err = ctypes.get_errno()
            if err not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise BlockStoreError(f"image {self.path}: punching a hole at LBA {lba} "
                                      f"failed: {os.strerror(err)}", errno_=err, writing=True)
            self._punch_holes = False
        zeros = bytes(min(length, ZERO_CHUNK))
        done = 0
        while done < length:
            n = min(len(zeros), length - done)
            self._pwrite_all([memoryview(zeros)[:n]], offset + done, lba)
            done += n

    def _capture(self, offset: int, length: int) -> None:
        """Keep what a write is about to overwrite, until a sync covers the write."""
        self._captured += 1
        before = os.pread(self._fd, length, offset)
        self._pre_images.append((self._captured, offset, before))

    def discard_volatile(self) -> int:
        """Power loss: undo every write no sync covered; returns how many were undone."""
        undone = 0
        while self._pre_images:
            _, offset, before = self._pre_images.pop()
            if offset >= os.fstat(self._fd).st_size:
                continue
            os.pwrite(self._fd, before, offset)
            undone += 1
        os.fdatasync(self._fd)
        return undone

    def _fdatasync(self) -> None:
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise BlockStoreError(f"image {self.path}: fdatasync failed: {exc.strerror}; the "
                                  "data may not be on disk", errno_=exc.errno,
                                  writing=True) from None

    # -- BlockStore ---------------------------------------------------------------------

    async def read(self, lba: int, count: int) -> bytes:
        if count * self.block_size <= INLINE_LIMIT:
            return self.read_now(lba, count)
        return await asyncio.get_running_loop().run_in_executor(None, self.read_now, lba, count)

    async def write(self, lba: int, data: bytes, *, fua: bool = False) -> None:
        if len(data) <= INLINE_LIMIT:
            self.write_now(lba, data)
        else:
            await asyncio.get_running_loop().run_in_executor(None, self._write_blocks, lba, data)
            self._written += 1  # counted on the loop thread only (see _make_durable)
        if fua or self.write_through:
            await self._make_durable()

    async def write_repeated(self, lba: int, block: bytes, count: int, *,
                             fua: bool = False) -> None:
        await asyncio.get_running_loop().run_in_executor(
            None, self._write_repeated, lba, block, count)
        self._written += 1
        if fua or self.write_through:
            await self._make_durable()

    async def flush(self) -> None:
        await self._make_durable()

    async def unmap(self, lba: int, count: int) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._unmap, lba, count)
        self._written += 1
        if self.write_through:
            await self._make_durable()

    async def resize(self, num_blocks: int) -> None:
        """Grow or shrink the image to ``num_blocks`` blocks (sparse)."""
        if num_blocks <= 0:
            raise ImageFileError(f"image {self.path}: cannot resize to {num_blocks} blocks")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, os.ftruncate, self._fd, num_blocks * self.block_size)
        self.num_blocks = num_blocks
        self._written += 1
        await self._make_durable()

    async def _make_durable(self) -> None:
        """Return once an fdatasync that started after every write so far has completed."""
        want = self._written
        while self._durable < want:
            task = self._sync_task
            if task is None or task.done():
                task = self._sync_task = asyncio.ensure_future(self._sync_once())
            await asyncio.shield(task)

    async def _sync_once(self) -> None:
        covered = self._written
        captured = self._captured
        await asyncio.get_running_loop().run_in_executor(None, self._fdatasync)
        self._durable = max(self._durable, covered)
        if self._pre_images:  # what the sync covered survives a power loss
            self._pre_images = [p for p in self._pre_images if p[0] > captured]

    def lba_status(self, lba: int, max_blocks: int,
                   max_ranges: int = 1024) -> list[tuple[int, int, bool]]:
        """(first LBA, blocks, mapped) ranges from ``lba``, from the file's data and holes.

        A block counts as mapped if any byte of it is allocated; a file system
        without SEEK_DATA/SEEK_HOLE reports everything mapped.
        """
        bs = self.block_size
        end_lba = min(self.num_blocks, lba + max_blocks)
        end = end_lba * bs
        mapped: list[tuple[int, int]] = []
        pos = lba * bs
        try:
            while pos < end and len(mapped) < max_ranges:
                try:
                    data = os.lseek(self._fd, pos, os.SEEK_DATA)
                except OSError as exc:
                    if exc.errno == errno.ENXIO:  # only a hole remains
                        break
                    raise
                if data >= end:
                    break
                hole = min(os.lseek(self._fd, data, os.SEEK_HOLE), end)
                first, last = data // bs, -(-hole // bs)
                if mapped and first <= mapped[-1][1]:
                    mapped[-1] = (mapped[-1][0], last)
                else:
                    mapped.append((first, last))
                pos = last * bs
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                raise BlockStoreError(f"image {self.path}: cannot map extents at LBA {lba}: "
                                      f"{exc.strerror}", errno_=exc.errno) from None
            return [(lba, end_lba - lba, True)]
        out: list[tuple[int, int, bool]] = []
        cursor = lba
        for first, last in mapped:
            first = max(first, lba)
            if first > cursor:
                out.append((cursor, first - cursor, False))
            out.append((first, min(last, end_lba) - first, True))
            cursor = min(last, end_lba)
        if cursor < end_lba and len(mapped) < max_ranges:
            out.append((cursor, end_lba - cursor, False))
        return out[:max_ranges]

    def allocated_bytes(self) -> int:
        """Bytes the file system has allocated for the image (sparse accounting)."""
        return os.fstat(self._fd).st_blocks * 512


def _advance(views: list[memoryview], n: int) -> list[memoryview]:
    out: list[memoryview] = []
    for v in views:
        if n >= v.nbytes:
            n -= v.nbytes
            continue
        out.append(v[n:])
        n = 0
    return out


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
