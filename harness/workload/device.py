"""Block devices the workload drives: the ``BlockDevice`` interface and local files.

Everything the workload and the checkers touch implements ``BlockDevice``:
``block_size`` (bytes per LBA), ``num_blocks``, ``async read(lba, count)``,
``async write(lba, data)``, ``async flush()`` and ``async close()``. Reads and
writes return a ``Completion(data, path)`` naming the path that served them,
so the history can say which path carried each operation.

``FileDevice`` is a regular file or a local block device (a guest's disk, a
cluster node's own MPIO disk). It opens with ``O_DIRECT`` where the filesystem
allows it, using page-aligned ``mmap`` buffers, and falls back to buffered I/O
(with ``fdatasync`` on flush) when ``O_DIRECT`` is refused. The blocking
``preadv``/``pwritev`` calls run in a thread pool so the event loop stays free.

The iSCSI devices (one ``Session`` LUN, or an MPIO device over several paths)
live in ``harness.workload.iscsi_device``; ``harness.workload.device_spec``
opens the right one for a ``--device`` value (a path, or ``iscsi://`` URLs).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import mmap
import os
import stat
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from harness.workload.errors import DeviceError

T = TypeVar("T")

BLKGETSIZE64 = 0x80081272
BLKSSZGET = 0x1268


@dataclass(frozen=True, slots=True)
class Completion:
    """The result of one read or write: the data read (b"" for writes) and the path used."""

    data: bytes
    path: str


@runtime_checkable
class BlockDevice(Protocol):
    """The block interface every workload target implements."""

    @property
    def block_size(self) -> int: ...

    @property
    def num_blocks(self) -> int: ...

    async def read(self, lba: int, count: int) -> Completion: ...

    async def write(self, lba: int, data: bytes) -> Completion: ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...


class _AlignedBuffers(threading.local):
    """One page-aligned mmap buffer per thread, grown on demand (O_DIRECT needs alignment)."""

    def get(self, size: int) -> mmap.mmap:
        buf: mmap.mmap | None = getattr(self, "buf", None)
        if buf is None or len(buf) < size:
            if buf is not None:
                buf.close()
            buf = mmap.mmap(-1, max(size, mmap.PAGESIZE))
            self.buf = buf
        return buf


class FileDevice:
    """A regular file or block device, O_DIRECT when possible, I/O in a thread pool."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        block_size: int | None = None,
        size: int | None = None,
        direct: bool = True,
        workers: int = 8,
        name: str | None = None,
        readonly: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.readonly = readonly
        self.name = name or self.path
        self.created = False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if size is None or readonly:
                raise DeviceError(
                    f"device {self.path} does not exist; create it or pass a size to create one"
                ) from None
            st = None
        except OSError as exc:
            raise DeviceError(f"cannot stat device {self.path}: {exc.strerror}") from exc
        self.is_block_device = st is not None and stat.S_ISBLK(st.st_mode)
        if st is not None and not (self.is_block_device or stat.S_ISREG(st.st_mode)):
            raise DeviceError(f"{self.path} is neither a regular file nor a block device")
        self.fd, self.direct = self._open(direct, create=st is None)
        try:
            if st is None or (size is not None and not self.is_block_device
                              and st.st_size < size):
                assert size is not None
                self.created = st is None
                os.ftruncate(self.fd, size)
            self._size = self._measure_size()
            self._block_size = block_size or self._logical_block_size()
            if self._block_size % 512 or self._size % self._block_size:
                raise DeviceError(
                    f"device {self.path}: size {self._size} is not a multiple of the block size "
                    f"{self._block_size}; resize it or pass --block-size"
                )
        except BaseException:
            os.close(self.fd)
            raise
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="filedev")
        self._buffers = _AlignedBuffers()
        self._reopen = threading.Lock()
        self._retired: list[int] = []

    def _open(self, direct: bool, *, create: bool) -> tuple[int, bool]:
        flags = (os.O_RDONLY if self.readonly else os.O_RDWR) | (
            os.O_CREAT | os.O_EXCL if create else 0)
        if direct and hasattr(os, "O_DIRECT"):
            try:
                return os.open(self.path, flags | os.O_DIRECT, 0o644), True
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                    raise DeviceError(f"cannot open device {self.path}: {exc.strerror}") from exc
        try:
            return os.open(self.path, flags, 0o644), False
        except OSError as exc:
            raise DeviceError(f"cannot open device {self.path}: {exc.strerror}") from exc

    def _measure_size(self) -> int:
        if self.is_block_device:
            buf = fcntl.ioctl(self.fd, BLKGETSIZE64, b"\0" * 8)
            return int(struct.unpack("Q", buf)[0])
        return os.fstat(self.fd).st_size

    def _logical_block_size(self) -> int:
        if self.is_block_device:
            buf = fcntl.ioctl(self.fd, BLKSSZGET, b"\0" * 4)
            return int(struct.unpack("i", buf)[0])
        return 512

    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def num_blocks(self) -> int:
        return self._size // self._block_size

    def __repr__(self) -> str:
        mode = "O_DIRECT" if self.direct else "buffered"
        return (f"FileDevice({self.path!r}, {self._size} bytes, "
                f"{self._block_size}-byte blocks, {mode})")

    def _check(self, lba: int, count: int) -> None:
        if lba < 0 or count <= 0 or lba + count > self.num_blocks:
            raise DeviceError(
                f"I/O at LBA {lba}+{count} is outside {self.path} ({self.num_blocks} blocks)"
            )

    def _fall_back_to_buffered(self) -> None:
        """The filesystem accepted O_DIRECT at open but refuses this I/O: reopen buffered.

        The O_DIRECT descriptor stays open (other threads may be using it) until close.
        """
        with self._reopen:
            if not self.direct:
                return
            fd = os.open(self.path, os.O_RDONLY if self.readonly else os.O_RDWR)
            self._retired.append(self.fd)
            self.fd, self.direct = fd, False

    def _io(self, attempt: Callable[[], T], verb: str, size: int, offset: int) -> T:
        """``attempt()``, again buffered when the filesystem refuses it under O_DIRECT
        (EINVAL); any other OSError is a ``DeviceError`` naming the I/O (``verb`` of
        ``size`` bytes at byte ``offset``) and why."""
        while True:
            try:
                return attempt()
            except OSError as exc:
                if self.direct and exc.errno == errno.EINVAL:
                    self._fall_back_to_buffered()
                    continue
                raise DeviceError(f"{verb} of {size} bytes at byte {offset} on {self.path} "
                                  f"failed: {exc.strerror}") from exc

    def _pread(self, offset: int, length: int) -> bytes:
        def attempt() -> bytes:
            if not self.direct:
                data = os.pread(self.fd, length, offset)
            else:
                buf = self._buffers.get(length)
                view = memoryview(buf)[:length]
                try:
                    n = os.preadv(self.fd, [view], offset)
                    data = bytes(view[:n])
                finally:
                    view.release()
            if len(data) != length:
                raise DeviceError(f"short read on {self.path} at byte {offset}: "
                                  f"{len(data)} of {length} bytes")
            return data
        return self._io(attempt, "read", length, offset)

    def _pwrite(self, offset: int, data: bytes) -> None:
        def attempt() -> None:
            if not self.direct:
                n = os.pwrite(self.fd, data, offset)
            else:
                buf = self._buffers.get(len(data))
                view = memoryview(buf)[: len(data)]
                try:
                    view[:] = data
                    n = os.pwritev(self.fd, [view], offset)
                finally:
                    view.release()
            if n != len(data):
                raise DeviceError(f"short write on {self.path} at byte {offset}: "
                                  f"{n} of {len(data)} bytes")
        self._io(attempt, "write", len(data), offset)

    async def read(self, lba: int, count: int) -> Completion:
        self._check(lba, count)
        loop = asyncio.get_running_loop()
        bs = self._block_size
        data = await loop.run_in_executor(self._pool, self._pread, lba * bs, count * bs)
        return Completion(data, self.name)

    async def write(self, lba: int, data: bytes) -> Completion:
        bs = self._block_size
        if len(data) % bs or not data:
            raise DeviceError(f"write of {len(data)} bytes to {self.path} is not a whole number "
                              f"of {bs}-byte blocks")
        self._check(lba, len(data) // bs)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._pwrite, lba * bs, data)
        return Completion(b"", self.name)

    async def flush(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, os.fdatasync, self.fd)

    async def close(self) -> None:
        if self.fd < 0:
            return
        self._pool.shutdown(wait=True)
        for fd in (self.fd, *self._retired):
            os.close(fd)
        self.fd = -1
        self._retired.clear()
