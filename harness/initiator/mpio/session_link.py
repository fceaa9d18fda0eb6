"""The harness's own iSCSI ``Session`` as a multipath path (a ``PathLink``).

:class:`SessionConnector` logs one :class:`~harness.initiator.mpio.link.PathSpec`
in with a :class:`~harness.initiator.session.Session` (its own ISID, CHAP when
the spec has it) and wraps it in a :class:`SessionLink`, which maps the
session's view onto the multipath device's: a SCSI status of any kind is a
:class:`~harness.initiator.mpio.link.ScsiOutcome` (carrying the session's own
typed error, e.g. ``CheckCondition``, for a non-GOOD status), and anything that
makes the session unusable (connection lost, protocol error, timeout, login
refused) is :class:`~harness.initiator.mpio.link.PathLost`.

A connector with a ``sock_factory`` makes every path's TCP connection with it
(first login and every re-login after a path failed), e.g. inside a cluster
node's network namespace; the factory may bind each socket to the node's own
address on the portal's network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.initiator.connection import SocketFactory
from harness.initiator.errors import (
    InitiatorError,
    ProtocolError,
    ScsiStatusError,
    TaskAborted,
)
from harness.initiator.login import ChapSecrets
from harness.initiator.mpio.device import MultipathDevice
from harness.initiator.mpio.errors import MultipathConfigError
from harness.initiator.mpio.link import Chap, PathConnector, PathLost, PathSpec, ScsiOutcome
from harness.initiator.mpio.timers import MpioTimers
from harness.initiator.session import Session, SessionTimeouts
from harness.scsi.status import ScsiStatus


class SessionLink:
    """A logged-in :class:`~harness.initiator.session.Session` addressing one LUN."""

    def __init__(self, session: Session, spec: PathSpec) -> None:
        self.session = session
        self.spec = spec

    async def execute(
        self, cdb: bytes, *, data_out: bytes = b"", expected_in: int = 0
    ) -> ScsiOutcome:
        try:
            result = await self.session.execute(cdb, self.spec.lun, data_out or None, expected_in)
        except TaskAborted as exc:  # aborted by task management: the session still works
            if self.session.failure is not None:
                raise PathLost(f"session failed: {exc}") from exc
            return ScsiOutcome(ScsiStatus.TASK_ABORTED, error=exc)
        except (InitiatorError, ProtocolError, OSError) as exc:
            raise PathLost(str(exc)) from exc
        if result.good:
            return ScsiOutcome(result.status, result.data, result.sense)
        try:
            result.raise_for_status()
        except (ScsiStatusError, TaskAborted) as exc:
            return ScsiOutcome(result.status, result.data, result.sense, error=exc)
        return ScsiOutcome(result.status, result.data, result.sense)  # pragma: no cover

    async def ping(self) -> None:
        try:
            await self.session.ping()
        except (InitiatorError, ProtocolError, OSError) as exc:
            raise PathLost(f"NOP-Out ping: {exc}") from exc

    async def wait_lost(self) -> str:
        return str(await self.session.wait_failed())

    async def abort(self) -> None:
        self.session.close()

    async def close(self) -> None:
        try:
            await self.session.logout()
        except (InitiatorError, ProtocolError, OSError):
            self.session.close()


@dataclass(frozen=True)
class SessionConnector:
    """Logs a path in with the harness's ``Session`` (a :data:`PathConnector`).

    ``timeouts`` bound connect, login and NOP-Out; the command deadline is
    generous because the multipath device enforces its own per-command timeout
    (``disk_timeout_s``) and fails the path when it passes. ``sock_factory``
    (default: the harness's own network stack) makes each path's socket.
    """

    timeouts: SessionTimeouts = field(
        default_factory=lambda: SessionTimeouts(command=300.0, task_management=10.0)
    )
    sock_factory: SocketFactory | None = None

    @classmethod
    def for_timers(cls, timers: MpioTimers, *,
                   sock_factory: SocketFactory | None = None) -> SessionConnector:
        """Connect/login deadlines from ``login_timeout_s``, NOP-Out from ``noop_out_timeout_s``."""
        return cls(timeouts=SessionTimeouts(
            connect=timers.login_timeout_s, login=timers.login_timeout_s,
            command=max(300.0, 2 * timers.disk_timeout_s),
            nop=timers.noop_out_timeout_s or timers.probe_timeout_s,
            task_management=10.0, logout=min(5.0, timers.login_timeout_s)),
            sock_factory=sock_factory)

    async def __call__(self, spec: PathSpec) -> SessionLink:
        chap = None
        if spec.chap is not None:
            chap = ChapSecrets(spec.chap.user, spec.chap.secret, spec.chap.mutual_user,
                               spec.chap.mutual_secret)
        session = Session(spec.host, spec.port, spec.target, initiator_name=spec.initiator,
                          lun=spec.lun, chap=chap, isid=spec.isid, timeouts=self.timeouts,
                          sock_factory=self.sock_factory)
        try:
            await session.login()
        except (InitiatorError, ProtocolError, OSError) as exc:
            session.close()
            raise PathLost(f"login to {spec.target} at {spec.portal} failed: {exc}") from exc
        return SessionLink(session, spec)


session_connector: PathConnector = SessionConnector()
"""The default connector: the harness's ``Session`` with default deadlines."""


def spec_of(session: Session, *, name: str = "") -> PathSpec:
    """The path spec that logs ``session``'s I_T nexus in again (same ISID, same CHAP)."""
    chap = None
    if session.chap is not None:
        c = session.chap
        chap = Chap(c.user, c.secret, c.target_user, c.target_secret)
    if session.target is None:
        raise PathLost(f"session to {session.where} is a discovery session, not a path to a disk")
    return PathSpec(session.host, session.port, session.target, lun=session.lun,
                    initiator=session.initiator_name, isid=session.isid, chap=chap,
                    name=name or f"{session.host}:{session.port}/{session.target}/"
                    f"{session.lun}@{session.isid:012x}")


async def multipath_from_sessions(sessions: Sequence[Session], *,
                                  connector: PathConnector | None = None,
                                  **options: Any) -> MultipathDevice:
    """An open :class:`MultipathDevice` over sessions that are already logged in.

    Each session becomes one path (named after its portal, target and LUN); a
    path that later fails is logged back in with ``connector`` (default: a
    :class:`SessionConnector` with the device's timers and the sessions' own
    ``sock_factory``, so a path comes back from where it was first made), keeping
    its ISID.
    """
    specs = [spec_of(s) for s in sessions]
    if connector is None:
        factories = {id(s.sock_factory): s.sock_factory for s in sessions}
        if len(factories) > 1:
            raise MultipathConfigError(
                "the sessions were made with different socket factories, so one connector "
                "cannot log their paths in again; pass connector= (a SessionConnector)"
            )
        factory = next(iter(factories.values()), None)
        timers = options.get("timers")
        if timers:
            connector = SessionConnector.for_timers(timers, sock_factory=factory)
        elif factory is not None:
            connector = SessionConnector(sock_factory=factory)
        else:
            connector = session_connector
    device = MultipathDevice(specs, connector=connector, **options)
    await device.open(links={spec.label: SessionLink(s, spec)
                             for spec, s in zip(specs, sessions, strict=True)})
    return device
