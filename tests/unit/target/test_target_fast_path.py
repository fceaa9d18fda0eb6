"""The lean READ/WRITE(10/16) path answers exactly like the general path, for any CDB."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.scsi.alua import AccessState
from harness.scsi.reservations import PrOutAction, PrOutParameters, PrType
from harness.target import device as device_module
from harness.target.alua import AluaGroups, TargetPortGroup
from harness.target.blockstore import ImageFile
from harness.target.device import LogicalUnit, ScsiTask, TaskResult
from harness.target.identity import BlockLimitsConfig, LuIdentity
from harness.target.nexus import ItNexus

BS, BLOCKS = 512, 256
A = ItNexus("iqn.i:a,i,0x400000000001", "iqn.t,t,0x0001", 1, 1)
B = ItNexus("iqn.i:b,i,0x400000000001", "iqn.t,t,0x0002", 2, 2)

FLAGS = st.one_of(st.sampled_from([0x00, 0x08, 0x10, 0x18, 0x02]), st.integers(0, 255))
cdbs = st.one_of(
    st.builds(lambda op, flags, lba, group, n, ctl: bytes([op, flags]) + lba.to_bytes(4, "big")
              + bytes([group]) + n.to_bytes(2, "big") + bytes([ctl]),
              st.sampled_from([0x28, 0x2A]), FLAGS, st.integers(0, BLOCKS + 2),
              st.integers(0, 255), st.integers(0, 20), st.sampled_from([0, 4])),
    st.builds(lambda op, flags, lba, n, group, ctl: bytes([op, flags]) + lba.to_bytes(8, "big")
              + n.to_bytes(4, "big") + bytes([group, ctl]),
              st.sampled_from([0x88, 0x8A]), FLAGS, st.integers(0, BLOCKS + 2),
              st.integers(0, 20), st.integers(0, 255), st.sampled_from([0, 4])),
)
setups = st.sampled_from(["none", "we_ro_by_a", "ea_by_b", "standby_b", "read_only"])


async def _lu(path: Path, setup: str, fast: bool) -> LogicalUnit:
    alua = AluaGroups({1: TargetPortGroup(1, relative_ports={1}),
                       2: TargetPortGroup(2, relative_ports={2})})
    lu = LogicalUnit(ImageFile.open(path, BLOCKS * BS, write_through=False),
                     LuIdentity.derive("fast"), alua=alua, read_only=setup == "read_only",
                     limits=BlockLimitsConfig(max_transfer_blocks=16))
    if not fast:
        lu._fast_read_write = _never  # type: ignore[method-assign]
    for n in (A, B):
        await lu.execute(ScsiTask(n, 0, bytes(6)))
    if setup in ("we_ro_by_a", "ea_by_b"):
        holder = A if setup == "we_ro_by_a" else B
        pr_type = PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY if holder is A else \
            PrType.EXCLUSIVE_ACCESS
        lu.reservations.persistent_reserve_out(holder, PrOutAction.REGISTER, 0, 0,
                                               PrOutParameters(0, 9))
        lu.reservations.persistent_reserve_out(holder, PrOutAction.RESERVE, pr_type, 0,
                                               PrOutParameters(9))
    if setup == "standby_b":
        lu.alua.set_state(2, AccessState.STANDBY)
    return lu


async def _never(*args: object) -> None:
    return None


def _view(r: TaskResult) -> tuple:
    return (r.status, r.data_in, r.sense_bytes)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup=setups, cdb=cdbs, nexus=st.sampled_from([A, B]),
       data_blocks=st.integers(0, 20), fill=st.integers(0, 255))
def test_fast_path_matches_general_path(setup: str, cdb: bytes, nexus: ItNexus,
                                        data_blocks: int, fill: int) -> None:
    async def scenario() -> tuple[tuple, tuple, bytes, bytes]:
        with tempfile.TemporaryDirectory() as tmp:
            fast = await _lu(Path(tmp) / "fast.img", setup, True)
            slow = await _lu(Path(tmp) / "slow.img", setup, False)
            try:
                data = bytes([fill]) * (data_blocks * BS)
                got = await fast.execute(ScsiTask(nexus, 0, cdb, data))
                want = await slow.execute(ScsiTask(nexus, 0, cdb, data))
                return (_view(got), _view(want), await fast.store.read(0, BLOCKS),
                        await slow.store.read(0, BLOCKS))
            finally:
                fast.close()
                slow.close()

    got, want, fast_medium, slow_medium = asyncio.run(scenario())
    assert got == want
    assert fast_medium == slow_medium


async def test_plain_reads_and_writes_take_the_fast_path(tmp_path: Path) -> None:
    lu = await _lu(tmp_path / "x.img", "none", True)
    taken: list[bool] = []
    fast = lu._fast_read_write

    async def spy(*args: object) -> TaskResult | None:
        result = await fast(*args)  # type: ignore[arg-type]
        taken.append(result is not None)
        return result

    lu._fast_read_write = spy  # type: ignore[method-assign]
    try:
        write = bytes.fromhex("2a 08 00000010 00 0002 00")
        assert (await lu.execute(ScsiTask(A, 0, write, b"w" * 2 * BS))).status == 0
        read = bytes.fromhex("88 00 0000000000000010 00000002 00 00")
        assert (await lu.execute(ScsiTask(A, 0, read))).data_in == b"w" * 2 * BS
        assert taken == [True, True] and device_module._FAST_RW
    finally:
        lu.close()
