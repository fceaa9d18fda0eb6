"""Black-hole rules in a dedicated nftables table, found and removed by their tag.

The model: splitbrain owns exactly one table, ``table inet splitbrain``, with
three base chains (``input``, ``output``, ``forward``, policy accept). A link
fault is a set of ``drop`` rules in that table, every one carrying the comment
``splitbrain:<tag>`` where the tag is the fault id from the fault journal. Heal
deletes the rules with that tag by handle and nothing else; rules without our
comment prefix are foreign and never touched. A dropped packet is silently
discarded (no RST, no ICMP), which is the hardest failure for an initiator to
detect.

``NftTable`` runs ``nft`` through any ``CommandRunner``: over SSH on a real
Linux host (``LinuxHost.nft``) or inside a lab network namespace
(``harness.lab.netns``). Rules are passed to nft as an argument vector; every
value that reaches nft is validated first (addresses through ``ipaddress``,
interface names by the kernel's rules, tags by a strict alphabet), so no value
can change the rule's meaning.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.remote.errors import ForeignState, OutputFormatError, UnsafeArgument
from harness.remote.result import CommandRunner

FAMILY = "inet"
TABLE = "splitbrain"
TAG_PREFIX = "splitbrain:"
CHAINS = ("input", "output", "forward")
PROTOCOLS = ("tcp", "udp")

_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,99}")
_IFNAME_FORBIDDEN = re.compile(r"[\s/:\"\\]")

Address = ipaddress.IPv4Network | ipaddress.IPv6Network


def check_tag(tag: str) -> str:
    """Return ``tag`` if it can be an nft comment suffix, else raise ``UnsafeArgument``."""
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise UnsafeArgument(
            f"fault tag {tag!r} is not usable in an nftables comment: use 1-100 characters "
            "from letters, digits and . _ : @ + - (starting with a letter or digit)"
        )
    return tag


def check_interface(name: str) -> str:
    """Return ``name`` if it is a valid Linux interface name that nft can quote, else raise."""
    if (
        not isinstance(name, str)
        or not 0 < len(name.encode()) <= 15
        or name in {".", ".."}
        or _IFNAME_FORBIDDEN.search(name)
    ):
        raise UnsafeArgument(
            f"interface name {name!r} is not a valid Linux interface name: use at most 15 "
            "characters without whitespace, '/', ':', quotes or backslashes"
        )
    return name


def parse_address(value: str) -> Address:
    """An address or CIDR network as given in an inventory, or ``UnsafeArgument``."""
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise UnsafeArgument(
            f"{value!r} is not an IP address or network: give e.g. 172.16.10.2 or 10.0.0.0/24"
        ) from None


@dataclass(frozen=True)
class DropRule:
    """One drop rule: which chain, and what it matches (every given field must match)."""

    chain: str
    tag: str
    source: Address | None = None
    destination: Address | None = None
    protocol: str | None = None
    sport: int | None = None
    dport: int | None = None
    interface: str | None = None
    reset: bool = False  # answer TCP with a reset (a connection cut) instead of silence

    def __post_init__(self) -> None:
        if self.chain not in CHAINS:
            raise UnsafeArgument(f"nft chain {self.chain!r} is not one of {', '.join(CHAINS)}")
        check_tag(self.tag)
        if self.interface is not None:
            check_interface(self.interface)
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise UnsafeArgument(f"protocol {self.protocol!r} is not tcp or udp")
        for port in (self.sport, self.dport):
            if port is not None and not (isinstance(port, int) and 0 < port < 65536):
                raise UnsafeArgument(f"port {port!r} is not in 1..65535")
        if (self.sport or self.dport) and self.protocol is None:
            raise UnsafeArgument("a port match needs protocol='tcp' or 'udp'")
        if self.reset and self.protocol != "tcp":
            raise UnsafeArgument("a reset (cut) needs protocol='tcp' and a port")
        families = {a.version for a in (self.source, self.destination) if a is not None}
        if len(families) > 1:
            raise UnsafeArgument("source and destination must be the same IP version")

    def expression(self) -> list[str]:
        """The rule body as nft tokens, ending in ``drop comment "splitbrain:<tag>"``."""
        tokens: list[str] = []
        if self.interface is not None:
            key = "oifname" if self.chain == "output" else "iifname"
            tokens += [key, f'"{self.interface}"']
        for key, addr in (("saddr", self.source), ("daddr", self.destination)):
            if addr is not None:
                tokens += ["ip" if addr.version == 4 else "ip6", key, _format(addr)]
        if self.protocol is not None:
            if self.sport is None and self.dport is None:
                tokens += ["meta", "l4proto", self.protocol]
            if self.sport is not None:
                tokens += [self.protocol, "sport", str(self.sport)]
            if self.dport is not None:
                tokens += [self.protocol, "dport", str(self.dport)]
        if self.reset:  # never reject a reset: ours must reach the local socket
            tokens += ["tcp", "flags", "&", "rst", "==", "0"]
        # the counter proves the fault took effect: packets it dropped (read by rules())
        verdict = ["reject", "with", "tcp", "reset"] if self.reset else ["drop"]
        return [*tokens, "counter", *verdict, "comment", f'"{TAG_PREFIX}{self.tag}"']


def _format(addr: Address) -> str:
    full = addr.prefixlen == addr.max_prefixlen
    return str(addr.network_address) if full else str(addr)


def black_hole_rules(
    tag: str,
    *,
    peer: str | None = None,
    port: int | None = None,
    protocol: str = "tcp",
    interface: str | None = None,
    reset: bool = False,
) -> list[DropRule]:
    """The rules that silently drop every packet to and from ``peer`` (and/or ``port``).

    With a port, a flow is dropped when either end uses that port, in both
    directions, so both connections *to* a service on this host and connections
    *from* this host to that service on the peer are black-holed. With ``reset``,
    TCP is answered with a reset instead of silence: a cut.
    """
    if peer is None and port is None and interface is None:
        raise UnsafeArgument("a black hole needs at least a peer, a port or an interface")
    addr = parse_address(peer) if peer is not None else None
    proto = protocol if port is not None else None
    rules: list[DropRule] = []
    for chain, src, dst in (("input", addr, None), ("output", None, addr)):
        if port is None:
            rules.append(DropRule(chain, tag, src, dst, interface=interface, reset=reset))
        else:
            rules.append(DropRule(chain, tag, src, dst, proto, dport=port, interface=interface,
                                  reset=reset))
            rules.append(DropRule(chain, tag, src, dst, proto, sport=port, interface=interface,
                                  reset=reset))
    return rules


@dataclass(frozen=True)
class TaggedRule:
    """A rule found in our table: where it is, its handle, and the tag it carries."""

    chain: str
    handle: int
    tag: str | None  # None: a foreign rule (no splitbrain comment)
    packets: int = field(default=0, compare=False)  # what its counter dropped so far


class NftTable:
    """``table inet splitbrain`` on one host (or namespace), driven through a runner."""

    def __init__(self, runner: CommandRunner, *, nft: Sequence[str] = ("nft",)) -> None:
        self.runner = runner
        self.nft = tuple(nft)

    def _nft(self, *args: str, check: bool = True):  # -> CommandResult
        return self.runner.run_argv([*self.nft, *args], check=check)

    @staticmethod
    def _ensure_commands() -> list[list[str]]:
        commands = [["add", "table", FAMILY, TABLE]]
        for chain in CHAINS:
            commands.append([
                "add", "chain", FAMILY, TABLE, chain,
                "{", "type", "filter", "hook", chain, "priority", "-10", ";",
                "policy", "accept", ";", "}",
            ])
        return commands

    def _transaction(self, commands: Sequence[Sequence[str]]) -> None:
        """Run ``commands`` as one nft invocation: one round trip, applied atomically."""
        if not commands:
            return
        words: list[str] = []
        for command in commands:
            words += [*command, ";"]
        self._nft(*words[:-1])

    def ensure(self) -> None:
        """Create the table and its base chains; a no-op when they exist."""
        self._transaction(self._ensure_commands())

    def add(self, rules: Sequence[DropRule]) -> list[TaggedRule]:
        """Install ``rules`` (creating the table if needed) in one atomic transaction;
        returns the rules now carrying their tags, read back from the host."""
        adds = [["add", "rule", FAMILY, TABLE, r.chain, *r.expression()] for r in rules]
        self._transaction([*self._ensure_commands(), *adds])
        tags = {r.tag for r in rules}
        return [r for r in self.rules() if r.tag in tags]

    def black_hole(self, tag: str, **match: object) -> list[TaggedRule]:
        """Add the ``black_hole_rules(tag, **match)``; see there for what they match."""
        return self.add(black_hole_rules(tag, **match))  # type: ignore[arg-type]

    def exists(self) -> bool:
        return self._nft("list", "table", FAMILY, TABLE, check=False).ok

    def rules(self, tag: str | None = None) -> list[TaggedRule]:
        """Every rule in our table (or only those tagged ``tag``), in chain order."""
        result = self._nft("-j", "list", "table", FAMILY, TABLE, check=False)
        if not result.ok:
            if "No such file or directory" in result.stderr or "does not exist" in result.stderr:
                return []
            result.check()
        found = parse_rules(result.stdout, where=result.host)
        return found if tag is None else [r for r in found if r.tag == check_tag(tag)]

    def remove(self, tag: str) -> int:
        """Delete the rules tagged ``tag``; returns how many. Deleting nothing is fine."""
        mine = self.rules(tag)
        if not mine:
            return 0
        self._transaction([["delete", "rule", FAMILY, TABLE, r.chain, "handle", str(r.handle)]
                           for r in mine])
        left = self.rules(tag)
        if left:
            raise ForeignState(
                f"{len(left)} nft rules tagged {tag!r} are still in table {FAMILY} {TABLE} on "
                f"{self.runner.name} after deleting them: inspect with 'nft -a list table "
                f"{FAMILY} {TABLE}'"
            )
        return len(mine)

    def drop_table(self) -> bool:
        """Delete the whole table if every rule in it is ours; returns whether it existed."""
        if not self.exists():
            return False
        foreign = [r for r in self.rules() if r.tag is None]
        if foreign:
            raise ForeignState(
                f"table {FAMILY} {TABLE} on {self.runner.name} holds {len(foreign)} rules without "
                f"a {TAG_PREFIX} comment; they are not ours, so the table is left in place: "
                "remove them by hand first"
            )
        self._nft("delete", "table", FAMILY, TABLE)
        return True


def parse_rules(text: str, *, where: str = "host") -> list[TaggedRule]:
    """Rules of ``nft -j list table inet splitbrain`` output."""
    try:
        doc = json.loads(text)
        items = doc["nftables"]
    except (ValueError, KeyError, TypeError):
        raise OutputFormatError(
            f"'nft -j list table {FAMILY} {TABLE}' on {where} did not print nftables JSON: "
            "check that nft is nftables >= 0.9 with JSON support"
        ) from None
    found: list[TaggedRule] = []
    for item in items:
        rule = item.get("rule") if isinstance(item, dict) else None
        if not rule or rule.get("table") != TABLE or rule.get("family") != FAMILY:
            continue
        comment = rule.get("comment")
        tag = (
            comment[len(TAG_PREFIX):]
            if isinstance(comment, str) and comment.startswith(TAG_PREFIX)
            else None
        )
        packets = sum(int(e["counter"].get("packets", 0)) for e in rule.get("expr", [])
                      if isinstance(e, dict) and isinstance(e.get("counter"), dict))
        found.append(TaggedRule(chain=str(rule["chain"]), handle=int(rule["handle"]), tag=tag,
                                packets=packets))
    return found
