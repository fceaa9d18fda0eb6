"""``FaultyStore`` in process: free when idle, exact ranges when armed, the LU's sense."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from harness.target import lu_binding
from harness.target.blockstore import BlockStoreError, ImageFile
from harness.target.device import LogicalUnit, ScsiTask
from harness.target.disk_faults import DiskFaultError, DiskFaultSpec, FaultyStore
from harness.target.identity import LuIdentity
from harness.target.nexus import ItNexus

BLOCK = 512


def store(tmp_path: Path, blocks: int = 1024) -> FaultyStore:
    return FaultyStore(ImageFile.open(tmp_path / "lun.img", blocks * BLOCK), where="t/0")


def fault(kind: str, **kw: float) -> DiskFaultSpec:
    return DiskFaultSpec.parse({"id": f"f-{kind}", "target": "t", "lun": 0, "kind": kind, **kw})


def test_idle_store_hands_out_the_images_own_methods(tmp_path: Path) -> None:
    s = store(tmp_path)
    image = s.inner
    assert s.read == image.read and s.write == image.write and s.flush == image.flush
    s.add(fault("eio", lba=0, count=1))
    assert s.armed and s.read != image.read
    s.remove("f-eio")
    assert not s.armed and s.read == image.read
    s.close()


def test_lu_on_a_faulty_store_still_runs_eagerly(tmp_path: Path) -> None:
    s = store(tmp_path)
    unit = LogicalUnit(s, LuIdentity(serial="S1", naa="6001405" + "0" * 25))
    assert lu_binding.runs_eagerly(unit)
    unit.close()
    assert s.inner.closed


def test_each_kind_breaks_exactly_what_it_names(tmp_path: Path) -> None:
    async def scenario() -> None:
        s = store(tmp_path)
        await s.write(0, b"\x01" * BLOCK * 4)
        s.add(fault("eio", lba=2, count=1))
        assert await s.read(0, 2) == b"\x01" * BLOCK * 2
        with pytest.raises(BlockStoreError) as err:
            await s.read(1, 2)
        assert (err.value.errno, err.value.writing) == (errno.EIO, False)
        with pytest.raises(BlockStoreError) as err:
            await s.write_repeated(2, b"\x02" * BLOCK, 1)
        assert (err.value.errno, err.value.writing) == (errno.EIO, True)
        s.remove("f-eio")
        s.add(fault("nospace"))
        await s.write(0, b"\x03" * BLOCK)          # allocated already
        await s.unmap(0, 4)                         # freeing space is allowed
        with pytest.raises(BlockStoreError) as err:
            await s.write(512, b"\x04" * BLOCK)     # a hole
        assert err.value.errno == errno.ENOSPC
        s.close()

    asyncio.run(scenario())


def test_the_lu_turns_an_injected_eio_into_medium_error_sense(tmp_path: Path) -> None:
    from harness.scsi.cdb import Read
    from harness.scsi.sense import Asc, SenseData, SenseKey

    async def scenario() -> SenseData:
        s = store(tmp_path)
        unit = LogicalUnit(s, LuIdentity(serial="S1", naa="6001405" + "0" * 25))
        s.add(fault("eio", lba=5, count=1))
        nexus = ItNexus(initiator_port="iqn.x,i,0x1", target_port="iqn.t,t,0x1",
                        relative_target_port_id=1, target_port_group=1)
        task = ScsiTask(nexus, 0, Read(lba=4, blocks=2, size=10).encode(), b"", 2 * BLOCK)
        await unit.execute(task)  # the first command reports the power-on unit attention
        result = await unit.execute(task)
        unit.close()
        assert result.sense is not None
        assert result.sense.key == SenseKey.MEDIUM_ERROR
        return result.sense

    assert asyncio.run(scenario()).is_(Asc.UNRECOVERED_READ_ERROR)


def test_a_range_beyond_the_lun_is_refused(tmp_path: Path) -> None:
    s = store(tmp_path, blocks=16)
    with pytest.raises(DiskFaultError, match="beyond the 16 blocks"):
        s.add(fault("eio", lba=10, count=7))
    assert not s.armed
    s.close()


def test_removing_a_slow_fault_releases_the_io_it_holds(tmp_path: Path) -> None:
    """A hung disk that recovers finishes its queued I/O (a node holding it can then stop)."""
    async def scenario() -> None:
        s = store(tmp_path)
        s.add(fault("slow", delay_ms=600_000))
        write = asyncio.create_task(s.write(0, b"\x03" * BLOCK))
        await asyncio.sleep(0.05)
        assert not write.done()  # held by the fault
        s.remove("f-slow")
        await asyncio.wait_for(write, 30)  # released, not the 600 s
        assert await s.read(0, 1) == b"\x03" * BLOCK
        s.close()
    asyncio.run(scenario())
