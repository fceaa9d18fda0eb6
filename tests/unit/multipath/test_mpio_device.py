"""MultipathDevice over an in-memory SAN: grouping, failover, recovery, hold time, PR."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace

import pytest
from fakesan import FakeDisk, FakeSan, block, check_condition, spec
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from harness.initiator.mpio.device import MultipathDevice
from harness.initiator.mpio.errors import (
    AllPathsDown,
    DeviceClosed,
    MultipathCommandFailed,
    MultipathConfigError,
    PathIdentityMismatch,
)
from harness.initiator.mpio.status import AluaState, PathState
from harness.initiator.mpio.timers import MpioTimers
from harness.scsi.alua import AccessState
from harness.scsi.reservations import PrType
from harness.scsi.sense import Asc, SenseData, SenseKey

FAST = MpioTimers(
    noop_out_interval_s=0.0,
    link_down_time_s=0.05,
    replacement_timeout_s=None,
    retry_interval_s=0.01,
    delay_between_reconnect_s=0.05,
    pdo_remove_period_s=0.5,
    disk_timeout_s=0.5,
    login_timeout_s=1.0,
)
A, B = "127.0.0.1:3261", "127.0.0.1:3262"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def eventually(check, timeout=5.0):
    """Poll ``check`` (raising AssertionError until true) with a deadline."""
    async for attempt in AsyncRetrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.01),
                                       retry=retry_if_exception_type(AssertionError),
                                       reraise=True):
        with attempt:
            check()


def device(san, *, policy="round-robin", timers=FAST, specs=None, **kw):
    return MultipathDevice(specs or [spec(3261), spec(3262)], connector=san.connect,
                           policy=policy, timers=timers, **kw)


def test_open_groups_paths_reads_capacity_and_gives_each_path_its_own_isid():
    async def body():
        san = FakeSan(FakeDisk(num_blocks=4096))
        async with device(san) as dev:
            assert (dev.block_size, dev.num_blocks) == (512, 4096)
            assert dev.identity == ("naa.6001405aabbccdd00112233445566778",)
            assert [p.state for p in dev.paths] == [PathState.ACTIVE, PathState.ACTIVE]
            assert [e.reason for e in dev.events] == ["logged in", "logged in"]
            isids = {ln.spec.isid for ln in san.links}
            assert len(isids) == 2 and all(i >> 40 == 0x80 for i in isids)
        assert [p.state for p in dev.paths] == [PathState.REMOVED] * 2
        assert all(ln.closed for ln in san.links)
    run(body())


def test_round_robin_spreads_io_over_every_path_and_counts_it():
    async def body():
        san = FakeSan()
        async with device(san) as dev:
            served = Counter()
            for lba in range(10):
                served[(await dev.write(lba, block(lba))).path] += 1
            for lba in range(10):
                c = await dev.read(lba, 1)
                assert c.data == block(lba)
                served[c.path] += 1
            assert served == Counter({dev.paths[0].name: 10, dev.paths[1].name: 10})
            stats = dev.path(dev.paths[0].name).stats
            assert (stats.writes, stats.reads, stats.bytes_written) == (5, 5, 5 * 512)
            assert stats.outstanding == 0 and stats.latency_max_ns > 0
    run(body())


def test_a_killed_path_moves_io_to_the_survivor_and_comes_back_after_recovery():
    async def body():
        san = FakeSan()
        async with device(san) as dev:
            a, b = (p.name for p in dev.paths)
            await dev.write(0, block(1))
            san.kill(A)
            served = [(await dev.write(lba, block(lba))).path for lba in range(1, 9)]
            assert set(served) == {b}
            assert dev.path(a).state in (PathState.FAILED, PathState.RECONNECTING)
            assert "connection" in dev.path(a).last_error
            san.down.discard(A)
            await eventually(lambda: _assert_state(dev, a, PathState.ACTIVE))
            served = [(await dev.read(lba, 1)).path for lba in range(1, 9)]
            assert set(served) == {a, b}
            states = [e.new for e in dev.events.for_path(a)]
            assert states[:3] == [PathState.ACTIVE, PathState.FAILED, PathState.RECONNECTING]
            assert states[-1] == PathState.ACTIVE
            assert dev.events.for_path(a)[-1].reason.startswith("reconnected after")
    run(body())


def _assert_state(dev, name, state):
    assert dev.path(name).state == state


def _assert_all_down(dev):
    assert not any(p.state.healthy for p in dev.paths)


def _assert_reconnected(dev, name):
    assert dev.path(name).state == PathState.ACTIVE
    assert any(e.reason.startswith("reconnected") for e in dev.events.for_path(name))


def test_io_in_flight_on_a_dying_path_completes_elsewhere_without_error():
    async def body():
        san = FakeSan()
        async with device(san) as dev:
            san.hung.add(A)  # commands on A never answer ...
            writes = [asyncio.ensure_future(dev.write(lba, block(lba))) for lba in range(6)]
            await asyncio.sleep(0.01)
            san.kill(A)  # ... until the connection is reset under them
            done = await asyncio.gather(*writes)
            assert {c.path for c in done} == {dev.paths[1].name}
            assert dev.path(dev.paths[0].name).stats.redriven_away >= 1
            for lba in range(6):
                assert (await dev.read(lba, 1)).data == block(lba)
    run(body())


def test_a_command_that_times_out_fails_its_path_and_is_redriven():
    async def body():
        san = FakeSan()
        async with device(san) as dev:
            a, b = (p.name for p in dev.paths)
            san.hung.add(A)
            served = {(await dev.write(lba, block(lba))).path for lba in range(4)}
            assert served == {b}
            assert "timed out" in next(e for e in dev.events.for_path(a)
                                   if e.new == PathState.FAILED).reason
    run(body())


def test_all_paths_down_past_the_hold_time_fails_the_io_with_all_paths_down():
    async def body():
        san = FakeSan()
        async with device(san) as dev:
            san.kill(A)
            san.kill(B)
            with pytest.raises(AllPathsDown) as err:
                await dev.write(0, block(1))
            assert err.value.held_s >= FAST.pdo_remove_period_s
            assert set(err.value.last_errors) == {p.name for p in dev.paths}
            assert "pdo_remove_period_s" in str(err.value)
    run(body())


def test_a_path_back_within_the_hold_time_completes_the_queued_io():
    async def body():
        san = FakeSan()
        async with device(san) as dev:
            san.kill(A)
            san.kill(B)
            pending = asyncio.ensure_future(dev.write(3, block(3)))
            await asyncio.sleep(0.1)
            assert not pending.done()
            san.down.discard(B)
            completion = await pending
            assert completion.path == dev.paths[1].name
            assert san.disk.blocks[3] == block(3)
    run(body())


def test_paths_with_different_identities_are_refused_naming_both():
    async def body():
        san = FakeSan()
        san.disks[B] = FakeDisk(naa="6001405ffffffffff000000000000001")
        dev = device(san)
        with pytest.raises(PathIdentityMismatch) as err:
            await dev.open()
        message = str(err.value)
        assert A in message and B in message
        assert "6001405aabbccdd00112233445566778" in message
        assert "6001405ffffffffff000000000000001" in message
        assert all(ln.lost.done() for ln in san.links)
    run(body())


def test_a_path_that_comes_back_as_another_disk_is_removed_not_used():
    async def body():
        san = FakeSan()
        async with device(san) as dev:
            a = dev.paths[0].name
            san.kill(A, stay_down=False)
            san.disks[A] = FakeDisk(naa="6001405ffffffffff000000000000001")
            await eventually(lambda: _assert_state(dev, a, PathState.REMOVED))
            assert isinstance(dev.refused[a], PathIdentityMismatch)
            assert {(await dev.read(0, 1)).path for _ in range(4)} == {dev.paths[1].name}
    run(body())


def test_a_medium_error_is_the_callers_answer_and_is_not_redriven():
    async def body():
        san = FakeSan()
        async with device(san) as dev:
            san.script(A, check_condition(SenseData.of(SenseKey.MEDIUM_ERROR,
                                                       Asc.UNRECOVERED_READ_ERROR)))
            with pytest.raises(MultipathCommandFailed, match="UNRECOVERED READ ERROR"):
                await dev.read(0, 1)
            assert dev.path(dev.paths[1].name).stats.reads == 0
            assert dev.paths[0].state == PathState.ACTIVE
    run(body())


def test_a_reservation_conflict_is_not_redriven():
    async def body():
        san = FakeSan()
        san.disk.reservation = (0xBAD, PrType.WRITE_EXCLUSIVE)
        async with device(san) as dev:
            with pytest.raises(MultipathCommandFailed, match="reservation conflict"):
                await dev.write(0, block(1))
            assert sum(p.stats.errors for p in dev.paths) == 1
    run(body())


def test_alua_standby_answer_reroutes_to_the_other_path_and_marks_the_port():
    async def body():
        san = FakeSan()
        async with device(san) as dev:
            san.script(A, check_condition(SenseData.of(SenseKey.NOT_READY,
                                                       Asc.NOT_READY_TARGET_PORT_STANDBY)))
            c = await dev.write(0, block(7))
            assert c.path == dev.paths[1].name
            assert dev.paths[0].alua == AluaState.STANDBY
            # a standby port is only used when nothing better is left
            assert {(await dev.read(0, 1)).path for _ in range(4)} == {dev.paths[1].name}
    run(body())


def test_a_unit_attention_is_retried_and_the_caller_sees_success():
    async def body():
        san = FakeSan()
        async with device(san) as dev:
            san.script(A, check_condition(SenseData.of(SenseKey.UNIT_ATTENTION,
                                                       Asc.POWER_ON_RESET)))
            await dev.write(0, block(2))
            assert san.disk.blocks[0] == block(2)
    run(body())


def test_retries_are_bounded_by_retry_count():
    async def body():
        san = FakeSan()
        async with device(san, specs=[spec(3261)]) as dev:
            busy = check_condition(SenseData.of(SenseKey.ABORTED_COMMAND, Asc.NO_ADDITIONAL_SENSE))
            san.script(A, *[busy] * (FAST.retry_count + 1))
            with pytest.raises(MultipathCommandFailed, match="after 3 retries"):
                await dev.write(0, block(2))
    run(body())


def test_round_robin_uses_only_optimized_ports_while_there_are_any():
    async def body():
        san = FakeSan(FakeDisk(alua=True, groups={1: AccessState.ACTIVE_OPTIMIZED,
                                                  2: AccessState.ACTIVE_NON_OPTIMIZED}))
        san.group_of = {A: 1, B: 2}
        async with device(san) as dev:
            assert [p.alua for p in dev.paths] == [AluaState.ACTIVE_OPTIMIZED,
                                                   AluaState.ACTIVE_NON_OPTIMIZED]
            assert {(await dev.read(0, 1)).path for _ in range(6)} == {dev.paths[0].name}
            san.kill(A)
            assert (await dev.read(0, 1)).path == dev.paths[1].name
    run(body())


def test_failover_only_stays_on_the_preferred_path_and_fails_back_to_it():
    async def body():
        san = FakeSan()
        specs = [spec(3261), spec(3262, preferred=True)]
        async with device(san, policy="FOO", specs=specs) as dev:
            a, b = (p.name for p in dev.paths)
            assert {(await dev.read(0, 1)).path for _ in range(5)} == {b}
            san.kill(B)
            assert {(await dev.read(0, 1)).path for _ in range(5)} == {a}
            san.down.discard(B)
            await eventually(lambda: _assert_state(dev, b, PathState.ACTIVE))
            assert (await dev.read(0, 1)).path == b
    run(body())


def test_the_queue_depth_bounds_commands_in_flight():
    async def body():
        san = FakeSan()
        async with device(san, queue_depth=3) as dev:
            peak = 0
            original = dev._run_on

            async def counting(*args):
                nonlocal peak
                peak = max(peak, sum(p.stats.outstanding for p in dev.paths) + 1)
                return await original(*args)

            dev._run_on = counting
            await asyncio.gather(*(dev.write(lba, block(lba)) for lba in range(20)))
            assert peak == 3
    run(body())


def test_the_path_checker_fails_a_silent_path_with_no_io_running():
    async def body():
        san = FakeSan()
        timers = MpioTimers.from_mapping({"noop_out_interval_s": 0.02,
                                          "noop_out_timeout_s": 0.05}, base=FAST)
        async with device(san, timers=timers) as dev:
            san.hung.add(A)
            await eventually(lambda: _assert_state(dev, dev.paths[0].name, PathState.FAILED)
                             if dev.paths[0].state != PathState.RECONNECTING else None)
            assert any("path checker" in e.reason for e in dev.events.for_path(dev.paths[0].name))
    run(body())


def test_pr_register_registers_the_key_on_every_nexus_and_again_after_recovery():
    async def body():
        san = FakeSan()
        async with device(san) as dev:
            registered = await dev.pr.register(0xABC)
            assert sorted(registered) == sorted(p.name for p in dev.paths)
            assert sorted(san.disk.registrations.values()) == [0xABC, 0xABC]
            assert (await dev.pr.read_keys()).keys == (0xABC, 0xABC)
            a = dev.paths[0].name
            old = [n for n in san.disk.registrations if A in n]
            del san.disk.registrations[old[0]]  # the target lost this nexus's registration
            san.kill(A, stay_down=False)
            await eventually(lambda: _assert_reconnected(dev, a))
            assert sum(1 for n in san.disk.registrations if A in n) == 1
            assert dev.pr.reinstatements[-1].registered
    run(body())


def test_a_fenced_host_does_not_re_register_a_recovered_path():
    async def body():
        san = FakeSan()
        async with device(san) as dev:
            await dev.pr.register(0xABC)
            san.kill(A, stay_down=False)
            san.disk.registrations = {"other-node": 0x999}  # preempted while A was down
            a = dev.paths[0].name
            await eventually(lambda: _assert_reconnected(dev, a))
            assert 0xABC not in san.disk.registrations.values()
            assert not dev.pr.reinstatements[-1].registered
            assert "fenced" in dev.pr.reinstatements[-1].reason
    run(body())


def test_io_after_close_raises_device_closed():
    async def body():
        san = FakeSan()
        dev = device(san)
        await dev.open()
        await dev.close()
        with pytest.raises(DeviceClosed):
            await dev.read(0, 1)
    run(body())


def test_a_path_down_at_open_is_recovered_later():
    async def body():
        san = FakeSan()
        san.down.add(B)
        async with device(san) as dev:
            b = dev.paths[1].name
            assert dev.path(b).state in (PathState.FAILED, PathState.RECONNECTING)
            san.down.discard(B)
            await eventually(lambda: _assert_state(dev, b, PathState.ACTIVE))
    run(body())


def test_no_path_at_open_is_all_paths_down():
    async def body():
        san = FakeSan()
        san.down.update({A, B})
        with pytest.raises(AllPathsDown, match="refused"):
            await device(san).open()
    run(body())


def test_the_hold_time_counts_from_the_loss_of_the_last_path_not_from_the_next_io():
    async def body():
        san = FakeSan()
        async with device(san) as dev:
            san.kill(A)
            san.kill(B)
            await eventually(lambda: _assert_all_down(dev))
            idle_s = FAST.pdo_remove_period_s + 0.3
            await asyncio.sleep(idle_s)  # no I/O at all while the disk is without paths
            with pytest.raises(AllPathsDown) as err:
                await dev.read(0, 1)
            assert err.value.held_s >= idle_s
    run(body())


def test_paths_need_unique_names_and_at_least_one_path():
    san = FakeSan()
    with pytest.raises(MultipathConfigError, match="unique names"):
        device(san, specs=[spec(3261), spec(3261)])
    with pytest.raises(MultipathConfigError, match="at least one path"):
        MultipathDevice([], connector=san.connect)


def test_links_already_logged_in_are_adopted_and_the_connector_only_reconnects():
    async def body():
        san = FakeSan()
        specs = [spec(3261, isid=0x800000000001), spec(3262, isid=0x800000000002)]
        adopted = {s.label: await san.connect(s) for s in specs}
        assert san.logins == {A: 1, B: 1}
        dev = device(san, specs=specs)
        with pytest.raises(MultipathConfigError, match="unknown paths"):
            await dev.open(links={"nope": adopted[specs[0].label]})
        await dev.open(links=adopted)
        try:
            assert san.logins == {A: 1, B: 1}  # nothing logged in twice
            assert {(await dev.read(0, 1)).path for _ in range(2)} == set(adopted)
            san.kill(A, stay_down=False)
            await eventually(lambda: _assert_reconnected(dev, specs[0].label))
            assert san.logins[A] == 2
            assert san.links[-1].spec.isid == 0x800000000001  # the same I_T nexus again
        finally:
            await dev.close()
    run(body())


def test_a_partial_block_write_and_an_unknown_path_are_refused():
    async def body():
        async with device(FakeSan()) as dev:
            with pytest.raises(MultipathConfigError, match="whole number"):
                await dev.write(0, b"x" * 100)
            with pytest.raises(MultipathConfigError, match="no path"):
                dev.path("nope")
            with pytest.raises(MultipathConfigError, match="key 0"):
                await dev.pr.register(0)
    run(body())


def test_a_standby_port_is_polled_and_used_again_once_it_is_optimized():
    async def body():
        san = FakeSan(FakeDisk(alua=True, groups={1: AccessState.ACTIVE_OPTIMIZED,
                                                  2: AccessState.STANDBY}))
        san.group_of = {A: 1, B: 2}
        async with device(san) as dev:
            a, b = (p.name for p in dev.paths)
            assert dev.path(b).alua == AluaState.STANDBY
            assert {(await dev.read(0, 1)).path for _ in range(4)} == {a}
            san.disk.groups[2] = AccessState.ACTIVE_OPTIMIZED  # no command tells us: poll
            await eventually(lambda: _assert(dev.path(b).alua == AluaState.ACTIVE_OPTIMIZED))
            assert {(await dev.read(0, 1)).path for _ in range(4)} == {a, b}
    run(body())


def _assert(condition):
    assert condition


def test_no_path_retry_fail_fails_io_at_once_when_no_path_is_left():
    async def body():
        san = FakeSan()
        timers = MpioTimers.from_mapping({"pdo_remove_period_s": 0}, base=FAST)
        async with device(san, timers=timers) as dev:
            san.kill(A)
            san.kill(B)
            await eventually(lambda: _assert_all_down(dev))
            with pytest.raises(AllPathsDown):
                await dev.read(0, 1)
    run(body())


def test_the_tur_checker_fails_a_path_whose_unit_is_not_ready():
    async def body():
        san = FakeSan()
        timers = MpioTimers.from_mapping(
            {"noop_out_interval_s": 0, "path_verify_enabled": True,
             "path_verification_period_s": 0.02}, base=FAST)
        async with device(san, timers=timers) as dev:
            not_ready = check_condition(SenseData.of(SenseKey.NOT_READY,
                                                     Asc.NOT_READY_MANUAL_INTERVENTION))
            original = san.disk.execute

            def refuse_on_a(nexus, group, cdb, data_out):
                return not_ready if A in nexus else original(nexus, group, cdb, data_out)

            san.disk.execute = refuse_on_a
            await eventually(lambda: _assert(any(
                e.new == PathState.FAILED and "path checker" in e.reason
                for e in dev.events.for_path(dev.paths[0].name))))
            assert (await dev.read(0, 1)).path == dev.paths[1].name
    run(body())


# A hold (LinkDownTime) far longer than any test: a command that waited for its failed
# path instead of being re-driven would never complete while that path stays down.
LONG_HOLD = replace(FAST, link_down_time_s=3600.0, pdo_remove_period_s=3600.0,
                    disk_timeout_s=3600.0)


def test_commands_in_flight_on_a_reset_path_are_redriven_at_once_not_held():
    """Nightly 42, episode 37: a node killed under writes in flight on its paths (the
    connection reset) while the partner's path serves: those writes go to the partner now,
    not after the dead path's hold time or reconnect back-off."""
    async def body():
        san = FakeSan()
        async with device(san, timers=LONG_HOLD) as dev:
            a, b = (p.name for p in dev.paths)
            san.hung.add(A)  # the writes sent to A wait in its socket ...
            writes = [asyncio.ensure_future(dev.write(lba, block(lba))) for lba in range(6)]
            await eventually(lambda: _assert(dev.path(a).stats.outstanding >= 1))
            san.kill(A)  # ... when the node dies (and refuses every reconnect)
            done = await asyncio.gather(*writes)
            assert {c.path for c in done} == {b}
            assert dev.path(a).state != PathState.ACTIVE  # A never came back
            assert dev.path(a).stats.redriven_away >= 1
            for lba in range(6):
                assert san.disk.blocks[lba] == block(lba)
    run(body())


