"""SCSI-3 persistent reservations over multipath: one key on every I_T nexus.

A PR registration belongs to an I_T nexus (initiator port = IQN + ISID, and
target port), not to a host. A host with four paths to a disk is four
registrants unless it registers on each path, which is what the Windows
cluster disk driver and ``mpathpersist``/``fence_mpath`` do: REGISTER fans out
to every path, RESERVE/RELEASE/PREEMPT/CLEAR go down any one path (a PREEMPT
removes every nexus of the victim's key).

A path that comes back is re-registered, but only while the key is still
registered on the device (READ KEYS): if another node preempted us while the
path was down, we were fenced, and re-registering would undo the fence. That is
the rule multipathd follows when it reinstates a path, and what a fencing test
must be able to rely on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from harness.initiator.mpio.errors import MultipathCommandFailed, MultipathConfigError
from harness.initiator.mpio.link import PathCompletion, PathLink, PathLost, ScsiOutcome
from harness.initiator.mpio.redrive import Action, classify
from harness.initiator.mpio.timers import MpioTimers
from harness.scsi.cdb import PersistentReserveIn, PersistentReserveOut
from harness.scsi.reservations import (
    PR_OUT_BASIC_LENGTH,
    PrInAction,
    PrOutAction,
    PrOutParameters,
    PrType,
    ReadKeysData,
    ReadReservationData,
)


class ReservationPaths(Protocol):
    """What PR over multipath needs of the device (a :class:`MultipathDevice` is one)."""

    name: str
    timers: MpioTimers

    async def usable_links(self) -> list[tuple[str, PathLink]]:
        """(name, link) of every usable path; waits for one (or raises AllPathsDown)."""
        ...

    def fail_path(self, name: str, reason: str) -> None:
        """Take a path out of service."""
        ...

    async def execute(self, cdb: bytes, *, data_out: bytes = b"", expected_in: int = 0,
                      op: str = "command") -> PathCompletion:
        """Run one command on whichever path the device picks, failing over as needed."""
        ...


@dataclass(frozen=True)
class Reinstatement:
    """What happened to the PR key when a path came back."""

    ns: int
    path: str
    registered: bool
    reason: str


def _pr_out(action: PrOutAction, key: int, sa_key: int = 0, pr_type: int = 0,
            aptpl: bool = False) -> tuple[bytes, bytes]:
    cdb = PersistentReserveOut(action=action, pr_type=pr_type,
                               parameter_list_length=PR_OUT_BASIC_LENGTH).encode()
    return cdb, PrOutParameters(key=key, service_action_key=sa_key, aptpl=aptpl).encode()


class PersistentReservationPaths:
    """The PR side of a multipath device (``device.pr``), over :class:`ReservationPaths`."""

    def __init__(self, device: ReservationPaths) -> None:
        self._device = device
        self.key: int | None = None
        self.aptpl = False
        self.reinstatements: list[Reinstatement] = []

    # -- fan-out: REGISTER on every nexus --------------------------------------

    async def register(self, key: int, *, aptpl: bool = False) -> list[str]:
        """Register ``key`` on every usable path (REGISTER AND IGNORE EXISTING KEY).

        Returns the paths registered now; paths that are down register when they
        recover. Raises the target's answer (e.g. RESERVATION CONFLICT) as is.
        """
        if key == 0:
            raise MultipathConfigError(
                f"multipath device {self._device.name}: PR key 0 means unregister; "
                "use pr.unregister() or a non-zero key")
        self.key, self.aptpl = key, aptpl
        return await self._fan_out(key, aptpl)

    async def unregister(self) -> list[str]:
        """Remove this host's registration from every path it is registered on."""
        self.key = None
        return await self._fan_out(0, False)

    async def _fan_out(self, sa_key: int, aptpl: bool) -> list[str]:
        device = self._device
        while True:
            links = await device.usable_links()  # at least one, or AllPathsDown after the hold
            results = await asyncio.gather(
                *(self._register_on(name, link, sa_key, aptpl) for name, link in links),
                return_exceptions=True)
            done: list[str] = []
            for (name, _), result in zip(links, results, strict=True):
                if isinstance(result, PathLost):
                    device.fail_path(name, f"PR REGISTER: {result.reason}")
                elif isinstance(result, BaseException):
                    raise result
                else:
                    done.append(name)
            if done:
                return done

    async def _register_on(self, name: str, link: PathLink, sa_key: int, aptpl: bool) -> None:
        cdb, params = _pr_out(PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, 0, sa_key,
                              aptpl=aptpl)
        await self._on_path(name, link, cdb, params, "PR OUT REGISTER AND IGNORE EXISTING KEY")

    async def _on_path(self, name: str, link: PathLink, cdb: bytes, data_out: bytes,
                       op: str, expected_in: int = 0) -> ScsiOutcome:
        """One command on one named path, retried on transient conditions only."""
        timers = self._device.timers
        for _ in range(timers.retry_count + 1):
            try:
                outcome = await asyncio.wait_for(
                    link.execute(cdb, data_out=data_out, expected_in=expected_in),
                    timers.disk_timeout_s)
            except TimeoutError:
                raise PathLost(f"{op} timed out") from None
            verdict = classify(outcome)
            if verdict.action is Action.DONE:
                return outcome
            if verdict.action is Action.RETRY:
                continue
            if verdict.action in (Action.FAIL_PATH, Action.REDRIVE):
                raise PathLost(f"{op}: {verdict.reason}")
            break
        if outcome.error is not None:
            raise outcome.error
        raise MultipathCommandFailed(self._device.name, name, op, outcome.status,
                                     outcome.sense, classify(outcome).reason)

    async def reinstate(self, name: str, link: PathLink) -> None:
        """Called by recovery before a path is used: re-register if we still hold the key."""
        key = self.key
        if key is None:
            return
        raw = (await self._on_path(
            name, link, PersistentReserveIn(action=PrInAction.READ_KEYS).encode(), b"",
            "PR IN READ KEYS", expected_in=8192)).data
        keys = ReadKeysData.decode(raw).keys
        if key not in keys:
            self.reinstatements.append(Reinstatement(
                time.monotonic_ns(), name, False,
                f"key 0x{key:x} is no longer registered on the device (preempted: fenced); "
                "the path is not re-registered"))
            return
        cdb, params = _pr_out(PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, 0, key,
                              aptpl=self.aptpl)
        await self._on_path(name, link, cdb, params, "PR OUT re-REGISTER")
        self.reinstatements.append(Reinstatement(time.monotonic_ns(), name, True,
                                                 f"key 0x{key:x} re-registered"))

    # -- one path: everything else ---------------------------------------------

    def _key(self, key: int | None) -> int:
        chosen = self.key if key is None else key
        if chosen is None:
            raise MultipathConfigError(
                f"multipath device {self._device.name} has no PR key; call pr.register(key) "
                "first or pass key=")
        return chosen

    async def reserve(self, pr_type: PrType, *, key: int | None = None) -> str:
        cdb, params = _pr_out(PrOutAction.RESERVE, self._key(key), pr_type=pr_type)
        return (await self._device.execute(cdb, data_out=params, op="PR OUT RESERVE")).path

    async def release(self, pr_type: PrType, *, key: int | None = None) -> str:
        cdb, params = _pr_out(PrOutAction.RELEASE, self._key(key), pr_type=pr_type)
        return (await self._device.execute(cdb, data_out=params, op="PR OUT RELEASE")).path

    async def clear(self, *, key: int | None = None) -> str:
        cdb, params = _pr_out(PrOutAction.CLEAR, self._key(key))
        return (await self._device.execute(cdb, data_out=params, op="PR OUT CLEAR")).path

    async def preempt(self, victim: int, pr_type: PrType, *, abort: bool = False,
                      key: int | None = None) -> str:
        action = PrOutAction.PREEMPT_AND_ABORT if abort else PrOutAction.PREEMPT
        cdb, params = _pr_out(action, self._key(key), victim, pr_type=pr_type)
        return (await self._device.execute(cdb, data_out=params, op=f"PR OUT {action.name}")).path

    async def read_keys(self) -> ReadKeysData:
        c = await self._device.execute(PersistentReserveIn(action=PrInAction.READ_KEYS).encode(),
                                       expected_in=8192, op="PR IN READ KEYS")
        return ReadKeysData.decode(c.data)

    async def read_reservation(self) -> ReadReservationData:
        c = await self._device.execute(
            PersistentReserveIn(action=PrInAction.READ_RESERVATION).encode(),
            expected_in=8192, op="PR IN READ RESERVATION")
        return ReadReservationData.decode(c.data)
