"""Durability of acknowledged writes on the reference target.

Two promises, each checked against the real node process:

1. A WRITE with FUA, and a SYNCHRONIZE CACHE, is on stable storage before GOOD:
   the node is traced with ``strace`` (syscalls of every thread, microsecond
   timestamps) and an ``fdatasync`` of the image must *complete* before the write
   of the response PDU starts. A plain WRITE in write-back mode is the control: no
   ``fdatasync`` happens for it, which shows the trace can tell the difference.
2. ``kill -9`` of a node in write-through mode loses no acknowledged write: the
   node is killed in the middle of a stream of writes, restarted on the same
   image, and every write that had received GOOD reads back intact.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.peers.reference_target import ReferenceTarget, ReferenceTargetFactory
from harness.scsi.cdb import Read, SynchronizeCache, Write
from harness.scsi.status import ScsiStatus
from suites.protocol.wire import PeerClosed, RawConnection

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

INITIATOR = "iqn.2026-11.org.splitbrain.test:durability"
BLOCK = 512
_LINE = re.compile(r"^(\d+)\s+(\d+:\d+:\d+\.\d+)\s+(.*)$")


def seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


@dataclass
class Syscall:
    tid: int
    start: float
    end: float
    name: str
    text: str


def parse_strace(log: str) -> list[Syscall]:
    """Calls with start and end times, joining ``<unfinished ...>``/``resumed`` pairs."""
    calls: list[Syscall] = []
    open_calls: dict[int, tuple[float, str]] = {}
    for line in log.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        tid, at, rest = int(m.group(1)), seconds(m.group(2)), m.group(3)
        if rest.endswith("<unfinished ...>"):
            open_calls[tid] = (at, rest)
            continue
        resumed = re.match(r"<\.\.\. (\w+) resumed>(.*)", rest)
        if resumed and tid in open_calls:
            start, first = open_calls.pop(tid)
            calls.append(Syscall(tid, start, at, resumed.group(1), first + resumed.group(2)))
            continue
        name = rest.split("(", 1)[0]
        calls.append(Syscall(tid, at, at, name, rest))
    return calls


class Tracer:
    """strace attached to every thread of the node, writing to a log file."""

    def __init__(self, pid: int, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            ["strace", "-f", "-tt", "-xx", "-s", "8", "-p", str(pid), "-o", str(log),
             "-e", "trace=fdatasync,fsync,write,writev,sendmsg,sendto"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_attached(self) -> None:
        def attached() -> bool:
            return self.proc.poll() is not None or self._stderr_has_attached()

        self._seen = b""
        Retrying(stop=stop_after_delay(20), wait=wait_fixed(0.1),
                 retry=retry_if_result(lambda ok: not ok), reraise=True)(attached)
        if self.proc.poll() is not None and b"Operation not permitted" in self._seen:
            pytest.skip("strace may not trace the node: run as root or set "
                        "kernel.yama.ptrace_scope=0")
        assert self.proc.poll() is None, f"strace could not attach: {self._seen!r}"

    def _stderr_has_attached(self) -> bool:
        assert self.proc.stderr is not None
        os.set_blocking(self.proc.stderr.fileno(), False)
        chunk = self.proc.stderr.read() or b""
        self._seen += chunk
        return b"attached" in self._seen

    def stop(self) -> list[Syscall]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(20)
        return parse_strace(self.log.read_text(errors="replace"))


def responses(calls: list[Syscall]) -> list[Syscall]:
    """Socket writes that start with a SCSI Response PDU (opcode 0x21, F bit)."""
    return [c for c in calls if c.name in {"write", "writev", "sendmsg", "sendto"}
            and "\\x21\\x80" in c.text]


def syncs(calls: list[Syscall]) -> list[Syscall]:
    return [c for c in calls
            if c.name in {"fdatasync", "fsync"} and c.text.rstrip().endswith("= 0")]


def logged_in(node: ReferenceTarget) -> RawConnection:
    conn = RawConnection(*node.portals[0])
    assert conn.login(INITIATOR, node.iqn).ok
    # The first command of a new I_T nexus reports POWER ON (a unit attention); take it.
    for _ in range(3):
        if conn.command(bytes(6)).status == ScsiStatus.GOOD:
            return conn
    raise AssertionError("TEST UNIT READY never returned GOOD")


@pytest.fixture
def traced_node(reference_target_factory: ReferenceTargetFactory,
                request: pytest.FixtureRequest) -> Iterator[ReferenceTarget]:
    if shutil.which("strace") is None:
        pytest.skip("needs the Debian package strace")
    write_through = getattr(request, "param", False)
    yield reference_target_factory.start(name="traced", write_through=write_through)


def trace(node: ReferenceTarget, tmp_path: Path, action) -> list[Syscall]:
    conn = logged_in(node)
    try:
        tracer = Tracer(node.pid, tmp_path / "strace.log")
        try:
            tracer.wait_attached()
            action(conn)
        finally:
            calls = tracer.stop()
    finally:
        conn.close()
    return calls


def assert_synced_before_response(calls: list[Syscall]) -> None:
    sent = responses(calls)
    assert len(sent) == 1, f"expected one SCSI Response in the trace, got {len(sent)}"
    done = [c for c in syncs(calls) if c.end <= sent[0].start]
    assert done, ("no fdatasync completed before the SCSI Response was written; syncs: "
                  f"{[(c.start, c.end) for c in syncs(calls)]}, response at {sent[0].start}")


def test_fua_write_is_on_disk_before_good(traced_node: ReferenceTarget, tmp_path: Path) -> None:
    def write_fua(conn: RawConnection) -> None:
        cdb = Write(lba=64, blocks=8, size=10, fua=True).encode()
        assert conn.command(cdb, data_out=os.urandom(8 * BLOCK)).status == ScsiStatus.GOOD

    assert_synced_before_response(trace(traced_node, tmp_path, write_fua))


def test_synchronize_cache_is_on_disk_before_good(traced_node: ReferenceTarget,
                                                  tmp_path: Path) -> None:
    conn = logged_in(traced_node)
    try:
        cdb = Write(lba=128, blocks=8, size=10).encode()
        assert conn.command(cdb, data_out=os.urandom(8 * BLOCK)).status == ScsiStatus.GOOD
    finally:
        conn.close()

    def sync_cache(conn: RawConnection) -> None:
        cdb = SynchronizeCache(lba=0, blocks=0, size=10).encode()
        assert conn.command(cdb).status == ScsiStatus.GOOD

    assert_synced_before_response(trace(traced_node, tmp_path, sync_cache))


def test_plain_write_in_write_back_mode_is_not_synced(traced_node: ReferenceTarget,
                                                      tmp_path: Path) -> None:
    """The control: the trace does see the difference between synced and not."""
    def write(conn: RawConnection) -> None:
        cdb = Write(lba=256, blocks=8, size=10).encode()
        assert conn.command(cdb, data_out=os.urandom(8 * BLOCK)).status == ScsiStatus.GOOD

    calls = trace(traced_node, tmp_path, write)
    assert len(responses(calls)) == 1
    assert syncs(calls) == []


@pytest.mark.parametrize("traced_node", [True], indirect=True, ids=["write-through"])
def test_write_through_syncs_every_write(traced_node: ReferenceTarget, tmp_path: Path) -> None:
    def write(conn: RawConnection) -> None:
        cdb = Write(lba=512, blocks=8, size=10).encode()
        assert conn.command(cdb, data_out=os.urandom(8 * BLOCK)).status == ScsiStatus.GOOD

    assert_synced_before_response(trace(traced_node, tmp_path, write))


def test_kill9_loses_no_acknowledged_write(reference_target: ReferenceTarget) -> None:
    acked: dict[int, bytes] = {}
    errors: list[BaseException] = []
    blocks = 8

    def writer() -> None:
        conn = logged_in(reference_target)
        try:
            for i in range(100_000):
                lba = i * blocks   # every write to its own LBA range: the last ack is final
                data = os.urandom(blocks * BLOCK)
                cdb = Write(lba=lba, blocks=blocks, size=10).encode()
                if conn.command(cdb, data_out=data).status != ScsiStatus.GOOD:
                    raise AssertionError(f"WRITE at LBA {lba} failed before the kill")
                acked[lba] = data
        except (PeerClosed, ConnectionError, OSError):
            return   # the node was killed: expected
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    Retrying(stop=stop_after_delay(60), wait=wait_fixed(0.05),
             retry=retry_if_result(lambda n: n < 200 and thread.is_alive()),
             reraise=True)(lambda: len(acked))
    reference_target.kill9()
    thread.join(30)
    assert not errors, errors
    assert len(acked) >= 200
    snapshot = dict(acked)
    reference_target.start()
    conn = logged_in(reference_target)
    try:
        lost = []
        for lba, data in snapshot.items():
            got = conn.command(Read(lba=lba, blocks=blocks, size=10).encode(),
                               read_length=blocks * BLOCK)
            if got.status != ScsiStatus.GOOD or got.data != data:
                lost.append(lba)
        assert not lost, f"{len(lost)} of {len(snapshot)} acknowledged writes lost: {lost[:10]}"
    finally:
        conn.close()
