"""The base of every parsed CDB: a command knows its data direction and transfer length."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from harness.scsi.errors import CdbError


class Direction(Enum):
    """Which way a command's data phase flows, seen from the initiator."""

    NONE = "none"
    IN = "in"    # target to initiator (Data-In)
    OUT = "out"  # initiator to target (Data-Out)


@dataclass(frozen=True, slots=True)
class Command:
    """Base of every parsed CDB."""

    direction: ClassVar[Direction] = Direction.NONE

    def encode(self) -> bytes:
        raise NotImplementedError

    def transfer_length(self, block_size: int) -> int:
        """Bytes the data phase carries in ``direction`` (0 when there is none)."""
        return 0


def need(cdb: bytes, n: int) -> None:
    if len(cdb) < n:
        raise CdbError(
            f"CDB for opcode 0x{cdb[0]:02x} is {len(cdb)} bytes; it needs {n}", byte=0
        )
