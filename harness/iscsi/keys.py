"""Login and text keys (RFC 7143 sections 6 and 13): encoding, the key table, the
operational parameters of a session, and negotiation for either side.

The model: a text data segment is a sequence of ``key=value`` pairs, each ended
by a NUL byte, possibly spread over several PDUs (the C bit; see
:class:`TextAssembler`). Every key has a *kind* that fixes how an offer and an
answer combine into the agreed value:

========== =====================================================================
list       the acceptor answers the first value of the offer it supports
minimum    the smaller of the offer and the acceptor's value (numerical)
maximum    the larger of the two (numerical)
and / or   boolean result functions over ``Yes``/``No``
declarative each side states its own value; nothing is answered
========== =====================================================================

An acceptor may answer ``NotUnderstood`` (unknown key), ``Irrelevant`` (the key
does not matter given other keys, e.g. burst lengths in a discovery session) or
``Reject`` (no acceptable or a malformed value). :func:`negotiate` computes an
acceptor's answer and :func:`resolve` checks an answer against the offer; the
:class:`Negotiation` in :mod:`harness.iscsi.negotiation` drives whole exchanges
for the initiator and the target alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from harness.iscsi.errors import NegotiationError, ProtocolError

REJECT = "Reject"
IRRELEVANT = "Irrelevant"
NOT_UNDERSTOOD = "NotUnderstood"
SPECIAL_VALUES = frozenset({REJECT, IRRELEVANT, NOT_UNDERSTOOD})

MAX_KEY_NAME = 63
MAX_TEXT_LENGTH = 65536
"""Upper bound on one assembled text/login data segment (RFC 7143 section 6.6
lets the receiver refuse more than 64 KiB)."""

_KEY_NAME = re.compile(r"^[A-Za-z0-9.\-+@_]+$")


class KeyKind(Enum):
    """How an offer and an answer combine (RFC 7143 section 6.2)."""

    LIST = "list"
    MINIMUM = "minimum"
    MAXIMUM = "maximum"
    AND = "and"
    OR = "or"
    DECLARATIVE = "declarative"


@dataclass(frozen=True)
class KeyRule:
    """One key of RFC 7143 section 13: kind, legal values, default, who may send it."""

    name: str
    kind: KeyKind
    default: str | None
    sender: str = "IT"  # "I" initiator only, "T" target only, "IT" both
    minimum: int = 0
    maximum: int = 0
    values: tuple[str, ...] = ()
    irrelevant_in_discovery: bool = False
    leading_only: bool = False

    @property
    def numerical(self) -> bool:
        return self.kind in (KeyKind.MINIMUM, KeyKind.MAXIMUM)


def _rule(name: str, kind: KeyKind, default: str | None, **extra: object) -> KeyRule:
    return KeyRule(name, kind, default, **extra)  # type: ignore[arg-type]


_L, _MIN, _MAX, _AND, _OR, _D = (KeyKind.LIST, KeyKind.MINIMUM, KeyKind.MAXIMUM, KeyKind.AND,
                                 KeyKind.OR, KeyKind.DECLARATIVE)
_SEGMENT = {"minimum": 512, "maximum": (1 << 24) - 1}
_NORMAL = {"irrelevant_in_discovery": True}

KEYS: dict[str, KeyRule] = {rule.name: rule for rule in (
    _rule("HeaderDigest", _L, "None", values=("CRC32C", "None")),
    _rule("DataDigest", _L, "None", values=("CRC32C", "None")),
    _rule("MaxConnections", _MIN, "1", minimum=1, maximum=65535, leading_only=True, **_NORMAL),
    _rule("SendTargets", _D, None, sender="I"),
    _rule("TargetName", _D, None, leading_only=True),
    _rule("InitiatorName", _D, None, sender="I", leading_only=True),
    _rule("TargetAlias", _D, None, sender="T"),
    _rule("InitiatorAlias", _D, None, sender="I"),
    _rule("TargetAddress", _D, None, sender="T"),
    _rule("TargetPortalGroupTag", _D, None, sender="T", minimum=0, maximum=65535),
    _rule("InitialR2T", _OR, "Yes", leading_only=True, **_NORMAL),
    _rule("ImmediateData", _AND, "Yes", leading_only=True, **_NORMAL),
    _rule("MaxRecvDataSegmentLength", _D, "8192", **_SEGMENT),
    _rule("MaxBurstLength", _MIN, "262144", leading_only=True, **_SEGMENT, **_NORMAL),
    _rule("FirstBurstLength", _MIN, "65536", leading_only=True, **_SEGMENT, **_NORMAL),
    _rule("DefaultTime2Wait", _MAX, "2", minimum=0, maximum=3600, leading_only=True),
    _rule("DefaultTime2Retain", _MIN, "20", minimum=0, maximum=3600, leading_only=True),
    _rule("MaxOutstandingR2T", _MIN, "1", minimum=1, maximum=65535, leading_only=True,
          **_NORMAL),
    _rule("DataPDUInOrder", _OR, "Yes", leading_only=True, **_NORMAL),
    _rule("DataSequenceInOrder", _OR, "Yes", leading_only=True, **_NORMAL),
    _rule("ErrorRecoveryLevel", _MIN, "0", minimum=0, maximum=2, leading_only=True),
    _rule("SessionType", _D, "Normal", sender="I", values=("Discovery", "Normal"),
          leading_only=True),
    _rule("AuthMethod", _L, "None", values=("CHAP", "None"), leading_only=True),
    _rule("TaskReporting", _L, "RFC3720", values=("RFC3720", "ResponseFence", "FastAbort"),
          leading_only=True, **_NORMAL),
    _rule("iSCSIProtocolLevel", _MIN, "1", minimum=0, maximum=31, leading_only=True),
)}
"""Every standard key this implementation understands."""

OBSOLETE_KEYS = frozenset({"OFMarker", "IFMarker", "OFMarkInt", "IFMarkInt"})
"""RFC 3720 marker keys, answered ``Reject`` (RFC 7143 section 13.25)."""

SECURITY_KEYS = frozenset({"CHAP_A", "CHAP_I", "CHAP_C", "CHAP_N", "CHAP_R"})
"""Authentication keys, handled by :mod:`harness.iscsi.chap`, not negotiated here."""


# ------------------------------------------------------------------ text encoding


def encode_keys(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> bytes:
    """``key=value\\0`` for each pair, in order (RFC 7143 section 6)."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    out = bytearray()
    for key, value in items:
        if not _KEY_NAME.match(key) or len(key) > MAX_KEY_NAME:
            raise NegotiationError(
                f"text key {key!r} is not a legal iSCSI key name (letters, digits, "
                f"'.-+@_', at most {MAX_KEY_NAME} characters); rename it"
            )
        if "\x00" in value:
            raise NegotiationError(f"value of text key {key} contains a NUL byte; remove it")
        out += f"{key}={value}".encode() + b"\x00"
    return bytes(out)


