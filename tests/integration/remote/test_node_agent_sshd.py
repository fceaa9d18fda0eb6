"""The workload agent on a real block device (a loop device) of a host reached over a
real OpenSSH server in a namespace: safety checks, clock, history, checkers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess

import pytest

from harness.checks.integrity import check_devices
from harness.remote.agent import AgentRun, DeviceInUse, NodeAgent
from harness.workload.history import load_history
from tests.support.loopdev import loop_device

pytestmark = [pytest.mark.slow, pytest.mark.needs_root]


@pytest.fixture
def linux(sshd_host):
    with sshd_host.linux_host() as host:
        yield host


@pytest.fixture
def disk(tmp_path):
    with loop_device(tmp_path, 4 << 20) as dev:
        yield dev


def test_agent_writes_stamped_history_that_the_checkers_judge(linux, disk, tmp_path):
    agent = NodeAgent(linux, "node1", disk, alias="HA1")
    use = agent.refuse_if_in_use()
    assert use.size == 4 << 20 and use.reason is None
    clock = agent.clock()
    # the namespace shares this machine's monotonic clock: the offset is within its error
    assert abs(clock.offset_ns) <= clock.uncertainty_ns
    run = AgentRun("node1", clock)
    run.fault_start("nothing", kind="none")
    run.records = agent.run(generation=0x51, seed=7, writers=2, ops=40, block_size=4096)
    run.fault_stop("nothing")
    path = run.write(tmp_path / "history.jsonl")
    history = load_history(path)
    assert len(history.writes) == 80 and {o.outcome for o in history.writes} == {"ok"}
    assert history.header.options["o_direct"] is True
    fault = history.faults[0]
    assert fault.start_ns <= history.writes[0].invoke_ns
    assert history.writes[-1].complete_ns <= fault.stop_ns
    device = agent.block_device(use)
    verdict = asyncio.run(check_devices(history, {"node1": device}))
    assert verdict.valid, verdict.problems[:3]
    # the check can fail: zero an acknowledged block behind the agent's back
    victim = history.writes[-1]
    offset = victim.lba * history.header.logical_block_size
    with open(disk, "r+b", buffering=0) as fh:
        os.pwrite(fh.fileno(), bytes(4096), offset)
        os.fsync(fh.fileno())
    subprocess.run(["blockdev", "--flushbufs", disk], check=False)
    broken = asyncio.run(check_devices(history, {"node1": device}))
    assert not broken.valid
    assert {p.kind for p in broken.problems} & {"lost", "stale"}


def test_a_device_held_open_exclusively_is_refused_before_anything_is_written(linux, disk):
    fd = os.open(disk, os.O_RDONLY | os.O_EXCL)
    try:
        agent = NodeAgent(linux, "node1", disk)
        with pytest.raises(DeviceInUse, match="in use"):
            agent.refuse_if_in_use()
        with pytest.raises(DeviceInUse, match="refused on node1"):
            agent.run(generation=1, ops=1)
    finally:
        os.close(fd)
    with open(disk, "rb") as fh:
        assert fh.read(1 << 20) == bytes(1 << 20)  # nothing was written


def test_a_mounted_device_is_refused(linux, disk, tmp_path):
    if subprocess.run(["mkfs.ext2", "-q", "-F", disk], capture_output=True).returncode:
        pytest.skip("mkfs.ext2 failed")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", disk, str(mnt)], check=True)
    try:
        agent = NodeAgent(linux, "node1", disk)
        use = agent.check()
        # sshd runs under 'ip netns exec', in its own mount namespace, so it may not see
        # this mount in /proc/mounts; the kernel still refuses the exclusive open
        assert use.mounts or "busy" in (use.error or "")
        with pytest.raises(DeviceInUse, match=r"in use: (mounted|.*busy)"):
            agent.refuse_if_in_use()
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["umount", str(mnt)], check=True)


def test_the_history_is_streamed_so_a_cut_off_run_keeps_what_it_recorded(linux, disk):
    """Records reach the controller as the agent prints them: a run cut off by its timeout
    (the connection, in effect, lost) still hands over the header and the writes so far."""
    from tenacity import Retrying, stop_after_delay, wait_fixed

    from harness.remote.errors import CommandTimedOut

    agent = NodeAgent(linux, "node1", disk)
    got: list[dict] = []
    with pytest.raises(CommandTimedOut):
        agent.run(generation=0x52, seed=1, writers=1, duration_s=3.0, timeout=1.5,
                  on_record=got.append)
    assert got[0]["type"] == "header" and any(r["type"] == "ok" for r in got[1:])
    # the agent on the host ends by itself (its output is gone) before the disk goes away
    for attempt in Retrying(stop=stop_after_delay(30), wait=wait_fixed(0.2), reraise=True):
        with attempt:
            assert not [fd for pid in os.listdir("/proc") if pid.isdigit()
                        for fd in _fds(pid) if fd == os.path.realpath(disk)]


def _fds(pid: str) -> list[str]:
    try:
        return [os.path.realpath(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return []
