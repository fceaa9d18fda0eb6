"""Which commands the logical unit supports, for REPORT SUPPORTED OPERATION CODES.

The list is derived from what ``harness.scsi.cdb`` parses and the logical unit
serves, so it cannot drift from the code. The CDB usage map of each command is
computed from its own encoder: every field is set to its largest encodable value
and to zero, and the bits that change are the bits the device server examines;
the operation code, the service action and the NACA bit of the control byte (the
one control bit checked) complete it. PERSISTENT RESERVE IN/OUT are reported
once per service action, as SPC-4 asks for commands with service actions.
"""

from __future__ import annotations

import dataclasses
import struct
from functools import cache

from harness.scsi import cdb as c
from harness.scsi.opcodes import Opcode
from harness.scsi.reservations import PrInAction, PrOutAction
from harness.scsi.supported_opcodes import CommandDescriptor, CommandTimeouts

_CANDIDATES = (2**64 - 1, 2**32 - 1, 2**24 - 1, 2**16 - 1, 255, 31, 15, 7, 3, 1)
_SELECTORS = {"size", "action"}  # fields that pick the layout or the service action
TIMEOUTS = CommandTimeouts(nominal=0, recommended=30)


def _template(cls: type[c.Command], opcode: int, size: int) -> c.Command:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(size=size) if "size" in names else cls()  # type: ignore[call-arg]


def _usage(cls: type[c.Command], opcode: int, sa: int | None, size: int) -> bytes:
    base = _template(cls, opcode, size)
    if sa is not None and "action" in {f.name for f in dataclasses.fields(cls)}:  # type: ignore
        base = dataclasses.replace(base, action=sa)  # type: ignore[type-var]
    used = bytearray(len(base.encode()))
    for f in dataclasses.fields(base):  # type: ignore[arg-type]
        if f.name in _SELECTORS or not f.init:
            continue
        value = getattr(base, f.name)
        options = (True,) if isinstance(value, bool) else _CANDIDATES if isinstance(
            value, int) else ()
        for cand in options:
            try:
                high = dataclasses.replace(base, **{f.name: cand}).encode()  # type: ignore
                low = dataclasses.replace(base, **{f.name: type(value)(0)}).encode()  # type: ignore
            except (struct.error, OverflowError, ValueError):
                continue
            for i, (a, b) in enumerate(zip(high, low, strict=True)):
                used[i] |= a ^ b
            break
    used[0] = opcode
    if sa is not None:
        used[1] = (used[1] & 0xE0) | sa
    used[-1] |= 0x04
    return bytes(used)


@cache
def supported() -> dict[tuple[int, int | None], tuple[CommandDescriptor, bytes]]:
    """(opcode, service action) -> (descriptor without timeouts, CDB usage data)."""
    out: dict[tuple[int, int | None], tuple[CommandDescriptor, bytes]] = {}
    for opcode, sa, cls, size in c.known_commands():
        if opcode == Opcode.PERSISTENT_RESERVE_IN:
            actions: tuple[int | None, ...] = tuple(PrInAction)
        elif opcode == Opcode.PERSISTENT_RESERVE_OUT:
            actions = tuple(PrOutAction)
        else:
            actions = (sa,)
        for action in actions:
            out[(opcode, action)] = (CommandDescriptor(opcode, action, size),
                                     _usage(cls, opcode, action, size))
    return out


def has_service_actions(opcode: int) -> bool:
    return any(op == opcode and sa is not None for op, sa in supported())
