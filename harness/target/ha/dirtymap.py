"""The dirty-region map a surviving replica keeps while its partner is away.

The device is cut into fixed regions (1 MiB by default). A region is dirty
when the partner may not hold its current contents: it was written while the
partner was Not synchronized, or a write to it was in flight when the sync
link was lost. Fast resync copies only dirty regions; a map that cannot be
trusted (see ``ReplicaMetadata.dirty_map_valid``) forces a full resync.

The map is one byte per region (a 1 TiB device is a 1 MiB map), persisted
with an atomic write and rename on clean shutdown.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

DEFAULT_REGION_BYTES = 1024 * 1024


class DirtyMap:
    def __init__(self, num_blocks: int, block_size: int,
                 region_bytes: int = DEFAULT_REGION_BYTES) -> None:
        if region_bytes % block_size:
            raise ValueError(f"region size {region_bytes} is not a multiple of {block_size}")
        self.num_blocks = num_blocks
        self.blocks_per_region = region_bytes // block_size
        self.num_regions = -(-num_blocks // self.blocks_per_region)
        self._bits = bytearray(self.num_regions)
        self._dirty = 0

    def __len__(self) -> int:
        """How many regions are dirty."""
        return self._dirty

    def mark(self, lba: int, count: int) -> None:
        first = lba // self.blocks_per_region
        last = (lba + max(count, 1) - 1) // self.blocks_per_region
        for region in range(first, min(last, self.num_regions - 1) + 1):
            if not self._bits[region]:
                self._bits[region] = 1
                self._dirty += 1

    def mark_all(self) -> None:
        self._bits[:] = b"\x01" * self.num_regions
        self._dirty = self.num_regions

    def clear(self, region: int) -> None:
        if self._bits[region]:
            self._bits[region] = 0
            self._dirty -= 1

    def is_dirty(self, region: int) -> bool:
        return bool(self._bits[region])

    def region_extent(self, region: int) -> tuple[int, int]:
        """``(lba, count)`` of a region, the last one possibly short."""
        lba = region * self.blocks_per_region
        return lba, min(self.blocks_per_region, self.num_blocks - lba)

    def dirty_regions(self) -> Iterator[int]:
        """Dirty regions in ascending order, a snapshot taken now."""
        snapshot = bytes(self._bits)
        region = snapshot.find(1)
        while region != -1:
            yield region
            region = snapshot.find(1, region + 1)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "wb") as f:
            f.write(self._bits)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, num_blocks: int, block_size: int,
             region_bytes: int = DEFAULT_REGION_BYTES) -> DirtyMap:
        """The saved map, or a fully dirty one when the file is missing or wrong."""
        dirty = cls(num_blocks, block_size, region_bytes)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        if len(data) == dirty.num_regions and set(data) <= {0, 1}:
            dirty._bits[:] = data
            dirty._dirty = data.count(1)
        else:
            dirty.mark_all()
        return dirty
