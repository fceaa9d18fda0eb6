"""What a multipath device needs of one path: its spec, its link, and a command's outcome.

A :class:`PathSpec` says how to reach one I_T_L nexus (portal, target name, LUN,
initiator name and ISID, CHAP). A :class:`PathLink` is a logged-in path the
device drives: it runs one SCSI command and returns a :class:`ScsiOutcome`
(status, data, sense), pings the connection, and tells when the connection is
lost. Anything that means "this path no longer carries commands" (connection
reset, protocol error, a session that logged out under us) is raised as
:class:`PathLost`; a SCSI status, good or bad, is *never* an exception here: the
device decides what a status means (:mod:`harness.initiator.mpio.redrive`).

This module is the bottom of :mod:`harness.initiator.mpio`: it imports nothing
of the device. The device never builds PDUs: ``session_connector``
(:mod:`harness.initiator.mpio.session_link`, a layer above the device) adapts the
harness's own ``harness.initiator.session.Session`` to this interface, and unit
tests plug in an in-memory disk with the same interface.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from harness.errors import SplitbrainError
from harness.initiator.mpio.status import PathState
from harness.scsi.sense import SenseData
from harness.scsi.status import ScsiStatus


@dataclass(frozen=True)
class Chap:
    """CHAP credentials of one path (``mutual_*`` set for mutual CHAP)."""

    user: str
    secret: str = field(repr=False)
    mutual_user: str | None = None
    mutual_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PathSpec:
    """How to reach one path of a disk, and how MPIO should treat it.

    ``isid`` is the 6-byte initiator session id as an int; each path needs its
    own I_T nexus, so :class:`~harness.initiator.mpio.device.MultipathDevice`
    gives paths without one distinct ISIDs. ``designation`` (active or
    standby), ``weight`` and ``preferred`` feed the load-balance policy.
    """

    host: str
    port: int
    target: str
    lun: int = 0
    initiator: str = "iqn.2026-11.org.splitbrain:mpio"
    isid: int | None = None
    chap: Chap | None = None
    name: str = ""
    designation: PathState = PathState.ACTIVE
    weight: int = 0
    preferred: bool = False

    @property
    def portal(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def label(self) -> str:
        """The name a path is known by in events, statistics and the history."""
        return self.name or f"{self.portal}/{self.target}/{self.lun}"


@dataclass(frozen=True)
class ScsiOutcome:
    """How one SCSI command ended on one path.

    ``error`` keeps the session's own exception for a non-GOOD status (for
    example its ``CheckCondition``), so the device can re-raise exactly what a
    single-path caller would have seen.
    """

    status: int
    data: bytes = b""
    sense: SenseData | None = None
    error: BaseException | None = None

    @property
    def good(self) -> bool:
        return self.status in (ScsiStatus.GOOD, ScsiStatus.CONDITION_MET)


@dataclass(frozen=True, slots=True)
class PathCompletion:
    """A finished command: the data it read (b"" otherwise) and the path that served it."""

    data: bytes
    path: str


class PathLost(SplitbrainError):
    """The path's connection or session is gone; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PathLink(Protocol):
    """A logged-in path: one session to one portal, addressing one LUN."""

    async def execute(
        self, cdb: bytes, *, data_out: bytes = b"", expected_in: int = 0
    ) -> ScsiOutcome:
        """Run one command; raises :class:`PathLost`, never for a SCSI status."""
        ...

    async def ping(self) -> None:
        """A NOP-Out round trip; raises :class:`PathLost` when it cannot complete."""
        ...

    async def wait_lost(self) -> str:
        """Return (with the reason) once the connection is lost; never returns otherwise."""
        ...

    async def abort(self) -> None:
        """Drop the connection now, without logout (a path we gave up on)."""
        ...

    async def close(self) -> None:
        """Log out cleanly; never raises."""
        ...


PathConnector = Callable[[PathSpec], Awaitable[PathLink]]
"""Logs in one path; raises :class:`PathLost` (or a login error) when it cannot."""
