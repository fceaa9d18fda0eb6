"""Integrity: after the run, is every acknowledged write still there?

The model (see ``harness.checks.model``): each checker block is a register;
after the run it may hold any non-``fail`` write that no ``ok`` write certainly
overwrote (invoked after it completed), or its initial content when no ``ok``
write touched it. An ``info`` write may or may not be visible. The device is
read back through every path and every 512-byte sector is judged, vectorised:

- ``lost``: the block holds its initial content (zeros) but an ``ok`` write
  must be visible;
- ``stale``: the block holds a real write of this run that a later ``ok`` write
  certainly replaced (a revert to older data);
- ``torn``: sectors of one block come from different writes (or written and
  unwritten sectors mix) where that is not allowed: never inside one logical
  block of the device, and across logical blocks only when every part is an
  acceptable value (SBC makes no multi-block atomicity promise);
- ``misplaced``: a sector carries another address (misdirected write or read)
  or, on a device the workload created empty, a block of another run;
- ``corrupt``: a sector with the stamp magic but a bad CRC, or foreign bytes
  where this run's data must be;
- ``phantom``: a valid stamp of this run that the history says cannot be there
  (a write never issued to that block, or one that ended ``fail``);
- ``unreadable``: a path failed a read, so nothing from there on was checked on it.

Blocks the run never wrote must hold their initial content; with an unknown
initial content (a device the workload did not create) anything that is not
this run's data counts as initial content.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.checks.model import WriteIndex
from harness.checks.verdict import Problem, Verdict
from harness.errors import SplitbrainError
from harness.workload.device import BlockDevice
from harness.workload.errors import DeviceError
from harness.workload.history import RecordedHistory
from harness.workload.history_stream import HistoryOutline
from harness.workload.stamp import SECTOR, SectorState, scan_sectors

CHUNK = 4 << 20
_ZEROS = bytes(CHUNK)

INITIAL = -1
BAD = -2
DEAD = -3  # a write of this run dropped from memory as overwritten everywhere: stale


@dataclass(slots=True)
class _Run:
    """Adjacent problem blocks with the same explanation, merged into one problem."""

    kind: str
    first: int
    last: int
    observed: tuple[int, ...]
    expected: int
    note: str
    extra_records: list[dict[str, Any]] = field(default_factory=list)


class IntegrityCheck:
    """Judges buffers read from a device against a history's writes."""

    def __init__(self, history: RecordedHistory | HistoryOutline,
                 index: WriteIndex | None = None) -> None:
        self.history = history
        if index is None:
            assert isinstance(history, RecordedHistory), "a streamed history needs its index"
            index = WriteIndex(history)
        self.index = index
        h = history.header
        self.block_size = h.block_size
        self.sectors_per_block = h.block_size // SECTOR
        self.atomic_sectors = max(1, min(h.logical_block_size, h.block_size) // SECTOR)
        self.initial_zero = h.initial == "zero"
        self.generation = h.generation
        self.stats: dict[str, dict[str, Any]] = {}

    def _zeros_expected(self, offset: int, data: bytes | bytearray | memoryview) -> bool:
        """``data`` is all zeros and no ok write covers it: every sector is the initial
        content it may hold, so scanning it would find nothing (the cheap common case of
        a device the run wrote only part of)."""
        first = offset // self.block_size
        stop = first + len(data) // self.block_size
        if stop > len(self.index.latest_ok_invoke) or \
                (self.index.latest_ok_invoke[first:stop] >= 0).any():
            return False
        if len(_ZEROS) < len(data):
            return not np.frombuffer(data, dtype=np.uint8).any()
        return bytes(data) == _ZEROS[:len(data)]  # memcmp: far cheaper than a scan

    def _device_stats(self, device: str) -> dict[str, Any]:
        return self.stats.setdefault(device, {"bytes": 0, "blocks": 0, "written_blocks": 0,
                                              "problem_blocks": 0, "seconds": 0.0})

    def check_buffer(self, offset: int, data: bytes | bytearray | memoryview,
                     device: str) -> list[Problem]:
        """Problems in ``data`` read at byte ``offset`` (aligned to the checker block)."""
        t0 = time.perf_counter()
        idx = self.index
        if self._zeros_expected(offset, data):  # all zeros where no ok write landed
            st = self._device_stats(device)
            st["bytes"] += len(data)
            st["blocks"] += len(data) // self.block_size
            st["seconds"] += time.perf_counter() - t0
            return []
        scan = scan_sectors(data, offset)
        n = len(scan)
        k = self.sectors_per_block
        addr = np.arange(scan.first_lba, scan.first_lba + n, dtype=np.int64)
        block = addr // k
        state = scan.state
        stamped = state == SectorState.STAMPED
        ours = stamped & (scan.generation == self.generation)
        foreign = stamped & ~ours
        wrong_lba = scan.lba.astype(np.int64) != addr
        misplaced = stamped & wrong_lba & (ours | self.initial_zero)
        misplaced |= foreign & self.initial_zero
        damaged = (state == SectorState.BAD_CRC) & (scan.generation == self.generation)
        garbage = (state == SectorState.GARBAGE) | (state == SectorState.BAD_CRC)
        corrupt = damaged | (garbage & self.initial_zero)
        candidate = ours & ~misplaced
        widx = np.where(candidate, idx.lookup(scan.writer.astype(np.int64),
                                              scan.seq.astype(np.int64)), -1)
        safe = np.maximum(widx, 0)
        if idx.n:
            covers = (widx >= 0) & (idx.first[safe] <= block) & (block < idx.stop[safe])
            failed = idx.outcome[safe] == 2
        else:
            covers = np.zeros(n, dtype=bool)
            failed = covers
        # a write the streamed table dropped: overwritten on every block it wrote
        dead = candidate & (widx < 0)
        if dead.any():
            dead[dead] = idx.is_dead(scan.writer[dead].astype(np.int64),
                                     scan.seq[dead].astype(np.int64))
        phantom = candidate & ~(covers & ~failed) & ~dead
        latest = idx.latest_ok_invoke[block]
        is_write = candidate & ~phantom & ~dead
        is_initial = ~stamped & ~corrupt | (foreign & ~misplaced)
        ident = np.where(is_write, widx, np.where(is_initial, INITIAL,
                                                  np.where(dead, DEAD, BAD)))
        end = idx.end[safe] if idx.n else np.zeros(n, dtype=np.int64)
        acceptable = np.where(is_write, end >= latest, is_initial & (latest < 0))
        nb = n // k
        ok_block = acceptable.reshape(nb, k).all(axis=1)
        a = self.atomic_sectors
        units = ident.reshape(-1, a)
        unit_mixed = (units != units[:, :1]).any(axis=1).reshape(nb, k // a).any(axis=1)
        problem = ~ok_block | unit_mixed
        st = self._device_stats(device)
        st["bytes"] += n * SECTOR
        st["blocks"] += nb
        st["written_blocks"] += int(stamped.reshape(nb, k).any(axis=1).sum())
        problems: list[Problem] = []
        if problem.any():
            flags = {"corrupt": corrupt, "misplaced": misplaced, "phantom": phantom,
                     "garbage": garbage}
            runs = self._explain(np.flatnonzero(problem), int(block[0]), ident, acceptable,
                                 unit_mixed, flags, scan)
            st["problem_blocks"] += int(problem.sum())
            problems = [self._problem(r, device) for r in runs]
        st["seconds"] += time.perf_counter() - t0
        return problems

    def _explain(self, blocks: np.ndarray, first_block: int, ident: np.ndarray,
                 acceptable: np.ndarray, unit_mixed: np.ndarray,
                 flags: dict[str, np.ndarray], scan: Any) -> list[_Run]:
        k = self.sectors_per_block
        runs: list[_Run] = []
        nb = len(ident) // k
        by_block = ident.reshape(nb, k)
        flagged = (flags["corrupt"] | flags["garbage"] | flags["misplaced"]
                   | flags["phantom"]).reshape(nb, k).any(axis=1)
        simple = (~flagged & ~unit_mixed & (by_block == by_block[:, :1]).all(axis=1)).tolist()
        first_ident = by_block[:, 0].tolist()
        latest_ok = self.index.latest_ok[first_block:first_block + nb].tolist()
        for rel in blocks.tolist():
            b = first_block + rel
            expected = latest_ok[rel]
            if simple[rel]:  # one value, nothing damaged: lost or stale, merged cheaply
                v = first_ident[rel]
                last = runs[-1] if runs else None
                if (last is not None and last.last == b - 1 and last.observed == (v,)
                        and last.expected == expected):
                    last.last = b
                    continue
            sl = slice(rel * k, (rel + 1) * k)
            ids = ident[sl]
            observed = tuple(sorted(set(ids.tolist())))
            note = ""
            extra: list[dict[str, Any]] = []
            if flags["corrupt"][sl].any() or (flags["garbage"][sl].any() and expected >= 0):
                kind = "corrupt"
                bad = int(np.flatnonzero(flags["corrupt"][sl] | flags["garbage"][sl])[0])
                note = f"sector {bad} fails its CRC or is not a stamp"
            elif flags["misplaced"][sl].any():
                kind = "misplaced"
                j = sl.start + int(np.flatnonzero(flags["misplaced"][sl])[0])
                claimed = int(scan.lba[j]) * SECTOR
                gen = int(scan.generation[j])
                if gen != self.generation:
                    note = f"holds a block of another run (generation {gen:08x})"
                else:
                    note = f"holds the stamp written for byte offset {claimed}"
                    w = self.index.lookup_one(int(scan.writer[j]), int(scan.seq[j]))
                    if w >= 0:
                        extra = self.index.records(w)
                        note += f" by {self.index.describe(w)}"
            elif flags["phantom"][sl].any():
                kind = "phantom"
                j = sl.start + int(np.flatnonzero(flags["phantom"][sl])[0])
                w = self.index.lookup_one(int(scan.writer[j]), int(scan.seq[j]))
                if w >= 0:
                    extra = self.index.records(w)
                    note = (f"holds {self.index.describe(w)}, which "
                            + ("failed" if self.index.outcome[w] == 2 else
                               "never wrote this block"))
                else:
                    note = (f"holds stamp w{int(scan.writer[j])}#{int(scan.seq[j])} "
                            "that this run never issued")
            elif unit_mixed[rel] or len(observed) > 1:
                kind = "torn"
                note = "sectors from " + ", ".join(self._name(i) for i in observed)
            elif observed[0] == INITIAL:
                kind = "lost"
                note = "holds its initial content"
            else:
                kind = "stale"
                note = f"holds {self._name(observed[0])}, certainly overwritten"
            last = runs[-1] if runs else None
            if (last is not None and last.last == b - 1 and last.kind == kind
                    and last.observed == observed and last.expected == expected):
                last.last = b
            else:
                runs.append(_Run(kind, b, b, observed, expected, note, extra))
        return runs

    def _name(self, ident: int) -> str:
        if ident == INITIAL:
            return "initial content"
        if ident == BAD:
            return "damaged data"
        if ident == DEAD:
            return "a write of this run that later ok writes overwrote on every block"
        return self.index.describe(ident)

    def _problem(self, run: _Run, device: str) -> Problem:
        bs = self.block_size
        records: list[dict[str, Any]] = []
        seen: set[int] = set()
        writes = [i for i in (run.expected, *run.observed) if i >= 0]
        for i in writes:
            if i not in seen:
                seen.add(i)
                records.extend(self.index.records(i))
        for rec in run.extra_records:
            if rec not in records:
                records.append(rec)
        expected = self._name(run.expected) if run.expected >= 0 else "initial content"
        blocks = run.last - run.first + 1
        message = (f"{run.kind}: {blocks} block{'s' if blocks > 1 else ''} at byte "
                   f"{run.first * bs} {run.note}; expected {expected}")
        return Problem(
            kind=run.kind,
            message=message,
            offset=run.first * bs,
            length=blocks * bs,
            device=device,
            records=records,
            detail={
                "expected": expected,
                "observed": [self._name(i) for i in run.observed],
            },
        )

    def verdict(self, problems: list[Problem]) -> Verdict:
        stats: dict[str, Any] = {"devices": self.stats}
        for st in self.stats.values():
            secs = st["seconds"]
            st["verify_bytes_per_s"] = st["bytes"] / secs if secs else None
        return Verdict("integrity", problems, stats)


async def check_devices(history: RecordedHistory | HistoryOutline,
                        devices: dict[str, BlockDevice], *, chunk: int = CHUNK,
                        index: WriteIndex | None = None, span: int | None = None,
                        check: IntegrityCheck | None = None,
                        problems: list[Problem] | None = None) -> Verdict:
    """Read every device (every path) back in full and check it against the history.

    A path that fails a read is reported as ``unreadable`` from that offset on; the
    other paths are still checked. A streamed history (its ``HistoryOutline``) needs
    its ``index`` (``WriteIndex.from_table``). ``span``: read only the first ``span``
    bytes (where the workload wrote; the caller checks the rest another way, e.g. in
    the replicas' images with ``check``, whose ``problems`` join this verdict).
    """
    check = check or IntegrityCheck(history, index)
    problems = list(problems or [])
    size = history.header.size
    bs = history.header.block_size
    checked = size // bs * bs  # a tail smaller than a checker block is never written
    if span is not None:
        checked = min(checked, max(bs, span // bs * bs))
    chunk = max(bs, chunk // bs * bs)
    for name, dev in devices.items():
        dev_size = dev.num_blocks * dev.block_size
        if dev_size != size:
            raise DeviceError(
                f"device {name} has {dev_size} bytes but the history was recorded on "
                f"{size} bytes; check the right device"
            )
        lbs = dev.block_size

        async def read(off: int, dev: BlockDevice = dev, lbs: int = lbs) -> bytes:
            n = min(chunk, checked - off)
            return (await dev.read(off // lbs, n // lbs)).data

        offsets = list(range(0, checked, chunk))
        pending = asyncio.ensure_future(read(offsets[0])) if offsets else None
        try:
            for i, off in enumerate(offsets):
                assert pending is not None
                try:
                    data = await pending
                except SplitbrainError as exc:
                    problems.append(Problem(
                        "unreadable", f"unreadable: {name} failed a read at byte {off}: {exc}",
                        off, checked - off, name, detail={"error": str(exc)}))
                    pending = None
                    break
                pending = asyncio.ensure_future(read(offsets[i + 1])) \
                    if i + 1 < len(offsets) else None
                problems.extend(check.check_buffer(off, data, name))
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
    return check.verdict(problems)


def check_image(history: RecordedHistory, path: str | os.PathLike[str], *,
                name: str | None = None, chunk: int = CHUNK) -> Verdict:
    """Check an image file directly (a lab replica's backing file)."""
    check = IntegrityCheck(history)
    name = name or os.fspath(path)
    problems: list[Problem] = []
    size = history.header.size
    checked = size // history.header.block_size * history.header.block_size
    try:
        with open(path, "rb", buffering=0) as fh:
            actual = os.fstat(fh.fileno()).st_size
            if actual < size:
                raise DeviceError(f"image {name} has {actual} bytes, the history needs {size}")
            buf = bytearray(chunk)
            for off in range(0, checked, chunk):
                n = min(chunk, checked - off)
                view = memoryview(buf)[:n]
                got = fh.readinto(view)
                if got != n:
                    raise DeviceError(f"short read of image {name} at byte {off}")
                problems.extend(check.check_buffer(off, view, name))
    except OSError as exc:
        raise DeviceError(f"cannot read image {name}: {exc.strerror}") from exc
    return check.verdict(problems)
