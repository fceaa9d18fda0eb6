"""HA logical units: one reservation state and ALUA that follows the replicas.

Two ``HaLogicalUnit``s of one device, each on its own replica, take SCSI
commands from initiator nexuses attached to either node, as MPIO paths do.
"""

from __future__ import annotations

from harness.scsi import cdb as c
from harness.scsi.alua import AccessState
from harness.scsi.reservations import PrInAction, PrOutAction, PrOutParameters, PrType, ReadKeysData
from harness.scsi.sense import Asc, SenseKey
from harness.scsi.status import ScsiStatus
from harness.target.device import ScsiTask
from harness.target.nexus import ItNexus
from tests.support.ha_pair import BLOCK, HaPair, LinkMode, run, wait_for

WE_RO = PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY


def nexus(host: str, node: str) -> ItNexus:
    """Initiator ``host`` logged in to the HA1 target on ``node`` (group 1 = a, 2 = b)."""
    port = 1 if node == "a" else 2
    target = "iqn.2026-11.lab.splitbrain:ha1" + ("" if node == "a" else "partner")
    return ItNexus(f"iqn.1991-05.com.microsoft:{host},i,0x400001370000",
                   f"{target},t,0x{port:04x}", port, port)


async def run_cdb(pair: HaPair, node: str, host: str, command, data: bytes = b""):
    task = ScsiTask(nexus(host, node), 0, command.encode(), data, 8192)
    result = await pair.units[node].execute(task)
    if result.status == ScsiStatus.CHECK_CONDITION and result.sense is not None \
            and result.sense.key == SenseKey.UNIT_ATTENTION:
        result = await pair.units[node].execute(task)  # the first command takes the UA
    return result


async def pr_out(pair, node, host, action, *, key=0, sa_key=0, pr_type=0):
    params = PrOutParameters(key=key, service_action_key=sa_key).encode()
    cmd = c.PersistentReserveOut(action=action, pr_type=pr_type, parameter_list_length=len(params))
    return await run_cdb(pair, node, host, cmd, params)


async def keys(pair, node, host) -> tuple[int, ...]:
    result = await run_cdb(pair, node, host, c.PersistentReserveIn(action=PrInAction.READ_KEYS))
    return ReadKeysData.decode(result.data_in).keys


def test_reservation_made_through_one_node_is_enforced_through_the_other(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, units=True) as pair:
            await pair.in_sync()
            # hv1 registers through a, hv2 through b; hv1 reserves write-exclusive-RO
            assert (await pr_out(pair, "a", "hv1", PrOutAction.REGISTER, sa_key=0x1111)).status == 0
            assert (await pr_out(pair, "b", "hv2", PrOutAction.REGISTER, sa_key=0x2222)).status == 0
            assert sorted(await keys(pair, "b", "hv1")) == [0x1111, 0x2222]
            assert (await pr_out(pair, "a", "hv1", PrOutAction.RESERVE, key=0x1111,
                                 pr_type=WE_RO)).status == 0
            write = c.Write(lba=0, blocks=1, size=16)
            # an unregistered initiator is fenced through the *other* node too
            fenced = await run_cdb(pair, "b", "intruder", write, bytes(BLOCK))
            assert fenced.status == ScsiStatus.RESERVATION_CONFLICT
            allowed = await run_cdb(pair, "b", "hv2", write, b"\x42" * BLOCK)
            assert allowed.status == ScsiStatus.GOOD
            # PREEMPT through b removes the key registered through a, on both nodes
            assert (await pr_out(pair, "b", "hv2", PrOutAction.PREEMPT, key=0x2222,
                                 sa_key=0x1111, pr_type=WE_RO)).status == 0
            assert await keys(pair, "a", "hv2") == (0x2222,)
            hv1_write = await run_cdb(pair, "a", "hv1", write, bytes(BLOCK))
            assert hv1_write.status == ScsiStatus.RESERVATION_CONFLICT
    run(scenario())


def test_preempted_registrant_gets_a_unit_attention_on_its_own_node(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, units=True) as pair:
            await pair.in_sync()
            await pr_out(pair, "a", "hv1", PrOutAction.REGISTER, sa_key=0xA)
            await pr_out(pair, "b", "hv2", PrOutAction.REGISTER, sa_key=0xB)
            await pr_out(pair, "b", "hv2", PrOutAction.PREEMPT, key=0xB, sa_key=0xA,
                         pr_type=WE_RO)
            task = ScsiTask(nexus("hv1", "a"), 0, c.TestUnitReady().encode(), b"", 0)
            result = await pair.units["a"].execute(task)
            assert result.sense is not None
            assert result.sense.key == SenseKey.UNIT_ATTENTION
            assert Asc.REGISTRATIONS_PREEMPTED.matches(result.sense.asc, result.sense.ascq)
    run(scenario())


def test_alua_follows_replica_states(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, units=True) as pair:
            await pair.in_sync()
            a, b = pair.units["a"], pair.units["b"]
            assert a.alua.state_of(2) is AccessState.ACTIVE_OPTIMIZED
            pair.fault(["sync"], LinkMode.CUT)
            await wait_for(lambda: b.alua.state_of(2) is AccessState.UNAVAILABLE)
            await wait_for(lambda: a.alua.state_of(2) is AccessState.UNAVAILABLE)
            assert a.alua.state_of(1) is AccessState.ACTIVE_OPTIMIZED
            read = c.Read(lba=0, blocks=1, size=16)
            refused = await run_cdb(pair, "b", "hv2", read)
            assert refused.sense is not None and refused.sense.key == SenseKey.NOT_READY
            assert Asc.NOT_READY_TARGET_PORT_UNAVAILABLE.matches(refused.sense.asc,
                                                                 refused.sense.ascq)
            assert (await run_cdb(pair, "a", "hv1", read)).status == ScsiStatus.GOOD
            pair.fault(["sync"], LinkMode.PASS)
            await pair.in_sync()
            await wait_for(lambda: b.alua.state_of(2) is AccessState.ACTIVE_OPTIMIZED)
    run(scenario())


def test_returning_replica_receives_reservations_made_while_it_was_away(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, units=True) as pair:
            await pair.in_sync()
            pair.fault(["sync"], LinkMode.CUT)
            await wait_for(lambda: pair.a.meta.alone)
            await pr_out(pair, "a", "hv1", PrOutAction.REGISTER, sa_key=0x77)
            pair.fault(["sync"], LinkMode.PASS)
            await pair.in_sync()
            assert await keys(pair, "b", "hv2") == (0x77,)
    run(scenario())
