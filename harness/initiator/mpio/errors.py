"""Typed errors of a multipath device, each one line: what, where, what to do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from harness.errors import SplitbrainError
from harness.scsi.sense import SenseData


class MultipathError(SplitbrainError):
    """Base of the errors a multipath device raises to its caller."""


class MultipathConfigError(MultipathError):
    """A multipath device asked for something impossible (no paths, duplicate names, ...)."""


class PathIdentityMismatch(MultipathError):
    """Two paths of one device report different VPD 0x83 logical-unit designators."""

    def __init__(
        self,
        device: str,
        path_a: str,
        ids_a: Sequence[str],
        path_b: str,
        ids_b: Sequence[str],
    ) -> None:
        super().__init__(
            f"multipath device {device}: path {path_a} reports identity "
            f"[{', '.join(ids_a) or 'none'}] but path {path_b} reports "
            f"[{', '.join(ids_b) or 'none'}]; they are not the same disk, so they are not "
            "grouped (give every node of the device the same VPD 0x83 identity, or list "
            "only paths to one disk)"
        )
        self.device = device
        self.paths = (path_a, path_b)
        self.identities = (tuple(ids_a), tuple(ids_b))


class PathIdentityMissing(MultipathError):
    """A path reports no logical-unit designator, so it cannot be proven to be the disk."""

    def __init__(self, device: str, path: str) -> None:
        super().__init__(
            f"multipath device {device}: path {path} reports no logical-unit designator "
            "in VPD page 0x83, so nothing proves it leads to the same disk; configure a "
            "NAA or EUI-64 identity on the target"
        )
        self.device = device
        self.path = path


class AllPathsDown(MultipathError):
    """No path recovered within the hold time (PDORemovePeriod); the I/O is failed.

    Also raised by ``open()`` when not one path could be logged in
    (``at_open``): then no hold applies, the device never had a path.
    """

    def __init__(self, device: str, held_s: float, last_errors: Mapping[str, str],
                 *, at_open: bool = False) -> None:
        why = "; ".join(f"{p}: {e or 'no error recorded'}" for p, e in last_errors.items())
        if at_open:
            message = (f"multipath device {device}: no path could be logged in ({why}); "
                       "check the portals, target names, ACLs and CHAP of the device")
        else:
            message = (f"multipath device {device}: all paths down for {held_s:.3f} s, past "
                       f"the hold time (pdo_remove_period_s), so the I/O fails ({why}); "
                       "bring a path back or raise pdo_remove_period_s")
        super().__init__(message)
        self.device = device
        self.held_s = held_s
        self.last_errors = dict(last_errors)
        self.at_open = at_open


class MultipathCommandFailed(MultipathError):
    """A command ended with a status that belongs to the caller (not to a path)."""

    def __init__(self, device: str, path: str, op: str, status: int,
                 sense: SenseData | None, reason: str) -> None:
        super().__init__(
            f"multipath device {device}: {op} failed on path {path} with status "
            f"0x{status:02x}{f' ({sense})' if sense else ''}: {reason}"
        )
        self.device = device
        self.path = path
        self.status = status
        self.sense = sense


class DeviceClosed(MultipathError):
    """An I/O was issued to (or outlived) a closed multipath device."""

    def __init__(self, device: str) -> None:
        super().__init__(
            f"multipath device {device} is closed; open a new MultipathDevice to do I/O"
        )