def test_commands_on_a_path_the_checker_fails_are_redriven_at_once_not_held():
    """Nightly 42, episode 24: a frozen node never answers; the NOP-Out checker fails its
    path, and the writes that path held go to the other path at once."""
    async def body():
        san = FakeSan()
        timers = MpioTimers(**{**LONG_HOLD.to_mapping(), "noop_out_interval_s": 0.05,
                               "noop_out_timeout_s": 0.1})
        async with device(san, timers=timers) as dev:
            a, b = (p.name for p in dev.paths)
            san.hung.add(A)  # frozen: no answer, no reset; the checker must notice
            san.down.add(A)  # and no reconnect either
            done = await asyncio.gather(*(dev.write(lba, block(lba)) for lba in range(6)))
            assert {c.path for c in done} == {b}
            assert "path checker" in next(e for e in dev.events.for_path(a)
                                          if e.new == PathState.FAILED).reason
            assert dev.path(a).stats.redriven_away >= 1
    run(body())


def test_with_no_other_path_a_command_is_held_for_its_path_to_come_back():
    async def body():
        san = FakeSan()
        async with device(san, timers=LONG_HOLD, specs=[spec(3261)]) as dev:
            (a,) = (p.name for p in dev.paths)
            san.hung.add(A)
            pending = asyncio.ensure_future(dev.write(2, block(2)))
            await eventually(lambda: _assert(dev.path(a).stats.outstanding == 1))
            san.kill(A)
            await eventually(lambda: _assert(dev.path(a).state != PathState.ACTIVE))
            assert not pending.done()
            san.hung.discard(A)
            san.down.discard(A)
            assert (await pending).path == a
            assert dev.path(a).stats.redriven_away == 1
    run(body())


