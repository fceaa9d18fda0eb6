"""A login or text negotiation seen from one side, initiator or target.

The model (RFC 7143 sections 6.2 and 6.3): both sides may originate keys in the
same exchange. A key this side offered is *pending* until the peer answers it;
the answer is checked against the offer (:func:`harness.iscsi.keys.resolve`). A
key the peer offers is answered from this side's preferences
(:func:`harness.iscsi.keys.negotiate`). Declarative keys are recorded, not
answered. Agreed values land in :attr:`Negotiation.parameters`. CHAP keys are not
negotiated: they are collected in :attr:`Negotiation.security` for
:mod:`harness.iscsi.chap`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from harness.iscsi.errors import NegotiationError
from harness.iscsi.keys import (
    IRRELEVANT,
    KEYS,
    NOT_UNDERSTOOD,
    REJECT,
    SECURITY_KEYS,
    KeyKind,
    SessionParameters,
    negotiate,
    resolve,
    validate,
)

OPERATIONAL_OFFER_ORDER = (
    "HeaderDigest", "DataDigest", "MaxConnections", "InitialR2T", "ImmediateData",
    "MaxRecvDataSegmentLength", "MaxBurstLength", "FirstBurstLength", "DefaultTime2Wait",
    "DefaultTime2Retain", "MaxOutstandingR2T", "DataPDUInOrder", "DataSequenceInOrder",
    "ErrorRecoveryLevel",
)
"""The operational keys an initiator typically offers, in a conventional order."""


class Negotiation:
    """One side of a negotiation: offers, answers, and the agreed parameters."""

    def __init__(self, *, role: str, preferences: Mapping[str, str] | None = None) -> None:
        if role not in ("initiator", "target"):
            raise NegotiationError(f"negotiation role {role!r} is neither initiator nor target")
        self.role = role
        self._peer_letter = "T" if role == "initiator" else "I"
        self.preferences = dict(preferences or {})
        for key, value in self.preferences.items():
            if key not in KEYS:
                continue
            if KEYS[key].kind is not KeyKind.LIST:
                validate(key, value)
        self.parameters = SessionParameters()
        self.security: dict[str, str] = {}
        self.agreed: dict[str, str] = {}
        self.rejected: dict[str, str] = {}
        """Keys the peer answered with Reject, NotUnderstood or Irrelevant."""
        self._pending: dict[str, str] = {}
        self._declared: set[str] = set()

    @property
    def pending(self) -> frozenset[str]:
        """Keys this side offered that the peer has not answered yet."""
        return frozenset(self._pending)

    def offer(self, keys: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """This side's values for ``keys`` (default: every preference), skipping keys
        already agreed or pending. Negotiated keys become pending; declarative
        keys take effect at once."""
        pairs: list[tuple[str, str]] = []
        for key in keys if keys is not None else self.preferences:
            rule = KEYS.get(key)
            declarative = rule is not None and rule.kind is KeyKind.DECLARATIVE
            if key in self._pending or key in self._declared or (
                    key in self.agreed and not declarative):
                continue
            value = self.preferences.get(key)
            if value is None:
                if rule is None or rule.default is None:
                    raise NegotiationError(
                        f"no value to offer for key {key}; set it in the preferences"
                    )
                value = rule.default
            pairs.append((key, value))
            if declarative:
                self._declared.add(key)
                self._agree(key, value, from_peer=False)
            else:
                self._pending[key] = value
        return pairs

    def receive(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Take the peer's pairs; returns this side's answers to the peer's offers."""
        answers: list[tuple[str, str]] = []
        seen: set[str] = set()
        for key, value in pairs:
            if key in seen:
                raise NegotiationError(
                    f"peer sent key {key} twice in one negotiation; RFC 7143 section 6.3 "
                    "forbids it"
                )
            seen.add(key)
            if key in SECURITY_KEYS:
                self.security[key] = value
                continue
            if key in self._pending:
                offered = self._pending.pop(key)
                agreed = resolve(key, offered, value)
                if value in (REJECT, NOT_UNDERSTOOD, IRRELEVANT):
                    self.rejected[key] = value
                self._agree(key, agreed, from_peer=False)
                continue
            rule = KEYS.get(key)
            if rule is not None and self._peer_letter not in rule.sender:
                raise NegotiationError(
                    f"peer ({'target' if self._peer_letter == 'T' else 'initiator'}) sent "
                    f"{key}, which only the {self.role} may send; the peer breaks RFC 7143"
                )
            if key in self.agreed and (rule is None or rule.kind is not KeyKind.DECLARATIVE):
                raise NegotiationError(
                    f"peer renegotiated {key}={value} after it was agreed as "
                    f"{self.agreed[key]}; RFC 7143 section 6.3 forbids it"
                )
            try:
                answer = negotiate(key, value, self.preferences.get(key), context=self.agreed)
            except NegotiationError:
                answer = REJECT
            if answer is None:
                self._agree(key, value, from_peer=True)
                continue
            answers.append((key, answer))
            if answer not in (REJECT, NOT_UNDERSTOOD, IRRELEVANT):
                self._agree(key, answer, from_peer=True)
            elif rule is not None and rule.default is not None:
                self._agree(key, rule.default, from_peer=True)
        return answers

    def _agree(self, key: str, value: str, *, from_peer: bool) -> None:
        self.agreed[key] = value
        self.parameters.apply(key, value, from_peer=from_peer)
