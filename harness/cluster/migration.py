"""Live migration on the wire: pre-copy of memory over TCP, then pause, rest, resume.

The model is Hyper-V's (reference notes, validation-and-ha.md 4.1): the
destination has a skeleton VM listening; the source opens a TCP connection to
it and

1. copies every memory page while the guest runs (pass 1);
2. copies the pages the guest dirtied meanwhile, pass after pass, until few
   enough are left (``stop_pages``) or the pass limit is reached (``pass_limit``:
   5 since Windows Server 2012 R2, 10 in 2008 R2);
3. pauses the guest: the guest stops dirtying memory and the VM stops issuing
   I/O and waits for every I/O in flight to complete (so none is lost and none
   is replayed), then sends the last dirty pages, the memory digest and the
   device state (where its workload is, its history header);
4. the destination checks the digest, resumes the VM on its own storage
   sessions (registered with its node's reservation key before the resume) and
   answers with the resume time; a failure at any step before that answer
   aborts the migration, and the source resumes the VM where it was.

Blackout is pause to resume; both ends read ``time.monotonic_ns()`` of one
machine. ``link_rate_bps`` caps the copy rate like a live-migration network's
bandwidth, so the dirty rate can approach it.

Frames are ``kind (1 byte) | length (4 bytes, big-endian) | payload``: ``H``
hello (JSON), ``P`` pages (u32 count, u32 page numbers, the pages), ``S`` state
(JSON), ``R`` resumed (JSON), ``E`` error (JSON).
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness.cluster.errors import MigrationFailed
from harness.cluster.memory import GuestMemory

BATCH_PAGES = 256
HYPER_V_PASS_LIMIT = 5


@dataclass
class CopyPass:
    number: int
    pages: int
    bytes: int
    seconds: float
    dirtied_meanwhile: int = 0


@dataclass
class MigrationReport:
    """What one migration did and how long it took (seconds; ns are monotonic)."""

    vm: str
    kind: str  # "live" or "quick"
    source: str
    destination: str
    started_ns: int
    pause_ns: int
    resume_ns: int
    finished_ns: int
    passes: list[CopyPass] = field(default_factory=list)
    final_pages: int = 0
    bytes_copied: int = 0
    memory_bytes: int = 0
    announce: str = ""

    @property
    def blackout_measured(self) -> bool:
        """False where the blackout cannot be seen (a real hypervisor's migration)."""
        return self.pause_ns > 0 and self.resume_ns >= self.pause_ns

    @property
    def blackout_s(self) -> float:
        return (self.resume_ns - self.pause_ns) / 1e9 if self.blackout_measured else math.nan

    @property
    def total_s(self) -> float:
        return (self.finished_ns - self.started_ns) / 1e9

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "blackout_s": self.blackout_s, "total_s": self.total_s}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MigrationReport:
        d = {k: v for k, v in d.items() if k not in ("blackout_s", "total_s")}
        d["passes"] = [CopyPass(**p) for p in d.get("passes", [])]
        return cls(**d)


async def send_frame(writer: asyncio.StreamWriter, kind: bytes, payload: bytes) -> None:
    writer.write(kind + struct.pack(">I", len(payload)) + payload)
    await writer.drain()


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readexactly(5)
    (length,) = struct.unpack(">I", head[1:])
    return head[:1], await reader.readexactly(length)


def _json(payload: bytes) -> dict[str, Any]:
    return json.loads(payload.decode())


class Pacer:
    """Holds the sender to ``rate_bps`` bytes a second (None: as fast as TCP goes)."""

    def __init__(self, rate_bps: float | None) -> None:
        self.rate = rate_bps
        self.start = time.monotonic()
        self.sent = 0

    async def sent_bytes(self, n: int) -> None:
        self.sent += n
        if self.rate:
            ahead = self.sent / self.rate - (time.monotonic() - self.start)
            if ahead > 0:
                await asyncio.sleep(ahead)


async def send_pages(writer: asyncio.StreamWriter, memory: GuestMemory, pages: np.ndarray,
                     pacer: Pacer) -> int:
    sent = 0
    for i in range(0, len(pages), BATCH_PAGES):
        batch = pages[i:i + BATCH_PAGES]
        numbers = batch.astype(">u4").tobytes()
        # copy now: the guest may dirty a page again after this, which the log records
        body = b"".join(memory.page(int(n)) for n in batch)
        await send_frame(writer, b"P", struct.pack(">I", len(batch)) + numbers + body)
        sent += len(body)
        await pacer.sent_bytes(len(body) + len(numbers))
    return sent


