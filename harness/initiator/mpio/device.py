"""MultipathDevice: one disk over every path to it, failing over the way MPIO does.

The model. A device owns one :class:`_Path` per :class:`PathSpec`: its own
session (own ISID, so its own I_T nexus), its :class:`PathStatus` (state
machine, statistics) and the tasks that keep it alive:

- a *watcher* that fails the path the moment its connection is lost,
- a *checker* (NOP-Out, or TEST UNIT READY) at the timers' probe interval,
- a *recovery* loop that logs a failed path back in with exponential back-off
  (tenacity; first step RetryInterval, capped by DelayBetweenReconnect or
  PathRecoveryInterval), proves it is still the same disk (VPD 0x83), that the
  unit is ready, re-registers the device's PR key on the new nexus when the key
  is still registered, and only then makes the path usable again.

Every I/O takes a queue slot (``queue_depth``), asks the load-balance policy
for a path, and runs there with the per-command timeout (disk timeout). What
happens when it does not end GOOD is decided by :mod:`harness.initiator.mpio.redrive`:
connection loss, timeout or a NOT READY path fail the path and the command is
re-driven at once on whatever path the policy picks, as dm-multipath does with
the commands the iSCSI layer fails up when a connection drops or a NOP-Out times
out; only when no other path is usable is it held up to the path hold time
(LinkDownTime / replacement_timeout / fast_io_fail_tmo) for a path to become usable. ALUA answers
re-route at once; transient conditions are retried up to RetryCount. While no
path is usable the I/O is queued; once the device has had no usable path for
PDORemovePeriod, I/O fails with :class:`AllPathsDown`. Medium errors and
reservation conflicts are the caller's answer and are never re-driven.

Every state change is a :class:`PathEvent` in :attr:`MultipathDevice.events`,
and every completion names the path that served it (:class:`PathCompletion`),
which is what failover timing is measured from.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from tenacity import AsyncRetrying, retry_if_exception_type, stop_never, wait_exponential

from harness.initiator.mpio import probe
from harness.initiator.mpio.errors import (
    AllPathsDown,
    DeviceClosed,
    MultipathCommandFailed,
    MultipathConfigError,
    PathIdentityMismatch,
    PathIdentityMissing,
)
from harness.initiator.mpio.link import (
    PathCompletion,
    PathConnector,
    PathLink,
    PathLost,
    PathSpec,
    ScsiOutcome,
)
from harness.initiator.mpio.policies import LoadBalancePolicy, PathSnapshot, policy_named
from harness.initiator.mpio.redrive import Action, classify
from harness.initiator.mpio.reservations import PersistentReservationPaths
from harness.initiator.mpio.status import AluaState, PathEvent, PathEventLog, PathState, PathStatus
from harness.initiator.mpio.timers import MpioTimers
from harness.iscsi.names import MPIO_PATHS
from harness.scsi.cdb import Inquiry, Read, SynchronizeCache, TestUnitReady, Write

_DEVICE_NUMBERS = itertools.count(1)
_ACCESSIBLE = frozenset({AluaState.ACTIVE_OPTIMIZED, AluaState.ACTIVE_NON_OPTIMIZED,
                         AluaState.LBA_DEPENDENT})


class _StillInaccessible(Exception):
    """The port is still not active (internal: drives the ALUA poll's back-off)."""


@dataclass(eq=False)
class _Path:
    spec: PathSpec
    status: PathStatus
    link: PathLink | None = None
    identity: probe.PathIdentity | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    recovery: asyncio.Task[None] | None = None
    alua_watch: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.status.name

    def snapshot(self) -> PathSnapshot:
        s = self.status
        return PathSnapshot(s.name, s.state, s.designation, s.alua, s.stats.outstanding,
                            s.stats.bytes_in_flight, s.weight, s.preferred)


class MultipathDevice:
    """One disk over several paths, with an MSDSM policy and Windows/open-iscsi timers."""

    def __init__(
        self,
        specs: Sequence[PathSpec],
        *,
        connector: PathConnector,
        policy: str | LoadBalancePolicy = "round-robin",
        timers: MpioTimers | None = None,
        queue_depth: int = 32,
        name: str = "",
    ) -> None:
        if not specs:
            raise MultipathConfigError("a multipath device needs at least one path; list the "
                                       "portals of the disk")
        labels = [s.label for s in specs]
        if len(set(labels)) != len(labels):
            raise MultipathConfigError(
                f"multipath paths need unique names, got {labels}; give each PathSpec a name "
                "(two paths to one portal are two sessions: name them)")
        self.name = name or f"mpath{next(_DEVICE_NUMBERS)}"
        self.timers = timers or MpioTimers()
        self.policy = policy_named(policy) if isinstance(policy, str) else policy
        self.queue_depth = queue_depth
        self.events = PathEventLog()
        self.identity: tuple[str, ...] = ()
        self.block_size = 0
        self.num_blocks = 0
        self.refused: dict[str, Exception] = {}
        self._connector = connector
        self._paths = [
            _Path(
                spec=s if s.isid is not None else replace(s, isid=MPIO_PATHS.isid()),
                status=PathStatus(s.label, self.events, designation=s.designation,
                                  weight=s.weight, preferred=s.preferred),
            )
            for s in specs
        ]
        self._slots = asyncio.Semaphore(queue_depth)
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._no_path_since_ns: int | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.pr = PersistentReservationPaths(self)
        self.events.subscribe(self._on_event)

    # -- public surface --------------------------------------------------------

    @property
    def paths(self) -> list[PathStatus]:
        return [p.status for p in self._paths]

    def path(self, name: str) -> PathStatus:
        return self._by_name(name).status

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    async def __aenter__(self) -> MultipathDevice:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self, *, links: Mapping[str, PathLink] | None = None) -> None:
        """Log in every path, prove they are one disk, read its capacity, start the tasks.

        ``links`` adopts sessions that are already logged in, by path name; the
        connector is still used to log those paths back in after a failure.
        """
        links = dict(links or {})
        unknown = set(links) - {p.name for p in self._paths}
        if unknown:
            raise MultipathConfigError(
                f"multipath device {self.name}: links given for unknown paths {sorted(unknown)}")
        results = await asyncio.gather(*(self._login(p, links.get(p.name)) for p in self._paths),
                                       return_exceptions=True)
        up = [p for p, r in zip(self._paths, results, strict=True) if r is None]
        try:
            for r in results:
                if isinstance(r, BaseException) and not isinstance(r, PathLost):
                    raise r
            if not up:
                errors = {p.name: str(r) for p, r in zip(self._paths, results, strict=True)}
                raise AllPathsDown(self.name, 0.0, errors, at_open=True)
            first = up[0]
            assert first.identity is not None
            for p in up:
                assert p.identity is not None
                if not p.identity.designators:
                    raise PathIdentityMissing(self.name, p.name)
                if p.identity.designators != first.identity.designators:
                    raise PathIdentityMismatch(self.name, first.name, first.identity.designators,
                                               p.name, p.identity.designators)
            self.identity = first.identity.designators
            assert first.link is not None
            self.block_size, self.num_blocks = await probe.capacity(first.link)
            await self._refresh_alua(first)
        except BaseException:
            await asyncio.gather(*(p.link.abort() for p in up if p.link), return_exceptions=True)
            for p in self._paths:
                p.link = None
            raise
        for p, r in zip(self._paths, results, strict=True):
            if r is None:
                self._bring_up(p, "logged in")
            else:
                p.status.move(PathState.FAILED, f"login failed: {r}")
                self._start_recovery(p)

    async def close(self) -> None:
        """Stop every task, log every path out, and mark the paths removed."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._changed.set()
        tasks = [t for p in self._paths for t in p.tasks] + list(self._background)
        tasks += [p.recovery for p in self._paths if p.recovery]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(p.link.close() for p in self._paths if p.link),
                             return_exceptions=True)
        for p in self._paths:
            p.link = None
            p.status.move(PathState.REMOVED, "device closed")

    async def read(self, lba: int, count: int) -> PathCompletion:
        """READ(16) of ``count`` blocks at ``lba``."""
        n = count * self.block_size
        return await self.execute(Read(lba=lba, blocks=count, size=16).encode(),
                                  expected_in=n, op="read")

    async def write(self, lba: int, data: bytes, *, fua: bool = False) -> PathCompletion:
        """WRITE(16) of ``data`` (whole blocks) at ``lba``."""
        blocks = len(data) // self.block_size if self.block_size else 0
        if not data or blocks * self.block_size != len(data):
            raise MultipathConfigError(
                f"multipath device {self.name}: a write of {len(data)} bytes is not a whole "
                f"number of {self.block_size}-byte blocks; pad or split it")
        return await self.execute(Write(lba=lba, blocks=blocks, size=16, fua=fua).encode(),
                                  data_out=data, op="write")

    async def flush(self) -> PathCompletion:
        """SYNCHRONIZE CACHE(10) of the whole disk."""
        return await self.execute(SynchronizeCache().encode(), op="flush")

    async def inquiry(self, *, evpd: bool = False, page: int = 0,
                      allocation_length: int = 255) -> PathCompletion:
        return await self.execute(
            Inquiry(evpd=evpd, page_code=page, allocation_length=allocation_length).encode(),
            expected_in=allocation_length, op="inquiry")

    async def test_unit_ready(self) -> PathCompletion:
        return await self.execute(TestUnitReady().encode(), op="test unit ready")

    async def execute(self, cdb: bytes, *, data_out: bytes = b"", expected_in: int = 0,
                      op: str = "command") -> PathCompletion:
        """Run one command on whichever path the policy picks, failing over as needed."""
        if self.closed:
            raise DeviceClosed(self.name)
        async with self._slots:
            outcome, path = await self._drive(op, cdb, data_out, expected_in)
        return PathCompletion(outcome.data, path)

    def designate(self, name: str, designation: PathState) -> None:
        """Make a path active or standby (Round Robin With Subset, Failover Only)."""
        self._by_name(name).status.designate(designation, f"designated {designation.value}")

    # -- the I/O engine --------------------------------------------------------

    async def _drive(self, op: str, cdb: bytes, data_out: bytes,
                     expected_in: int) -> tuple[ScsiOutcome, str]:
        retries = 0
        while True:
            path = await self._choose()
            try:
                outcome = await self._run_on(path, op, cdb, data_out, expected_in)
            except PathLost as lost:
                self._fail_path(path, lost.reason)
                path.status.stats.redriven_away += 1
                await self._hold(path)  # returns at once while another path is usable
                continue
            verdict = classify(outcome)
            if verdict.action is Action.DONE:
                return outcome, path.name
            if verdict.action is Action.FAIL:
                if outcome.error is not None:
                    raise outcome.error
                raise MultipathCommandFailed(self.name, path.name, op, outcome.status,
                                             outcome.sense, verdict.reason)
            if verdict.alua is not None:
                self._set_alua(path, verdict.alua, verdict.reason)
            if verdict.refresh_alua:
                self._spawn(self._refresh_alua_quietly(path))
            if verdict.action is Action.FAIL_PATH:
                self._fail_path(path, verdict.reason)
                path.status.stats.redriven_away += 1
                continue
            if verdict.action is Action.REDRIVE:
                path.status.stats.redriven_away += 1
                if verdict.delay:
                    await self._pause(self.timers.retry_interval_s)
                continue
            retries += 1  # Action.RETRY
            if retries > self.timers.retry_count:
                if outcome.error is not None:
                    raise outcome.error
                raise MultipathCommandFailed(
                    self.name, path.name, op, outcome.status, outcome.sense,
                    f"{verdict.reason}, still after {self.timers.retry_count} retries")
            if verdict.delay:
                await self._pause(self.timers.retry_interval_s)

    async def _run_on(self, path: _Path, op: str, cdb: bytes, data_out: bytes,
                      expected_in: int) -> ScsiOutcome:
        link = path.link
        if link is None or not path.status.state.healthy:
            raise PathLost(f"path {path.name} is {path.status.state.value}")
        stats = path.status.stats
        in_flight = len(data_out) or expected_in
        kind = op if op in ("read", "write") else "other"
        stats.started(in_flight)
        t0 = time.monotonic_ns()
        outcome: ScsiOutcome | None = None
        try:
            outcome = await asyncio.wait_for(
                link.execute(cdb, data_out=data_out, expected_in=expected_in),
                self.timers.disk_timeout_s)
            return outcome
        except TimeoutError:
            raise PathLost(f"{op} timed out after {self.timers.disk_timeout_s:g} s "
                           "(disk_timeout_s)") from None
        finally:
            ok = outcome is not None and outcome.good
            nbytes = 0
            if outcome is not None and ok:
                nbytes = len(outcome.data) if kind == "read" else len(data_out)
            stats.finished(kind, nbytes, time.monotonic_ns() - t0, ok=ok,
                           inflight_bytes=in_flight)

    async def _choose(self) -> _Path:
        """The policy's path; while none is usable, wait up to the PDO remove period."""
        while True:
            if self.closed:
                raise DeviceClosed(self.name)
            name = self.policy.select([p.snapshot() for p in self._paths])
            if name is not None:
                self._no_path_since_ns = None
                return self._by_name(name)
            now = time.monotonic_ns()
            if self._no_path_since_ns is None:
                self._no_path_since_ns = now
            held_ns = now - self._no_path_since_ns
            remaining = self.timers.pdo_remove_period_s - held_ns / 1e9
            if remaining <= 0:
                raise AllPathsDown(self.name, held_ns / 1e9,
                                   {p.name: p.status.last_error for p in self._paths})
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _any_usable(self) -> bool:
        """Whether the policy has a path to hand a command to now (no pick is made)."""
        return bool(self.policy.best_tier([p.snapshot() for p in self._paths]))

    async def _hold(self, path: _Path) -> None:
        """LinkDownTime: with no usable path, keep the I/O up to the hold for a path to
        come back, this one or any other (never held while another path can take it)."""
        hold = self.timers.path_hold_s
        if hold <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold
        while not self.closed and not self._any_usable():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            changed = self._changed  # set on every path event and ALUA change
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    def _on_event(self, event: PathEvent) -> None:
        # PDORemovePeriod counts from the moment the last path went, I/O or not
        if any(p.status.state.healthy for p in self._paths):
            self._no_path_since_ns = None
        elif self._no_path_since_ns is None:
            self._no_path_since_ns = event.ns
        self._notify()

    def _notify(self) -> None:
        """Wake every I/O waiting in ``_choose`` for the paths to change."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- path life -------------------------------------------------------------

    async def _login(self, path: _Path, adopted: PathLink | None = None) -> None:
        """Log one path in (or adopt a logged-in link), read its identity, check it is
        ready; sets ``path.link``."""
        try:
            link = adopted or await asyncio.wait_for(self._connector(path.spec),
                                                     self.timers.login_timeout_s)
        except TimeoutError:
            raise PathLost(f"login timed out after {self.timers.login_timeout_s:g} s") from None
        except PathLost:
            raise
        except Exception as exc:  # a login error of any kind: the path is not up
            raise PathLost(f"login failed: {exc}") from exc
        try:
            path.identity = await asyncio.wait_for(probe.identify(link),
                                                   self.timers.disk_timeout_s)
            # the unit must be ready (this also consumes the new nexus's unit attentions);
            # a port that answers with its ALUA state comes up in that state, polled
            port_state = await asyncio.wait_for(probe.ready(link), self.timers.disk_timeout_s)
        except BaseException as exc:
            await link.abort()
            if isinstance(exc, TimeoutError):
                raise PathLost("identity query timed out") from None
            raise
        path.link = link
        if port_state is not None:
            self._set_alua(path, port_state, "TEST UNIT READY at login")

    def _bring_up(self, path: _Path, reason: str) -> None:
        assert path.link is not None
        path.status.move(path.status.designation, reason)
        link = path.link
        self._task(path, self._watch(path, link))
        if self.timers.probe_interval_s is not None:
            self._task(path, self._check(path, link))
        self._ensure_alua_watch(path)

    def _fail_path(self, path: _Path, reason: str) -> None:
        """Take a path out of service now and start its recovery (idempotent)."""
        if not path.status.state.healthy:
            return
        link, path.link = path.link, None
        path.status.move(PathState.FAILED, reason)
        for t in list(path.tasks):
            if t is not asyncio.current_task():
                t.cancel()
        if link is not None:
            self._spawn(link.abort())
        self._start_recovery(path)

    def _start_recovery(self, path: _Path) -> None:
        if self.closed or (path.recovery is not None and not path.recovery.done()):
            return
        path.recovery = asyncio.get_running_loop().create_task(self._recover(path))

    async def _recover(self, path: _Path) -> None:
        t = self.timers
        attempt_no = 0
        retrying = AsyncRetrying(
            wait=wait_exponential(multiplier=t.reconnect_backoff_min_s,
                                  min=t.reconnect_backoff_min_s, max=t.reconnect_backoff_max_s),
            retry=retry_if_exception_type(PathLost),
            stop=stop_never,  # Windows and iscsid reconnect for as long as the disk exists
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                attempt_no += 1
                path.status.move(PathState.RECONNECTING, f"reconnect attempt {attempt_no}")
                try:
                    await self._login(path)
                    assert path.link is not None and path.identity is not None
                    if path.identity.designators != self.identity:
                        self._refuse(path)
                        return
                    await self.pr.reinstate(path.name, path.link)
                    await self._refresh_alua(path)
                except (PathLost, TimeoutError) as exc:
                    if path.link is not None:
                        await path.link.abort()
                        path.link = None
                    reason = exc.reason if isinstance(exc, PathLost) else "recovery timed out"
                    path.status.move(PathState.FAILED, reason)
                    raise PathLost(reason) from exc
        self._bring_up(path, f"reconnected after {attempt_no} attempt(s)")

    def _refuse(self, path: _Path) -> None:
        assert path.identity is not None and path.link is not None
        error = PathIdentityMismatch(self.name, self._paths[0].name, self.identity, path.name,
                                     path.identity.designators)
        self.refused[path.name] = error
        self._spawn(path.link.abort())
        path.link = None
        path.status.move(PathState.REMOVED, f"identity mismatch: {path.identity.designators}")

    async def _watch(self, path: _Path, link: PathLink) -> None:
        reason = await link.wait_lost()
        if path.link is link:
            self._fail_path(path, f"connection lost: {reason}")

    async def _check(self, path: _Path, link: PathLink) -> None:
        """The path checker: NOP-Out (noop_out_*) or TEST UNIT READY (path verification)."""
        t = self.timers
        assert t.probe_interval_s is not None
        while path.link is link and not self.closed:
            await self._pause(t.probe_interval_s)
            if path.link is not link or self.closed:
                return
            try:
                if t.noop_out_interval_s > 0:
                    await asyncio.wait_for(link.ping(), t.probe_timeout_s)
                    continue
                outcome = await asyncio.wait_for(link.execute(TestUnitReady().encode()),
                                                 t.probe_timeout_s)
            except TimeoutError:
                self._fail_path(path, f"path checker: no answer in {t.probe_timeout_s:g} s")
                return
            except PathLost as lost:
                self._fail_path(path, f"path checker: {lost.reason}")
                return
            verdict = classify(outcome)
            if verdict.alua is not None:
                self._set_alua(path, verdict.alua, f"path checker: {verdict.reason}")
            if verdict.refresh_alua:
                await self._refresh_alua_quietly(path)
            if verdict.action is Action.FAIL_PATH:
                self._fail_path(path, f"path checker: {verdict.reason}")
                return

    # -- ALUA ------------------------------------------------------------------

    async def _refresh_alua(self, path: _Path) -> None:
        """RTPG on one path updates the access state of every path in a reported group."""
        if path.link is None or path.identity is None or not path.identity.alua_supported:
            return
        states = await asyncio.wait_for(probe.port_group_states(path.link),
                                        self.timers.disk_timeout_s)
        for p in self._paths:
            if p.identity is not None and p.identity.port_group in states:
                self._set_alua(p, states[p.identity.port_group], "REPORT TARGET PORT GROUPS")

    async def _refresh_alua_quietly(self, path: _Path) -> None:
        with contextlib.suppress(PathLost, TimeoutError):
            await self._refresh_alua(path)

    def _set_alua(self, path: _Path, state: AluaState, reason: str) -> None:
        if path.status.alua != state:
            path.status.alua = state
            path.status.last_error = f"ALUA {state.name.lower()}: {reason}"
            self._notify()
        self._ensure_alua_watch(path)

    def _ensure_alua_watch(self, path: _Path) -> None:
        if path.status.alua not in _ACCESSIBLE and path.status.state.healthy \
                and not self.closed and (path.alua_watch is None or path.alua_watch.done()):
            path.alua_watch = self._task(path, self._watch_alua(path))

    async def _watch_alua(self, path: _Path) -> None:
        """Re-read the port's access state, with back-off, until it serves I/O again.

        A port that is standby, unavailable or transitioning gets no I/O, so no
        command through it would ever tell us it is back; scsi_dh_alua polls the
        same way. Ends when the path fails (recovery re-reads ALUA) or closes.
        """
        t = self.timers
        retrying = AsyncRetrying(
            wait=wait_exponential(multiplier=t.reconnect_backoff_min_s,
                                  min=t.reconnect_backoff_min_s, max=t.reconnect_backoff_max_s),
            retry=retry_if_exception_type(_StillInaccessible), stop=stop_never, reraise=True)
        async for attempt in retrying:
            with attempt:
                if not path.status.state.healthy or self.closed:
                    return
                await self._refresh_alua_quietly(path)
                if path.status.alua not in _ACCESSIBLE:
                    raise _StillInaccessible(path.name)

    # -- plumbing --------------------------------------------------------------

    def _by_name(self, name: str) -> _Path:
        for p in self._paths:
            if p.name == name:
                return p
        raise MultipathConfigError(
            f"multipath device {self.name} has no path {name!r}; its paths are "
            f"{', '.join(p.name for p in self._paths)}")

    async def usable_links(self) -> list[tuple[str, PathLink]]:
        """(name, link) of every usable path; waits for one, up to the PDO remove period."""
        await self._choose()
        return self.healthy_links()

    def healthy_links(self) -> list[tuple[str, PathLink]]:
        """(name, link) of every path that can carry a command now."""
        return [(p.name, p.link) for p in self._paths
                if p.link is not None and p.status.state.healthy]

    def fail_path(self, name: str, reason: str) -> None:
        """Take a path out of service (used by PR fan-out when a path breaks)."""
        self._fail_path(self._by_name(name), reason)

    def _task(self, path: _Path, coro: object) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        path.tasks.add(task)
        task.add_done_callback(path.tasks.discard)
        return task

    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)

