"""The I_T nexus: which initiator port talks to the logical unit through which target port.

An ``ItNexus`` names the initiator port as ``<initiator iqn>,i,0x<isid>`` and the
target port as ``<target iqn>,t,0x<tpgt>`` (RFC 7143 / SAM-5 iSCSI port names),
plus the relative target port identifier and the target port group that VPD 83h,
READ FULL STATUS and ALUA report. Names compare case-insensitively (iSCSI names
are normalised to lower case), so ``key`` is what state is indexed by.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def initiator_port_name(initiator: str, isid: int | str) -> str:
    """``<iqn>,i,0x<isid>`` with the ISID as 12 lower-case hex digits."""
    text = isid if isinstance(isid, str) else f"{isid:012x}"
    return f"{initiator},i,0x{text.lower().removeprefix('0x')}"


def target_port_name(target: str, tpgt: int) -> str:
    """``<iqn>,t,0x<tpgt>`` with the portal group tag as 4 hex digits."""
    return f"{target},t,0x{tpgt:04x}"


@dataclass(frozen=True, slots=True)
class ItNexus:
    initiator_port: str
    target_port: str
    relative_target_port_id: int = 1
    target_port_group: int = 1
    key: tuple[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key",
                           (self.initiator_port.lower(), self.target_port.lower()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ItNexus) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def initiator_name(self) -> str:
        return self.initiator_port.partition(",i,")[0]

    @property
    def target_name(self) -> str:
        return self.target_port.partition(",t,")[0]