def apply_pages(memory: GuestMemory, payload: bytes) -> int:
    (count,) = struct.unpack(">I", payload[:4])
    numbers = np.frombuffer(payload[4:4 + 4 * count], dtype=">u4")
    body = memory.page_size
    base = 4 + 4 * count
    for i, n in enumerate(numbers.tolist()):
        memory.load(n, payload[base + i * body: base + (i + 1) * body])
    return count


PauseVm = Callable[[], Awaitable[dict[str, Any]]]
ResumeVm = Callable[[], Awaitable[None]]


async def migrate_out(memory: GuestMemory, address: tuple[str, int], *, hello: dict[str, Any],
                      pause_vm: PauseVm, resume_here: ResumeVm, pass_limit: int,
                      stop_pages: int, link_rate_bps: float | None,
                      report: MigrationReport, timeout_s: float = 60.0) -> MigrationReport:
    """The source side; on any failure the VM is resumed here and ``MigrationFailed`` raised."""
    paused = False
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), timeout_s)
        await send_frame(writer, b"H", json.dumps(hello).encode())
        kind, payload = await asyncio.wait_for(read_frame(reader), timeout_s)
        if kind != b"R":
            raise MigrationFailed(f"destination refused the migration: {_json(payload)}")
        pacer = Pacer(link_rate_bps)
        memory.mark_all_dirty()
        for number in range(1, pass_limit + 1):
            t0 = time.monotonic_ns()
            pages = memory.take_dirty()
            sent = await asyncio.wait_for(send_pages(writer, memory, pages, pacer), timeout_s)
            report.passes.append(CopyPass(number, len(pages), sent,
                                          (time.monotonic_ns() - t0) / 1e9,
                                          int(memory.dirty.sum())))
            report.bytes_copied += sent
            if int(memory.dirty.sum()) <= stop_pages:
                break
        state = await pause_vm()
        paused = True
        report.pause_ns = state["pause_ns"]
        pages = memory.take_dirty()
        report.final_pages = len(pages)
        report.bytes_copied += await asyncio.wait_for(
            send_pages(writer, memory, pages, Pacer(link_rate_bps)), timeout_s)
        state["digest"] = memory.digest()
        await send_frame(writer, b"S", json.dumps(state).encode())
        kind, payload = await asyncio.wait_for(read_frame(reader), timeout_s)
        answer = _json(payload)
        if kind != b"R":
            raise MigrationFailed(f"destination did not resume the VM: {answer.get('error')}")
        report.resume_ns = int(answer["resume_ns"])
        report.announce = str(answer.get("announce", ""))
        return report
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
        if paused:
            await resume_here()
        raise MigrationFailed(
            f"live migration of {report.vm} to {report.destination} failed "
            f"({type(exc).__name__}: {exc}); the VM keeps running on {report.source}") from None
    except MigrationFailed as exc:
        if paused:
            await resume_here()
        raise MigrationFailed(f"{exc}; the VM keeps running on {report.source}") from None
    finally:
        if writer is not None:
            writer.close()


ResumeFromState = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def migrate_in(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     memory: GuestMemory, *, accept: Callable[[dict[str, Any]], str | None],
                     resume: ResumeFromState) -> dict[str, Any] | None:
    """The destination side of one incoming migration; the resume answer, or None."""
    kind, payload = await read_frame(reader)
    refusal = accept(_json(payload)) if kind == b"H" else "no hello"
    if refusal:
        await send_frame(writer, b"E", json.dumps({"error": refusal}).encode())
        return None
    await send_frame(writer, b"R", b"{}")
    while True:
        kind, payload = await read_frame(reader)
        if kind == b"P":
            apply_pages(memory, payload)
            continue
        if kind != b"S":
            return None
        state = _json(payload)
        if memory.digest() != state.get("digest"):
            await send_frame(writer, b"E", json.dumps(
                {"error": "memory digest differs after the last copy"}).encode())
            return None
        try:
            answer = await resume(state)
        except Exception as exc:  # the source resumes the VM; say why here
            await send_frame(writer, b"E", json.dumps({"error": str(exc)}).encode())
            return None
        await send_frame(writer, b"R", json.dumps(answer).encode())
        return answer
