"""The reservation state of one logical unit as a value, and where APTPL keeps it.

``Registration`` binds a reservation key to an I_T nexus (an initiator port, or a
bare initiator name for a TransportID of format 0, through one target port or
every target port with ALL_TG_PT). ``Reservation`` is a type with one holder
registration, or none meaning every registrant (all-registrants types).
``PrState`` is the whole state as an immutable value with a JSON form: what an
HA device replicates and what ``AptplFile`` writes (temporary file, fsync,
rename, directory fsync) so it survives a power loss.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import SplitbrainError
from harness.scsi.reservations import PrType
from harness.target.nexus import ItNexus

ALL_PORTS = "*"
RegId = tuple[str, str]


class PrPersistenceError(SplitbrainError):
    """The APTPL file cannot be read or written."""


@dataclass(frozen=True, slots=True)
class Registration:
    key: int
    initiator_port: str            # "<iqn>,i,0x<isid>", or "<iqn>" for every port of a name
    target_port: str | None        # None: every target port (ALL_TG_PT)
    relative_target_port: int = 0

    @property
    def id(self) -> RegId:
        return (self.initiator_port.lower(),
                ALL_PORTS if self.target_port is None else self.target_port.lower())

    @property
    def all_tg_pt(self) -> bool:
        return self.target_port is None

    def covers(self, nexus: ItNexus) -> bool:
        ip, tp = nexus.key
        mine_i, mine_t = self.id
        if mine_t != ALL_PORTS and mine_t != tp:
            return False
        return mine_i == ip or ("," not in mine_i and ip.partition(",i,")[0] == mine_i)

    def overlaps(self, other: Registration) -> bool:
        (a_i, a_t), (b_i, b_t) = self.id, other.id
        if a_t != b_t and ALL_PORTS not in (a_t, b_t):
            return False
        return a_i == b_i or a_i.partition(",i,")[0] == b_i or b_i.partition(",i,")[0] == a_i

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "initiator_port": self.initiator_port,
                "target_port": self.target_port, "relative_target_port": self.relative_target_port}


@dataclass(frozen=True, slots=True)
class Reservation:
    pr_type: PrType
    holder: RegId | None           # None: every registrant holds it (all-registrants types)
    scope: int = 0


@dataclass(frozen=True, slots=True)
class PrState:
    """The complete reservation state of one logical unit, as a value."""

    generation: int = 0
    registrations: tuple[Registration, ...] = ()
    reservation: Reservation | None = None
    aptpl: bool = False
    legacy_holder: tuple[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        res = self.reservation
        return {
            "generation": self.generation, "aptpl": self.aptpl,
            "registrations": [r.to_json() for r in self.registrations],
            "reservation": None if res is None else {
                "type": int(res.pr_type), "scope": res.scope,
                "holder": None if res.holder is None else list(res.holder)},
            "legacy_holder": None if self.legacy_holder is None else list(self.legacy_holder),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PrState:
        res = raw.get("reservation")
        legacy = raw.get("legacy_holder")
        return cls(
            generation=int(raw["generation"]) & 0xFFFFFFFF,
            registrations=tuple(Registration(int(r["key"]), str(r["initiator_port"]),
                                             r["target_port"], int(r["relative_target_port"]))
                                for r in raw["registrations"]),
            reservation=None if res is None else Reservation(
                PrType(int(res["type"])),
                None if res["holder"] is None else (str(res["holder"][0]),
                                                    str(res["holder"][1])),
                int(res.get("scope", 0))),
            aptpl=bool(raw.get("aptpl", False)),
            legacy_holder=None if legacy is None else (str(legacy[0]), str(legacy[1])),
        )


class AptplFile:
    """Where a logical unit's reservation state survives a power loss (APTPL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def save(self, state: PrState) -> None:
        data = json.dumps(state.to_json(), sort_keys=True).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_directory(self.path.parent)

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        _fsync_directory(self.path.parent)

    def load(self) -> PrState | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PrPersistenceError(f"APTPL file {self.path}: cannot read ({exc.strerror})"
                                     ) from None
        try:
            return PrState.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise PrPersistenceError(
                f"APTPL file {self.path} is corrupt ({exc}); move it away to start with no "
                "reservations") from None


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.fsync(fd)
    os.close(fd)
