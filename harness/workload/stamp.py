"""Block stamps: self-describing sectors that say which write put them there.

The model (after vdbench's data validation and fio's verify header): every
512-byte sector of every block the workload writes carries

    offset  size  field
         0     4  magic        0x4B4C4253 (b"SBLK")
         4     1  version      1
         5     1  flags        reserved, 0
         6     2  index        sector index inside its write
         8     8  lba          address of THIS sector in 512-byte units
        16     4  writer       writer id
        20     4  generation   workload run id (unique per run)
        24     8  seq          per-writer operation sequence
        32     8  timestamp    time.monotonic_ns() when the write was built
        40   468  payload      seeded pseudo-random bytes
       508     4  crc          CRC32C of bytes 0..507, little-endian

so a write is identified by ``WriteId(generation, writer, seq)`` and each sector
can be classified on its own: never written (all zeros), stamped (magic and a
valid CRC), corrupt (magic but a bad CRC, or non-zero bytes without the magic).
A *block* (the checker's unit, a multiple of 512 bytes) is then intact (every
sector from one write, at the right address), torn (sectors from different
writes, or written and unwritten sectors mixed), misplaced (a sector carries
another address) or corrupt.

Verification is vectorised: headers are read as a numpy structured view, and
because the CRC is stored little-endian after the bytes it covers, every valid
sector has the same CRC32C residue; a run of n valid sectors therefore has a
CRC32C that depends only on n, so one hardware CRC call checks a whole run of
stamped sectors and only a failing run is re-checked sector by sector.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from functools import lru_cache

import crc32c
import numpy as np

SECTOR = 512
MAGIC = 0x4B4C4253  # b"SBLK" little-endian
VERSION = 1
HEADER_SIZE = 40
CRC_OFFSET = SECTOR - 4
PAYLOAD_SIZE = CRC_OFFSET - HEADER_SIZE
_POOL_SIZE = 1 << 20

SECTOR_DTYPE = np.dtype(
    {
        "names": ["magic", "version", "flags", "index", "lba", "writer", "generation", "seq",
                  "timestamp", "crc"],
        "formats": ["<u4", "u1", "u1", "<u2", "<u8", "<u4", "<u4", "<u8", "<u8", "<u4"],
        "offsets": [0, 4, 5, 6, 8, 16, 20, 24, 32, CRC_OFFSET],
        "itemsize": SECTOR,
    }
)


@dataclass(frozen=True, order=True, slots=True)
class WriteId:
    """The identity of one write: which run, which writer, which of its operations."""

    generation: int
    writer: int
    seq: int

    def __str__(self) -> str:
        return f"w{self.writer}#{self.seq}@{self.generation:08x}"


class SectorState(enum.IntEnum):
    """What one 512-byte sector holds."""

    ZERO = 0  # never written
    STAMPED = 1  # a valid stamp (magic and CRC)
    BAD_CRC = 2  # stamp magic but the CRC does not match
    GARBAGE = 3  # non-zero bytes that are not a stamp


class BlockKind(enum.IntEnum):
    """What one checked block holds."""

    NEVER_WRITTEN = 0
    INTACT = 1
    TORN = 2
    MISPLACED = 3
    CORRUPT = 4


@lru_cache(maxsize=64)
def _payload_pool(seed: int) -> np.ndarray:
    """The seeded random bytes payloads are cut from (one per workload seed)."""
    rng = np.random.Generator(np.random.PCG64(seed & 0xFFFFFFFFFFFFFFFF))
    return np.frombuffer(rng.bytes(_POOL_SIZE + PAYLOAD_SIZE), dtype=np.uint8)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised (uint64 arithmetic wraps)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def payload_offsets(writer: int, seq: int, sector_lbas: np.ndarray) -> np.ndarray:
    """Where in the seeded pool each sector's payload starts."""
    key = (np.uint64(writer) << np.uint64(40)) ^ np.uint64(seq & 0xFFFFFFFFFF)
    with np.errstate(over="ignore"):
        x = _mix64(sector_lbas.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) ^ key)
    return (x % np.uint64(_POOL_SIZE)).astype(np.int64)


_ARANGE_PAYLOAD = np.arange(PAYLOAD_SIZE, dtype=np.int64)


def encode_write(
    offset: int,
    length: int,
    wid: WriteId,
    *,
    seed: int,
    timestamp: int,
) -> bytes:
    """The stamped bytes of one write of ``length`` bytes at byte ``offset``."""
    if offset % SECTOR or length % SECTOR or length <= 0:
        raise ValueError(f"write {offset}+{length} is not a whole number of 512-byte sectors")
    n = length // SECTOR
    buf = np.zeros(n, dtype=SECTOR_DTYPE)
    first = offset // SECTOR
    lbas = np.arange(first, first + n, dtype=np.uint64)
    buf["magic"] = MAGIC
    buf["version"] = VERSION
    buf["index"] = np.arange(n, dtype=np.uint16)
    buf["lba"] = lbas
    buf["writer"] = wid.writer
    buf["generation"] = wid.generation
    buf["seq"] = wid.seq
    buf["timestamp"] = timestamp
    raw = buf.view(np.uint8).reshape(n, SECTOR)
    pool = _payload_pool(seed)
    starts = payload_offsets(wid.writer, wid.seq, lbas)
    raw[:, HEADER_SIZE:CRC_OFFSET] = pool[starts[:, None] + _ARANGE_PAYLOAD]
    crcs = raw[:, CRC_OFFSET:].view("<u4").reshape(n)
    for i in range(n):
        crcs[i] = crc32c.crc32c(raw[i, :CRC_OFFSET])
    return raw.tobytes()


