"""Each HA defect mode breaks the promise it names, observably.

The defect zoo (suites against defective nodes) relies on these modes; these
tests prove each one really manifests, so a suite that passes against one has
missed a real failure.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from harness.target.config import ConfigError, parse_config
from harness.target.defects import SLOW_FAILOVER_S, Defect, UnknownDefect, parse_defects
from harness.target.ha.replica import ReplicaState
from harness.target.lu_binding import open_logical_unit
from tests.support.ha_pair import BLOCK, HaPair, LinkMode, run, wait_for

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

S = ReplicaState.SYNCHRONIZED


def block(seed: int) -> bytes:
    return random.Random(seed).randbytes(BLOCK)


def with_defect(defect: Defect) -> dict:
    return {"defects": frozenset({defect})}


def test_ack_before_mirror_acknowledges_what_the_partner_never_got(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, **with_defect(Defect.ACK_BEFORE_MIRROR)) as pair:
            await pair.in_sync()
            pair.fault(["sync"], LinkMode.BLACKHOLE)
            await pair.a.write(9, block(9))  # returns although the partner cannot have it
            assert not pair.a.meta.alone  # no failover happened: it simply did not wait
            assert await pair.stores["b"].read(9, 1) != block(9)
    run(scenario())


def test_no_fencing_lets_both_replicas_serve_after_a_sync_cut(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, **with_defect(Defect.NO_FENCING)) as pair:
            await pair.in_sync()
            pair.fault(["sync"], LinkMode.CUT)  # heartbeat alive: b should stop, but does not
            await wait_for(lambda: pair.a.meta.alone and pair.b.meta.alone)
            await pair.b.write(4, block(4))
            assert pair.b.state is S
    run(scenario())


def test_resync_skipping_dirty_regions_leaves_replicas_different(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, **with_defect(Defect.RESYNC_SKIPS_DIRTY)) as pair:
            await pair.in_sync()
            pair.fault(["sync"], LinkMode.CUT)
            await wait_for(lambda: pair.a.meta.alone)
            await pair.a.write(2, block(2))
            pair.fault(["sync"], LinkMode.PASS)
            await pair.in_sync()  # claims to be synchronized ...
            assert not pair.images_equal()  # ... but is not
    run(scenario())


def test_slow_failover_holds_io_far_longer_than_the_fence(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, **with_defect(Defect.SLOW_FAILOVER)) as pair:
            await pair.in_sync()
            pair.fault(["sync"], LinkMode.BLACKHOLE)
            started = time.monotonic()
            await pair.a.write(1, block(1))  # waits for the (slow) decision
            assert time.monotonic() - started >= SLOW_FAILOVER_S
    run(scenario())


def test_stale_reservations_are_not_seen_through_the_partner(tmp_path):
    from harness.scsi import cdb as c
    from harness.scsi.reservations import PrInAction, PrOutAction, PrOutParameters, ReadKeysData
    from harness.target.device import ScsiTask
    from harness.target.nexus import ItNexus

    def nexus(node: str) -> ItNexus:
        group = 1 if node == "a" else 2
        return ItNexus("iqn.1991-05.com.microsoft:hv1,i,0x1",
                       f"iqn.2026-11.lab.splitbrain:{node},t,0x1", group, group)

    async def execute(pair, node, command, data=b""):
        task = ScsiTask(nexus(node), 0, command.encode(), data, 8192)
        result = await pair.units[node].execute(task)
        if result.sense is not None:  # the first command of a nexus takes its UA
            result = await pair.units[node].execute(task)
        return result

    async def scenario():
        async with HaPair(tmp_path, units=True,
                          **with_defect(Defect.STALE_RESERVATIONS)) as pair:
            await pair.in_sync()
            params = PrOutParameters(service_action_key=0x51).encode()
            register = c.PersistentReserveOut(action=PrOutAction.REGISTER,
                                              parameter_list_length=len(params))
            assert (await execute(pair, "a", register, params)).status == 0
            read_keys = c.PersistentReserveIn(action=PrInAction.READ_KEYS)
            assert ReadKeysData.decode((await execute(pair, "a", read_keys)).data_in).keys
            assert not ReadKeysData.decode((await execute(pair, "b", read_keys)).data_in).keys
    run(scenario())


def test_unknown_defect_names_are_refused_with_the_known_ones():
    with pytest.raises(UnknownDefect, match=r"known: .*ack-before-mirror"):
        parse_defects(["ack-before-mirror", "gremlins"])
    with pytest.raises(ConfigError, match=r"node\.defects: unknown defect mode 'gremlins'"):
        parse_config({"node": {"name": "n", "data_dir": "/tmp/x", "defects": ["gremlins"]},
                      "portal": [{"address": "127.0.0.1"}]}, env={})


def test_identity_per_node_gives_each_replica_its_own_serial(tmp_path: Path):
    identities = []
    for name, partner, prio in (("store1", "store2", 1), ("store2", "store1", 2)):
        iqn = f"iqn.2026-11.lab.splitbrain:{name}.ha1"
        ha = {"alias": "HA1", "target": iqn, "priority": prio, "partner": partner,
              "partner_priority": 3 - prio}
        ha["sync_listen" if prio == 1 else "partner_sync"] = "127.0.0.1:1"
        config = parse_config({
            "node": {"name": name, "data_dir": str(tmp_path / name),
                     "defects": ["identity-per-node"]},
            "portal": [{"address": "127.0.0.1"}],
            "target": [{"iqn": iqn, "lun": [{"lun": 0, "image": "ha1.img", "size": "1MiB",
                                            "serial": "HA1-0001", "naa": "3" + "1" * 15}]}],
            "ha_device": [ha]}, env={})
        (tmp_path / name).mkdir()
        unit = open_logical_unit(config.targets[0].luns[0], config.targets[0], config,
                                 luns=lambda n: [0], abort_tasks=lambda n: None)
        identities.append((unit.identity.serial, unit.identity.naa))
        unit.close()
    assert identities[0] != identities[1]
    assert identities[0][0].startswith("HA1-0001")


def test_reads_from_unsynchronized_serve_stale_data(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, **with_defect(Defect.READS_FROM_UNSYNCHRONIZED)) as pair:
            await pair.in_sync()
            pair.fault(["sync"], LinkMode.CUT)  # heartbeat alive: b stops serving ...
            await wait_for(lambda: pair.b.state is ReplicaState.NOT_SYNCHRONIZED
                           and pair.a.meta.alone)
            await pair.a.write(3, block(3))
            assert await pair.b.read(3, 1) != block(3)  # ... yet answers reads, stale
    run(scenario())


def test_resync_in_the_wrong_direction_loses_the_survivors_writes(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, **with_defect(Defect.RESYNC_WRONG_DIRECTION)) as pair:
            await pair.in_sync()
            pair.fault(["sync"], LinkMode.CUT)
            await wait_for(lambda: pair.a.meta.alone)
            await pair.a.write(6, block(6))  # acknowledged by the survivor
            pair.fault(["sync"], LinkMode.PASS)
            await pair.in_sync()
            assert await pair.a.read(6, 1) != block(6)  # the stale copy overwrote it
    run(scenario())


def test_ack_before_mirror_under_load_acknowledges_only_when_busy(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, **with_defect(Defect.ACK_BEFORE_MIRROR_UNDER_LOAD)) as pair:
            await pair.in_sync()
            await pair.a.write(1, block(1))  # one at a time: the partner has it on return
            assert await pair.stores["b"].read(1, 1) == block(1)
            inner = pair.b._apply
            release = asyncio.Event()

            async def slow(*args, **kwargs):  # the partner lags behind
                await release.wait()
                await inner(*args, **kwargs)
            pair.b._apply = slow
            writes = [asyncio.ensure_future(pair.a.write(100 + i, block(100 + i)))
                      for i in range(16)]
            done, _ = await asyncio.wait(writes, timeout=0.5)
            acked = [i for i, w in enumerate(writes) if w in done]
            assert acked  # some returned although the partner applied none of them
            on_b = [await pair.stores["b"].read(100 + i, 1) for i in acked]
            assert all(got != block(100 + i) for i, got in zip(acked, on_b, strict=True))
            release.set()
            await asyncio.gather(*writes)
    run(scenario())


def test_overlapping_write_lost_lets_overlapping_writes_diverge(tmp_path):
    async def scenario():
        async with HaPair(tmp_path, **with_defect(Defect.OVERLAPPING_WRITE_LOST)) as pair:
            await pair.in_sync()
            await asyncio.gather(pair.a.write(5, block(50)), pair.b.write(5, block(51)))
            assert await pair.stores["a"].read(5, 1) != await pair.stores["b"].read(5, 1)
    run(scenario())


def test_overlapping_writes_through_both_nodes_agree_without_the_defect(tmp_path):
    async def scenario():
        async with HaPair(tmp_path) as pair:
            await pair.in_sync()
            await asyncio.gather(pair.a.write(5, block(50)), pair.b.write(5, block(51)))
            assert await pair.stores["a"].read(5, 1) == await pair.stores["b"].read(5, 1)
    run(scenario())
