"""FileDevice (O_DIRECT or buffered), and the workload over an MPIO device on the
in-memory SAN of the multipath tests, with a path killed mid-run."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from harness.checks.integrity import check_devices
from harness.checks.register import check_reads
from harness.checks.timing import measure
from harness.iscsi.names import parse_iscsi_url
from harness.workload.device import FileDevice
from harness.workload.device_spec import open_device
from harness.workload.errors import DeviceError, DeviceUrlError
from harness.workload.generator import WorkloadSpec
from harness.workload.history import History, HistoryHeader, load_history
from harness.workload.iscsi_device import (
    IscsiDevice,
    MultipathBlockDevice,
    ScsiIoError,
    mirror_path_events,
    open_iscsi_device,
    open_iscsi_paths,
)
from harness.workload.writers import Workload, write_not_applied

sys.path.insert(0, str(Path(__file__).parents[1] / "multipath"))
from fakesan import FakeDisk, FakeSan

from harness.initiator.mpio.timers import MpioTimers


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.mark.parametrize("direct", [True, False])
def test_file_device_round_trip(tmp_path, direct):
    async def body():
        dev = FileDevice(tmp_path / "d.img", size=1 << 20, direct=direct)
        try:
            assert dev.created and (dev.block_size, dev.num_blocks) == (512, 2048)
            data = bytes(range(256)) * 16
            assert (await dev.write(8, data)).path == str(tmp_path / "d.img")
            await dev.flush()
            assert (await dev.read(8, 8)).data == data
            assert (await dev.read(0, 8)).data == bytes(4096)
            with pytest.raises(DeviceError, match="outside"):
                await dev.read(2047, 2)
            with pytest.raises(DeviceError, match="whole number"):
                await dev.write(0, b"x" * 100)
        finally:
            await dev.close()
        ro = FileDevice(tmp_path / "d.img", readonly=True)
        assert not ro.created and (await ro.read(8, 8)).data == data
        await ro.close()

    run(body())


def test_file_device_user_errors(tmp_path):
    with pytest.raises(DeviceError, match="does not exist"):
        FileDevice(tmp_path / "missing.img")
    (tmp_path / "odd.img").write_bytes(b"x" * 1000)
    with pytest.raises(DeviceError, match="not a multiple"):
        FileDevice(tmp_path / "odd.img")
    with pytest.raises(DeviceError, match="neither"):
        FileDevice(tmp_path)
    with pytest.raises(DeviceUrlError, match="mix"):
        run(open_device(["a.img", "iscsi://h/iqn.x/0"]))
    with pytest.raises(DeviceUrlError, match="one path"):
        run(open_device(["a.img", "b.img"]))


FAST = MpioTimers(noop_out_interval_s=0.0, link_down_time_s=0.05, replacement_timeout_s=None,
                  retry_interval_s=0.01, delay_between_reconnect_s=0.05,
                  pdo_remove_period_s=2.0, disk_timeout_s=0.5, login_timeout_s=1.0)
URLS = [parse_iscsi_url(f"iscsi://127.0.0.1:{p}/iqn.2026-11.test:disk/0") for p in (3261, 3262)]


def test_workload_over_multipath_survives_a_killed_path(tmp_path):
    san = FakeSan(FakeDisk(num_blocks=8192))
    hist_path = tmp_path / "h.jsonl"

    async def body():
        dev = await open_iscsi_device(URLS, connector=san.connect, timers=FAST)
        assert isinstance(dev, MultipathBlockDevice)
        header = HistoryHeader(seed=3, generation=0xAB, block_size=4096,
                               logical_block_size=dev.block_size, num_blocks=dev.num_blocks,
                               device="mpio", initial="zero", start_ns=time.monotonic_ns())
        with History(hist_path, header) as history:
            unsubscribe = mirror_path_events(dev, history)
            spec = WorkloadSpec(seed=3, writers=2, queue_depth=2, duration=None,
                                ops_per_writer=150, read_ratio=0.3)
            hundred = asyncio.Event()
            workload = Workload(dev, spec, history, on_op=lambda _: workload.result.ops >= 100
                                and hundred.set())
            task = asyncio.create_task(workload.run())
            await asyncio.wait_for(hundred.wait(), 30)
            history.fault_start("kill portal 3261", paths=[str(URLS[0]).removeprefix("iscsi://")])
            san.kill("127.0.0.1:3261")
            result = await task
            history.fault_stop("kill portal 3261")
            unsubscribe()
        await dev.close()
        paths = await open_iscsi_paths(URLS[1:], connector=san.connect)
        try:
            verdict = await check_devices(load_history(hist_path), paths)
        finally:
            for p in paths.values():
                await p.close()
        return result, verdict

    result, verdict = run(body())
    assert result.ops == 300 and result.fail == 0
    assert verdict.valid, verdict.problems
    history = load_history(hist_path)
    assert check_reads(history).valid
    failed = str(URLS[0]).removeprefix("iscsi://")
    assert any(e.path == failed and e.state == "failed" for e in history.paths)
    (fault,) = measure(history).faults
    assert fault.failover_s is not None and fault.failover_path != failed


def test_reservation_conflict_is_a_write_that_did_not_happen():
    class ConflictLink:
        async def execute(self, cdb, *, data_out=b"", expected_in=0):
            from harness.initiator.mpio.link import ScsiOutcome

            return ScsiOutcome(0x18)

        async def close(self):
            pass

    dev = IscsiDevice(ConflictLink(), "p0", 512, 64)
    with pytest.raises(ScsiIoError, match="status 0x18") as err:
        run(dev.write(0, bytes(512)))
    assert write_not_applied(err.value)
    assert not write_not_applied(ScsiIoError("x", 0x02))


def test_o_direct_refused_at_open_or_at_first_io_falls_back_to_buffered(tmp_path, monkeypatch):
    import errno
    import os

    real_open, real_preadv = os.open, os.preadv

    def refusing_open(path, flags, *args):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refusing_open)
    dev = FileDevice(tmp_path / "a.img", size=1 << 20)
    assert not dev.direct
    run(dev.close())
    monkeypatch.setattr(os, "open", real_open)

    def refusing_preadv(fd, buffers, offset):
        raise OSError(errno.EINVAL, "Invalid argument")

    dev = FileDevice(tmp_path / "b.img", size=1 << 20)
    if not dev.direct:
        run(dev.close())
        pytest.skip("this filesystem refuses O_DIRECT at open already")
    monkeypatch.setattr(os, "preadv", refusing_preadv)

    async def body():
        data = (await dev.read(0, 1)).data
        await dev.close()
        return data

    assert run(body()) == bytes(512) and not dev.direct
    monkeypatch.setattr(os, "preadv", real_preadv)


def test_an_io_error_other_than_einval_is_a_device_error_naming_the_io(tmp_path, monkeypatch):
    import errno
    import os

    from harness.workload.errors import DeviceError

    dev = FileDevice(tmp_path / "c.img", size=1 << 20)
    direct = dev.direct

    def failing(*args):
        raise OSError(errno.EIO, "Input/output error")

    for name in ("pwrite", "pwritev", "pread", "preadv"):
        monkeypatch.setattr(os, name, failing)
    with pytest.raises(DeviceError, match=r"^write of 512 bytes at byte 1024 on .*c\.img "
                                          r"failed: Input/output error$"):
        run(dev.write(2, bytes(512)))
    with pytest.raises(DeviceError, match=r"^read of 1024 bytes at byte 0 on .*c\.img failed"):
        run(dev.read(0, 2))
    assert dev.direct == direct  # no fall-back to buffered I/O on EIO
    monkeypatch.undo()
    run(dev.close())