@lru_cache(maxsize=1)
def _valid_sector() -> bytes:
    body = bytes(CRC_OFFSET)
    return body + struct.pack("<I", crc32c.crc32c(body))


class _RunCrc:
    """CRC32C of n concatenated valid sectors, for every n (grown on demand)."""

    def __init__(self) -> None:
        self._table = [0]

    def __getitem__(self, n: int) -> int:
        table = self._table
        sector = _valid_sector()
        while len(table) <= n:
            table.append(crc32c.crc32c(sector, table[-1]) if len(table) > 1
                         else crc32c.crc32c(sector))
        return table[n]


_RUN_CRC = _RunCrc()


@dataclass(slots=True)
class SectorScan:
    """Every sector of a buffer, decoded: state and header fields as arrays."""

    first_lba: int  # 512-byte address of the first sector
    state: np.ndarray  # uint8 SectorState
    lba: np.ndarray
    writer: np.ndarray
    generation: np.ndarray
    seq: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int:
        return len(self.state)

    def write_id(self, i: int) -> WriteId | None:
        if self.state[i] != SectorState.STAMPED:
            return None
        return WriteId(int(self.generation[i]), int(self.writer[i]), int(self.seq[i]))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True in a boolean array."""
    if not mask.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.view(np.int8), [0]))))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def scan_sectors(data: bytes | bytearray | memoryview | np.ndarray, offset: int) -> SectorScan:
    """Decode every sector of ``data`` read at byte ``offset`` (vectorised)."""
    raw = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if raw.size % SECTOR or offset % SECTOR:
        raise ValueError(f"buffer {offset}+{raw.size} is not a whole number of 512-byte sectors")
    n = raw.size // SECTOR
    hdr = raw.view(SECTOR_DTYPE)
    magic = (hdr["magic"] == MAGIC) & (hdr["version"] == VERSION)
    state = np.full(n, SectorState.STAMPED, dtype=np.uint8)
    if not magic.all():
        words = raw.view(np.uint64).reshape(n, SECTOR // 8)
        other = ~magic
        nonzero = words[other].any(axis=1)
        state[other] = np.where(nonzero, SectorState.GARBAGE, SectorState.ZERO)
    for start, stop in _runs(magic):
        view = raw[start * SECTOR : stop * SECTOR]
        if crc32c.crc32c(view) == _RUN_CRC[stop - start]:
            continue
        for i in range(start, stop):  # localise the bad sectors of a failing run
            if crc32c.crc32c(raw[i * SECTOR : (i + 1) * SECTOR]) != _RUN_CRC[1]:
                state[i] = SectorState.BAD_CRC
    return SectorScan(
        first_lba=offset // SECTOR,
        state=state,
        lba=hdr["lba"],
        writer=hdr["writer"],
        generation=hdr["generation"],
        seq=hdr["seq"],
        timestamp=hdr["timestamp"],
    )


@dataclass(slots=True)
class BlockScan:
    """Per-block classification of a scanned buffer (block = ``sectors`` sectors)."""

    sectors: int
    kind: np.ndarray  # uint8 BlockKind
    writer: np.ndarray  # of the first stamped sector; meaningful for INTACT blocks
    generation: np.ndarray
    seq: np.ndarray
    scan: SectorScan

    def __len__(self) -> int:
        return len(self.kind)

    def write_id(self, i: int) -> WriteId | None:
        if self.kind[i] != BlockKind.INTACT:
            return None
        return WriteId(int(self.generation[i]), int(self.writer[i]), int(self.seq[i]))


def classify_blocks(scan: SectorScan, block_size: int) -> BlockScan:
    """Classify every ``block_size`` block of a sector scan (vectorised)."""
    k = block_size // SECTOR
    if block_size % SECTOR or len(scan) % k or scan.first_lba % k:
        raise ValueError(f"block size {block_size} does not tile the scanned buffer")
    nb = len(scan) // k
    state = scan.state.reshape(nb, k)
    expected = np.arange(scan.first_lba, scan.first_lba + len(scan), dtype=np.uint64)
    stamped = state == SectorState.STAMPED
    bad = ((state == SectorState.BAD_CRC) | (state == SectorState.GARBAGE)).any(axis=1)
    misplaced = (stamped & (scan.lba != expected).reshape(nb, k)).any(axis=1)
    zero = (state == SectorState.ZERO).all(axis=1)
    writer = scan.writer.reshape(nb, k)
    gen = scan.generation.reshape(nb, k)
    seq = scan.seq.reshape(nb, k)
    same = (
        (writer == writer[:, :1]) & (gen == gen[:, :1]) & (seq == seq[:, :1])
    ).all(axis=1)
    torn = ~zero & ~(stamped.all(axis=1) & same)
    kind = np.full(nb, BlockKind.INTACT, dtype=np.uint8)
    kind[zero] = BlockKind.NEVER_WRITTEN
    kind[torn] = BlockKind.TORN
    kind[misplaced] = BlockKind.MISPLACED
    kind[bad] = BlockKind.CORRUPT
    return BlockScan(k, kind, writer[:, 0].copy(), gen[:, 0].copy(), seq[:, 0].copy(), scan)


@dataclass(frozen=True, slots=True)
class BlockState:
    """The classification of one block, for callers that look at a few blocks."""

    kind: BlockKind
    write: WriteId | None  # the write an intact block holds
    sectors: tuple[WriteId | None, ...]  # what each sector holds (None: not a valid stamp)


def classify_block(data: bytes, offset: int) -> BlockState:
    """Classify one block read at byte ``offset``."""
    blocks = classify_blocks(scan_sectors(data, offset), len(data))
    scan = blocks.scan
    return BlockState(
        BlockKind(int(blocks.kind[0])),
        blocks.write_id(0),
        tuple(scan.write_id(i) for i in range(len(scan))),
    )
