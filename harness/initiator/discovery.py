"""SendTargets discovery (RFC 7143 section 4.3 and appendix C).

A discovery session logs in with ``SessionType=Discovery`` (no target name),
sends one Text Request ``SendTargets=All`` (or a target name) and reads back a
list of ``TargetName=`` keys, each followed by the ``TargetAddress=`` portals
(``address:port,tpgt``) it is reachable at. The answer may span several Text
Responses; :meth:`Session.text_request` collects them.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.initiator.errors import ProtocolError
from harness.initiator.login import ChapSecrets
from harness.initiator.recorder import PcapRecorder
from harness.initiator.session import DEFAULT_INITIATOR, Session, SessionTimeouts


@dataclass(frozen=True)
class Portal:
    """One network portal of a target: address, TCP port, target portal group tag."""

    address: str
    port: int
    group_tag: int | None

    @classmethod
    def parse(cls, text: str, default_port: int = 3260) -> Portal:
        """``10.0.0.1:3260,1``, ``[fe80::1]:3260,1`` or a bare address."""
        where, _, tag = text.partition(",")
        if where.startswith("["):
            host, _, rest = where[1:].partition("]")
            port_text = rest.lstrip(":")
        else:
            host, _, port_text = where.rpartition(":") if ":" in where else (where, "", "")
        try:
            port = int(port_text) if port_text else default_port
            group = int(tag) if tag else None
        except ValueError:
            raise ProtocolError(f"TargetAddress {text!r} is not address[:port][,tpgt]; the "
                                "target's discovery answer is malformed") from None
        return cls(host, port, group)

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        tag = f",{self.group_tag}" if self.group_tag is not None else ""
        return f"{host}:{self.port}{tag}"


@dataclass(frozen=True)
class DiscoveredTarget:
    """A target named in a SendTargets answer, with the portals it listed."""

    name: str
    portals: tuple[Portal, ...]


def parse_send_targets(pairs: list[tuple[str, str]], default_port: int = 3260
                       ) -> list[DiscoveredTarget]:
    """Group SendTargets key pairs into targets (a TargetAddress belongs to the last name)."""
    targets: list[tuple[str, list[Portal]]] = []
    for key, value in pairs:
        if key == "TargetName":
            targets.append((value, []))
        elif key == "TargetAddress":
            if not targets:
                raise ProtocolError(f"SendTargets answer lists TargetAddress={value} before any "
                                    "TargetName; the target's discovery answer is malformed")
            targets[-1][1].append(Portal.parse(value, default_port))
    return [DiscoveredTarget(name, tuple(portals)) for name, portals in targets]


async def send_targets(host: str, port: int = 3260, *, which: str = "All",
                       initiator_name: str = DEFAULT_INITIATOR,
                       chap: ChapSecrets | None = None,
                       timeouts: SessionTimeouts | None = None,
                       recorder: PcapRecorder | None = None) -> list[DiscoveredTarget]:
    """Log in a discovery session at ``host:port``, ask SendTargets, log out."""
    session = Session(host, port, None, initiator_name=initiator_name, chap=chap,
                      timeouts=timeouts, recorder=recorder)
    async with session:
        pairs = await session.text_request([("SendTargets", which)])
    return parse_send_targets(pairs, port)