def decode_keys(data: bytes) -> list[tuple[str, str]]:
    """The ``(key, value)`` pairs of a complete text data segment, in order."""
    pairs: list[tuple[str, str]] = []
    if not data:
        return pairs
    if data[-1:] != b"\x00":
        raise ProtocolError(
            f"text data segment of {len(data)} bytes does not end with NUL; the peer split "
            "a key=value pair without setting the C bit"
        )
    for raw in data[:-1].split(b"\x00"):
        if not raw:  # tolerate padding-like empty strings between pairs
            continue
        key, sep, value = raw.partition(b"=")
        name = key.decode("ascii", "replace")
        if not sep or not _KEY_NAME.match(name) or len(name) > MAX_KEY_NAME:
            raise ProtocolError(
                f"malformed text key-value pair {raw[:80]!r}; expected key=value with a "
                "legal key name"
            )
        pairs.append((name, value.decode("utf-8", "replace")))
    return pairs


def split_text(data: bytes, max_segment: int) -> list[bytes]:
    """Cut an encoded text segment into chunks of at most ``max_segment`` bytes; every
    chunk but the last goes out with the C bit set."""
    if max_segment <= 0:
        raise NegotiationError(f"cannot split text into {max_segment}-byte segments")
    return [data[i : i + max_segment] for i in range(0, len(data), max_segment)] or [b""]


class TextAssembler:
    """Collects the data segments of Login/Text PDUs sent with the C bit set.

    ``feed`` returns ``None`` while more PDUs are announced and the decoded pairs
    once a PDU arrives with C clear.
    """

    def __init__(self, limit: int = MAX_TEXT_LENGTH) -> None:
        self.limit = limit
        self._buffer = bytearray()

    @property
    def pending(self) -> bool:
        """Whether a continued text is partially received."""
        return bool(self._buffer)

    def feed(self, data: bytes, *, continue_: bool) -> list[tuple[str, str]] | None:
        self._buffer += data
        if len(self._buffer) > self.limit:
            size = len(self._buffer)
            self._buffer.clear()
            raise ProtocolError(
                f"continued text reached {size} bytes, above the {self.limit}-byte limit; "
                "the peer sends an endless text negotiation"
            )
        if continue_:
            return None
        complete = bytes(self._buffer)
        self._buffer.clear()
        return decode_keys(complete)


