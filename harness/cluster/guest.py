"""A VM's storage side: its virtual disk (a region of the CSV), and its guest workload.

The model is Hyper-V on a Cluster Shared Volume: every node has the
vm-storage HA device (the CSV) attached at once, over MPIO, with its own
initiator identity; a VM's virtual disk is one region of it, and the VM writes
only there. ``VirtualDisk`` is that region as a ``BlockDevice``. The VM process
opens its own MPIO sessions to the CSV from the node it runs on and registers
the node's persistent-reservation key on each of them (the CSV carries a
Write Exclusive - Registrants Only reservation, so a fenced node's writes are
refused, not applied); moving the VM moves these storage handles: the
destination's sessions register before the VM resumes there, the source's
unregister when it is cleaned up.

The guest workload is the project's stamped writer (``harness.workload``). One
VM is one logical run (one generation, one geometry); each VM process records
its own *segment* of the run's history, ``seg-NNNN-<node>.jsonl`` in the VM's
history directory, and numbers its writes from ``segment << SEGMENT_SHIFT`` so
no stamp id repeats across segments, even when a fenced node's VM is still
running while the role restarts elsewhere. ``harness.cluster.history`` joins
the segments for the checkers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.workload.device import BlockDevice, Completion
from harness.workload.generator import WorkloadSpec
from harness.workload.history import History, HistoryHeader
from harness.workload.writers import Workload, WorkloadResult

SEGMENT_SHIFT = 28
_SEGMENT = re.compile(r"seg-(\d{4})-")


class VirtualDisk:
    """Blocks ``first_lba .. first_lba + num_blocks`` of a shared disk, as a disk of its own."""

    def __init__(self, disk: BlockDevice, first_lba: int, num_blocks: int, name: str) -> None:
        from harness.cluster.errors import ClusterConfigError

        if first_lba < 0 or num_blocks <= 0 or first_lba + num_blocks > disk.num_blocks:
            raise ClusterConfigError(
                f"virtual disk {name} (blocks {first_lba}+{num_blocks}) does not fit on the "
                f"{disk.num_blocks}-block CSV; make the VM disks smaller or fewer")
        self.disk = disk
        self.first_lba = first_lba
        self._num_blocks = num_blocks
        self.name = name
        self.events = getattr(disk, "events", None)

    @property
    def block_size(self) -> int:
        return self.disk.block_size

    @property
    def num_blocks(self) -> int:
        return self._num_blocks

    def _check(self, lba: int, count: int) -> None:
        if lba < 0 or lba + count > self._num_blocks:
            raise ValueError(f"{self.name}: blocks {lba}+{count} outside the virtual disk")

    async def read(self, lba: int, count: int) -> Completion:
        self._check(lba, count)
        return await self.disk.read(self.first_lba + lba, count)

    async def write(self, lba: int, data: bytes) -> Completion:
        self._check(lba, len(data) // self.block_size)
        return await self.disk.write(self.first_lba + lba, data)

    async def flush(self) -> None:
        await self.disk.flush()

    async def close(self) -> None:
        """The virtual disk does not own the CSV; closing it closes nothing."""


async def open_csv(paths: list[dict[str, Any]], timers: dict[str, Any], name: str,
                   pr_key: int | None) -> Any:
    """An open MPIO device over ``paths`` (PathSpec fields), the node's PR key registered."""
    from harness.initiator.mpio.device import MultipathDevice
    from harness.initiator.mpio.link import PathSpec
    from harness.initiator.mpio.session_link import SessionConnector
    from harness.initiator.mpio.timers import MpioTimers
    from harness.workload.iscsi_device import MultipathBlockDevice

    mpio_timers = MpioTimers.from_mapping(timers)
    mpio = MultipathDevice([PathSpec(**p) for p in paths], name=name, timers=mpio_timers,
                           connector=SessionConnector.for_timers(mpio_timers))
    await mpio.open()
    try:
        if pr_key:
            await mpio.pr.register(pr_key)
    except BaseException:
        await mpio.close()
        raise
    return MultipathBlockDevice(mpio)


async def close_csv(device: Any, *, unregister: bool) -> None:
    """Close the VM's CSV sessions; ``unregister`` removes their PR registrations first."""
    if unregister:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(device.mpio.pr.unregister(), 5.0)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(device.close(), 5.0)


def segments(history_dir: str | os.PathLike[str]) -> list[Path]:
    return sorted(Path(history_dir).glob("seg-*.jsonl"))


def open_segment(history_dir: str | os.PathLike[str], header: HistoryHeader,
                 node: str) -> tuple[History, int]:
    """A new history segment (the next number in the directory) and its number."""
    Path(history_dir).mkdir(parents=True, exist_ok=True)
    while True:
        taken = [int(m.group(1)) for p in segments(history_dir)
                 if (m := _SEGMENT.match(p.name))]
        number = max(taken, default=-1) + 1
        path = Path(history_dir) / f"seg-{number:04d}-{node}.jsonl"
        try:  # claim the number; History then truncates and writes the header
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            continue
        options = dict(header.options, segment=number, node=node)
        seg_header = HistoryHeader(**{**asdict(header), "options": options})
        return History(path, seg_header), number


class GuestWorkload:
    """The stamped workload of one VM process, on its virtual disk, in its own segment."""

    def __init__(self, disk: VirtualDisk, spec: WorkloadSpec, header: HistoryHeader,
                 history_dir: str | os.PathLike[str], node: str) -> None:
        self.disk = disk
        self.history, self.segment = open_segment(history_dir, header, node)
        self.workload = Workload(disk, spec, self.history, seq_base=self.segment << SEGMENT_SHIFT)
        self._task: asyncio.Task[WorkloadResult] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.workload.run())

    async def pause(self) -> WorkloadResult:
        """Stop issuing I/O and wait for every I/O in flight to complete (then a flush)."""
        self.workload.stop()
        assert self._task is not None
        result = await self._task
        self.history.close()
        return result

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()
