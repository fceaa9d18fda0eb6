"""The activity log: which regions may hold a write that is not on every replica.

DRBD's model: before a write is ordered, the region (the dirty map's region) it
touches is made *active*, and the set of active regions is persisted (written in
place and fdatasync'ed) before the write leaves. A region stays active while writes to it
are in flight, and beyond that until the set outgrows its capacity (then idle
regions leave it, least recently used first), so a steady workload persists
nothing at all. After a crash, the log read back at start names every region
where this replica and its partner can differ: the sequencer may have died after
its ORDER left and before its own write, or after its own write and before the
ORDER left. The replica announces those regions in HELLO and the resync source
copies them along with its dirty map (docs/ha.md, "Generations and double
failures"). A clean shutdown empties the log of all but its suspect regions.

The file is one line of JSON: ``{"regions": [..]}``.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

#: idle regions kept active before the least recently used leave the log
DEFAULT_CAPACITY = 512


class ActivityLog:
    def __init__(self, path: Path, blocks_per_region: int, num_blocks: int,
                 capacity: int = DEFAULT_CAPACITY) -> None:
        self.path = path
        self.blocks_per_region = blocks_per_region
        self.num_regions = -(-num_blocks // blocks_per_region)
        self.capacity = capacity
        #: region -> writes in flight; insertion order is recency (LRU first)
        self._active: OrderedDict[int, int] = OrderedDict()
        #: regions read back from a log left by a crash, until a resync covers them
        self.suspect: frozenset[int] = frozenset()
        self.persists = 0  # how many times the log was written (tests, status)
        #: the log a previous run left was found (readable or not): what it names is
        #: everything that may differ. False when there was none to read.
        self.known = False

    def recover(self) -> frozenset[int]:
        """Read the log a previous run left; its regions are suspect until resynced."""
        self.known = True
        try:
            regions = json.loads(self.path.read_text())["regions"]
        except FileNotFoundError:
            regions, self.known = [], False
        except (OSError, ValueError, KeyError, TypeError):
            regions = list(range(self.num_regions))  # unreadable: every region is suspect
        self.suspect = frozenset(int(r) for r in regions if 0 <= int(r) < self.num_regions)
        for region in sorted(self.suspect):
            self._active[region] = 0
        self._persist()  # from now on a log exists: after a crash it is known
        return self.suspect

    def extents(self) -> list[tuple[int, int]]:
        """The suspect regions as ``(lba, count)`` (what HELLO carries)."""
        bpr = self.blocks_per_region
        return [(r * bpr, bpr) for r in sorted(self.suspect)]

    def in_flight(self) -> list[tuple[int, int]]:
        """The regions with a write in flight now, as ``(lba, count)``."""
        bpr = self.blocks_per_region
        return [(r * bpr, bpr) for r, n in sorted(self._active.items()) if n > 0]

    def _regions(self, lba: int, count: int) -> range:
        first = lba // self.blocks_per_region
        last = (lba + max(count, 1) - 1) // self.blocks_per_region
        return range(first, min(last, self.num_regions - 1) + 1)

    def begin(self, lba: int, count: int) -> range:
        """Make the regions of a write active, persisted, before the write is ordered."""
        regions = self._regions(lba, count)
        new = False
        for region in regions:
            if region in self._active:
                self._active.move_to_end(region)
            else:
                new = True
            self._active[region] = self._active.get(region, 0) + 1
        if new:
            self._evict()
            self._persist()
        return regions

    def end(self, regions: range) -> None:
        """The write is on every replica that will ever need it (or has failed over)."""
        for region in regions:
            if region in self._active:
                self._active[region] = max(self._active[region] - 1, 0)

    def mark_suspect(self, lba: int, count: int) -> None:
        """A change this replica may hold and its partner may lack, without a crash.

        A sequencer that stops on sync loss fails its unacknowledged orders, but its own
        disk may have taken them: their regions are announced in HELLO like a crash's
        log (and stay in the log, so a crash before the resync names them too).
        """
        regions = set(self._regions(lba, count))
        if regions <= self.suspect:
            return
        self.suspect = self.suspect | regions
        for region in regions:
            self._active.setdefault(region, 0)
        self._persist()

    def forget_suspects(self) -> None:
        """A resync covered the suspect regions: they are no longer special."""
        if self.suspect:
            for region in self.suspect:
                if self._active.get(region) == 0:
                    del self._active[region]
            self.suspect = frozenset()
            self._persist()

    def clear(self) -> None:
        """Clean shutdown: nothing is in flight any more. Suspect regions stay (only a
        resync covers them): a stopped sequencer shut down cleanly before it met its
        partner again still names them in its next HELLO."""
        self._active = OrderedDict((region, 0) for region in sorted(self.suspect))
        self._persist()

    def _evict(self) -> None:
        excess = len(self._active) - self.capacity
        for region in list(self._active):
            if excess <= 0:
                break
            if self._active[region] == 0 and region not in self.suspect:
                del self._active[region]
                excess -= 1

    def _persist(self) -> None:
        # In place, then fdatasync: a write torn by a crash reads back as unreadable,
        # which makes every region suspect (a full copy), never fewer regions.
        with open(self.path, "w") as f:
            json.dump({"regions": sorted(self._active)}, f)
            f.flush()
            os.fdatasync(f.fileno())
        self.persists += 1

    def __len__(self) -> int:
        return len(self._active)