# ------------------------------------------------------------------ values


def parse_number(value: str) -> int:
    """A numerical value: decimal or ``0x`` hexadecimal (RFC 7143 section 6.1)."""
    text = value.strip()
    try:
        if text[:2] in ("0x", "0X"):
            return int(text[2:], 16)
        if text.isdigit():
            return int(text)
    except ValueError:
        pass
    raise NegotiationError(f"{value!r} is not an iSCSI numerical value; use decimal or 0x hex")


def parse_boolean(value: str) -> bool:
    if value == "Yes":
        return True
    if value == "No":
        return False
    raise NegotiationError(f"{value!r} is not an iSCSI boolean; use Yes or No")


def boolean(value: bool) -> str:
    return "Yes" if value else "No"


def _in_range(rule: KeyRule, number: int) -> bool:
    return rule.minimum <= number <= rule.maximum


def _numbers(rule: KeyRule, value: str) -> tuple[int, int]:
    """The (low, high) bounds of a numerical value or a ``low~high`` range."""
    low_text, tilde, high_text = value.partition("~")
    low = parse_number(low_text)
    high = parse_number(high_text) if tilde else low
    if low > high or not (_in_range(rule, low) and _in_range(rule, high)):
        raise NegotiationError(
            f"{rule.name}={value} is outside the legal range {rule.minimum}..{rule.maximum}"
        )
    return low, high


def validate(key: str, value: str) -> None:
    """Raise :class:`NegotiationError` if ``value`` is illegal for a known key."""
    rule = KEYS.get(key)
    if rule is None or value in SPECIAL_VALUES:
        return
    if rule.numerical or (rule.kind is KeyKind.DECLARATIVE and rule.maximum):
        _numbers(rule, value)
    elif rule.kind in (KeyKind.AND, KeyKind.OR):
        parse_boolean(value)
    elif rule.kind is KeyKind.DECLARATIVE and rule.values and value not in rule.values:
        raise NegotiationError(f"{key}={value} is not one of {', '.join(rule.values)}")


# ------------------------------------------------------------------ negotiation


def negotiate(key: str, offered: str, own: str | None = None, *,
              context: Mapping[str, str] | None = None) -> str | None:
    """The acceptor's answer to the offer ``key=offered``.

    ``own`` is the acceptor's own value (for a list key, the comma-separated values
    it supports in its order of preference); ``None`` means the RFC default.
    ``context`` holds keys already agreed (``SessionType``, ``InitialR2T``, ...) to
    decide ``Irrelevant``. Returns ``None`` for declarative keys (no answer).
    """
    context = context or {}
    if key in OBSOLETE_KEYS:
        return REJECT
    rule = KEYS.get(key)
    if rule is None:
        return NOT_UNDERSTOOD
    if rule.kind is KeyKind.DECLARATIVE:
        validate(key, offered)
        return None
    if rule.irrelevant_in_discovery and context.get("SessionType") == "Discovery":
        return IRRELEVANT
    if (key == "FirstBurstLength" and context.get("InitialR2T") == "Yes"
            and context.get("ImmediateData") == "No"):
        return IRRELEVANT
    mine = own if own is not None else rule.default
    if mine is None:  # only declaratives lack a default, and they returned above
        return REJECT
    try:
        if rule.kind is KeyKind.LIST:
            acceptable = [v.strip() for v in mine.split(",")]
            for value in offered.split(","):
                if value in acceptable and (not rule.values or value in rule.values):
                    return value
            return REJECT
        if rule.numerical:
            low, high = _numbers(rule, offered)
            mine_number = parse_number(mine)
            if "~" in offered:  # a range: the acceptor picks its value inside it
                return str(mine_number) if low <= mine_number <= high else REJECT
            pick = min if rule.kind is KeyKind.MINIMUM else max
            return str(pick(low, mine_number))
        theirs, ours = parse_boolean(offered), parse_boolean(mine)
        return boolean(theirs and ours if rule.kind is KeyKind.AND else theirs or ours)
    except NegotiationError:
        return REJECT