def test_a_path_whose_port_is_in_transition_at_reconnect_comes_up_and_is_polled():
    """Nightly 42, episode 37: a restarted node's ports answered TEST UNIT READY with
    NOT READY / ALUA transition while it resynchronized; each answer failed the login and
    the next attempt came after the back-off (4 s), 3.7 s after the node was Synchronized.
    The port is there and says why it serves no I/O: the path comes up in that ALUA state
    and is polled, and serves again without another login once the port is active."""
    async def body():
        san = FakeSan(FakeDisk(alua=True, groups={1: AccessState.ACTIVE_OPTIMIZED,
                                                  2: AccessState.ACTIVE_OPTIMIZED}))
        san.group_of = {A: 1, B: 2}
        transition = check_condition(SenseData.of(SenseKey.NOT_READY,
                                                  Asc.NOT_READY_ASYMMETRIC_ACCESS_TRANSITION))
        original = san.disk.execute

        def answer(nexus, group, cdb, data_out):
            if san.disk.groups.get(group) == AccessState.TRANSITIONING \
                    and cdb[0] != 0x12 and cdb[0] != 0xA3:  # INQUIRY, RTPG always answered
                return transition
            return original(nexus, group, cdb, data_out)

        san.disk.execute = answer
        timers = MpioTimers(**{**FAST.to_mapping(), "delay_between_reconnect_s": 3600.0,
                               "retry_interval_s": 0.05})
        async with device(san, timers=timers) as dev:
            a, b = (p.name for p in dev.paths)
            san.kill(A)
            await eventually(lambda: _assert(dev.path(a).state != PathState.ACTIVE))
            san.disk.groups[1] = AccessState.TRANSITIONING  # the node is back, resyncing
            san.down.discard(A)
            await eventually(lambda: _assert(dev.path(a).state == PathState.ACTIVE))
            assert dev.path(a).alua == AluaState.TRANSITIONING
            assert {(await dev.read(0, 1)).path for _ in range(4)} == {b}
            logins = san.logins[A]
            san.disk.groups[1] = AccessState.ACTIVE_OPTIMIZED  # Synchronized: no I/O tells us
            await eventually(lambda: _assert(dev.path(a).alua == AluaState.ACTIVE_OPTIMIZED))
            assert {(await dev.read(0, 1)).path for _ in range(4)} == {a, b}
            assert san.logins[A] == logins
    run(body())


