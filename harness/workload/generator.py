"""The seeded operation plan: which reads and writes each writer issues, in order.

The model: a workload has ``writers`` independent writers; writer ``w`` draws
its operations from its own stream, seeded from ``(seed, w)``, so the same seed
gives every writer the same sequence of ``(kind, offset, length)`` whatever the
timing, queue depth or device. Each writer numbers its operations 0, 1, 2, ...
(the stamp's ``seq``). The region a writer works in is either its own slice of
the workload region (``private``: no two writers touch the same block) or the
whole region (``shared``: writers overlap, to test ordering). Offsets are
aligned to the checker block (the smallest block size), and every block size is
a multiple of it, so every write covers whole checker blocks.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from harness.workload.errors import WorkloadConfigError

PATTERNS = ("random", "sequential")
REGION_MODES = ("private", "shared")


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """Everything that decides what a workload does (not how fast the device is)."""

    seed: int = 0
    writers: int = 4
    queue_depth: int = 4
    block_sizes: tuple[int, ...] = (4096,)
    read_ratio: float = 0.0
    pattern: str = "random"
    region_mode: str = "private"
    region_offset: int = 0
    region_length: int | None = None  # None: to the end of the device
    rate: float | None = None  # operations per second over all writers; None = unlimited
    duration: float | None = 10.0  # seconds; None = until ops run out
    ops_per_writer: int | None = None  # stop each writer after this many operations
    op_timeout: float = 30.0  # seconds; a write that times out is recorded as info
    flush_every: int = 0  # flush after every N writes per writer (0: never)
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def check_block(self) -> int:
        return min(self.block_sizes)

    def validate(self, device_size: int, logical_block_size: int) -> WorkloadSpec:
        """Check the spec against a device; returns the spec with the region resolved."""
        if self.writers < 1 or self.queue_depth < 1:
            raise WorkloadConfigError("--writers and --qd must be at least 1")
        if not 0.0 <= self.read_ratio <= 1.0:
            raise WorkloadConfigError(f"--read-ratio {self.read_ratio} is not between 0 and 1")
        if self.pattern not in PATTERNS:
            raise WorkloadConfigError(f"pattern {self.pattern!r} is not one of {PATTERNS}")
        if self.region_mode not in REGION_MODES:
            raise WorkloadConfigError(f"region mode {self.region_mode!r} is not one of "
                                      f"{REGION_MODES}")
        if self.rate is not None and self.rate <= 0:
            raise WorkloadConfigError(f"--rate {self.rate} must be positive")
        if self.duration is None and self.ops_per_writer is None:
            raise WorkloadConfigError("give a --duration or an --ops limit, or it never stops")
        cb = self.check_block
        for bs in self.block_sizes:
            if bs <= 0 or bs % logical_block_size or bs % 512 or bs % cb:
                raise WorkloadConfigError(
                    f"block size {bs} must be a multiple of 512, of the device's "
                    f"{logical_block_size}-byte blocks and of the smallest size {cb}"
                )
        length = device_size - self.region_offset if self.region_length is None \
            else self.region_length
        if self.region_offset % cb or length % cb or self.region_offset < 0 or length <= 0 \
                or self.region_offset + length > device_size:
            raise WorkloadConfigError(
                f"region {self.region_offset}+{length} must lie inside the {device_size}-byte "
                f"device and be aligned to {cb} bytes"
            )
        share = length if self.region_mode == "shared" else length // self.writers // cb * cb
        if share < max(self.block_sizes):
            raise WorkloadConfigError(
                f"each writer's region ({share} bytes) is smaller than the largest block "
                f"size {max(self.block_sizes)}; use a bigger region or fewer writers"
            )
        return replace(self, region_length=length)

    def writer_region(self, writer: int) -> tuple[int, int]:
        """(offset, length) in bytes of the region ``writer`` works in."""
        assert self.region_length is not None
        if self.region_mode == "shared":
            return self.region_offset, self.region_length
        cb = self.check_block
        share = self.region_length // self.writers // cb * cb
        return self.region_offset + writer * share, share


@dataclass(frozen=True, slots=True)
class PlannedOp:
    """One operation of a writer's plan."""

    writer: int
    seq: int
    kind: str  # "read" or "write"
    offset: int  # bytes
    length: int  # bytes


def writer_seed(seed: int, writer: int) -> int:
    return (seed * 0x9E3779B1 + writer * 0x85EBCA77 + 0x27D4EB2F) & 0xFFFFFFFFFFFF


def plan(spec: WorkloadSpec, writer: int, writer_id: int | None = None) -> Iterator[PlannedOp]:
    """The (possibly endless) operation stream of one writer; same spec, same stream.

    ``writer`` picks the region within the spec; ``writer_id`` (default: ``writer``)
    is the writer's number in the whole history (several workloads, e.g. one per
    cluster node, share one history with distinct ids) and seeds its stream.
    """
    wid = writer if writer_id is None else writer_id
    rng = random.Random(writer_seed(spec.seed, wid))
    base, length = spec.writer_region(writer)
    cb = spec.check_block
    cursor = 0
    seq = 0
    while spec.ops_per_writer is None or seq < spec.ops_per_writer:
        size = spec.block_sizes[rng.randrange(len(spec.block_sizes))]
        kind = "read" if rng.random() < spec.read_ratio else "write"
        if spec.pattern == "random":
            slots = (length - size) // cb + 1
            off = rng.randrange(slots) * cb
        else:
            if cursor + size > length:
                cursor = 0
            off = cursor
            cursor += size
        yield PlannedOp(wid, seq, kind, base + off, size)
        seq += 1


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``4096``, ``4k``, ``64M``, ``1G`` (binary units) -> bytes."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b") if text else ""
    num, unit = (t[:-1], t[-1]) if t and t[-1] in _UNITS else (t, "")
    try:
        value = int(num) * _UNITS[unit]
    except ValueError:
        raise WorkloadConfigError(f"size {text!r} is not a number with an optional k/M/G/T "
                                  "suffix") from None
    if value < 0:
        raise WorkloadConfigError(f"size {text!r} is negative")
    return value


def parse_region(text: str) -> tuple[int, int | None]:
    """``OFFSET:LENGTH`` or ``OFFSET:`` (to the end) -> (offset, length or None)."""
    offset, sep, length = text.partition(":")
    if not sep:
        raise WorkloadConfigError(f"region {text!r} is not OFFSET:LENGTH (e.g. 0:64M or 1G:)")
    return parse_size(offset or "0"), (parse_size(length) if length else None)