def resolve(key: str, offered: str, answer: str) -> str:
    """The agreed value of ``key`` after the originator offered ``offered`` and the
    acceptor answered ``answer``; raises :class:`NegotiationError` for an answer the
    offer does not allow (RFC 7143 section 6.2)."""
    rule = KEYS.get(key)
    if answer in SPECIAL_VALUES or rule is None:
        # Reject / NotUnderstood / Irrelevant: the key keeps its default value.
        return rule.default if rule is not None and rule.default is not None else answer
    if rule.kind is KeyKind.DECLARATIVE:
        return answer
    legal = True
    if rule.kind is KeyKind.LIST:
        legal = answer in offered.split(",")
    elif rule.numerical:
        low, high = _numbers(rule, offered)
        value = parse_number(answer)
        if "~" in offered:
            legal = low <= value <= high
        else:
            legal = _in_range(rule, value) and (
                value <= high if rule.kind is KeyKind.MINIMUM else value >= low)
    else:
        theirs, mine = parse_boolean(answer), parse_boolean(offered)
        # AND: an offer of No leaves only No; OR: an offer of Yes leaves only Yes.
        legal = theirs == mine or (rule.kind is KeyKind.AND and mine) or (
            rule.kind is KeyKind.OR and not mine)
    if not legal:
        raise NegotiationError(
            f"peer answered {key}={answer} to our offer {key}={offered}, which the "
            f"{rule.kind.value} rule of RFC 7143 does not allow; the peer negotiates wrongly"
        )
    return answer


# ------------------------------------------------------------------ session parameters


@dataclass
class SessionParameters:
    """The operational parameters of one session/connection, RFC 7143 defaults.

    Seen from one side: ``max_recv_data_segment_length`` is what this side declared
    it can receive, ``peer_max_recv_data_segment_length`` what the peer declared,
    which bounds every data segment this side sends.
    """

    header_digest: bool = False
    data_digest: bool = False
    max_connections: int = 1
    initial_r2t: bool = True
    immediate_data: bool = True
    max_recv_data_segment_length: int = 8192
    peer_max_recv_data_segment_length: int = 8192
    max_burst_length: int = 262144
    first_burst_length: int = 65536
    default_time2wait: int = 2
    default_time2retain: int = 20
    max_outstanding_r2t: int = 1
    data_pdu_in_order: bool = True
    data_sequence_in_order: bool = True
    error_recovery_level: int = 0
    task_reporting: str = "RFC3720"
    iscsi_protocol_level: int = 1
    session_type: str = "Normal"
    auth_method: str = "None"
    target_name: str | None = None
    initiator_name: str | None = None
    target_alias: str | None = None
    initiator_alias: str | None = None
    target_portal_group_tag: int | None = None

    def apply(self, key: str, value: str, *, from_peer: bool) -> None:
        """Record the agreed (or declared) ``value`` of ``key``."""
        if key == "MaxRecvDataSegmentLength":
            attr = "peer_max_recv_data_segment_length" if from_peer else (
                "max_recv_data_segment_length")
            setattr(self, attr, parse_number(value))
            return
        target = _PARAMETER_OF.get(key)
        if target is None or value in SPECIAL_VALUES:
            return
        attr, kind = target
        if kind is bool:
            setattr(self, attr, parse_boolean(value))
        elif kind is int:
            setattr(self, attr, parse_number(value))
        elif kind == "digest":
            setattr(self, attr, value == "CRC32C")
        else:
            setattr(self, attr, value)


_PARAMETER_OF: dict[str, tuple[str, object]] = {
    "HeaderDigest": ("header_digest", "digest"),
    "DataDigest": ("data_digest", "digest"),
    "MaxConnections": ("max_connections", int),
    "InitialR2T": ("initial_r2t", bool),
    "ImmediateData": ("immediate_data", bool),
    "MaxBurstLength": ("max_burst_length", int),
    "FirstBurstLength": ("first_burst_length", int),
    "DefaultTime2Wait": ("default_time2wait", int),
    "DefaultTime2Retain": ("default_time2retain", int),
    "MaxOutstandingR2T": ("max_outstanding_r2t", int),
    "DataPDUInOrder": ("data_pdu_in_order", bool),
    "DataSequenceInOrder": ("data_sequence_in_order", bool),
    "ErrorRecoveryLevel": ("error_recovery_level", int),
    "TaskReporting": ("task_reporting", str),
    "iSCSIProtocolLevel": ("iscsi_protocol_level", int),
    "SessionType": ("session_type", str),
    "AuthMethod": ("auth_method", str),
    "TargetName": ("target_name", str),
    "InitiatorName": ("initiator_name", str),
    "TargetAlias": ("target_alias", str),
    "InitiatorAlias": ("initiator_alias", str),
    "TargetPortalGroupTag": ("target_portal_group_tag", int),
}