def test_a_held_command_goes_to_the_first_path_that_becomes_usable_not_only_its_own():
    """A command whose path died while no other path was usable (the partner's port in
    ALUA transition while it decides to carry on alone) is held; it goes to the partner
    as soon as its port is active, not only when its own dead path comes back."""
    async def body():
        san = FakeSan(FakeDisk(alua=True, groups={1: AccessState.ACTIVE_OPTIMIZED,
                                                  2: AccessState.TRANSITIONING}))
        san.group_of = {A: 1, B: 2}
        timers = MpioTimers(**{**LONG_HOLD.to_mapping(), "retry_interval_s": 0.02,
                               "delay_between_reconnect_s": 0.05})
        async with device(san, timers=timers) as dev:
            a, b = (p.name for p in dev.paths)
            assert dev.path(b).alua == AluaState.TRANSITIONING
            san.hung.add(A)
            pending = asyncio.ensure_future(dev.write(5, block(5)))
            await eventually(lambda: _assert(dev.path(a).stats.outstanding == 1))
            san.kill(A)  # A is gone for good; B carries no I/O yet
            await eventually(lambda: _assert(dev.path(a).stats.redriven_away == 1))
            assert not pending.done()
            san.disk.groups[2] = AccessState.ACTIVE_OPTIMIZED  # the partner serves
            assert (await pending).path == b
            assert dev.path(a).state != PathState.ACTIVE
    run(body())
