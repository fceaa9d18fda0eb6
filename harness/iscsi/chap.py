"""CHAP authentication for iSCSI login (RFC 7143 section 12.1.3, RFC 1994), both ends.

The exchange, in the security negotiation stage after ``AuthMethod=CHAP``::

    initiator -> CHAP_A=<algorithms, preferred first>
    target    -> CHAP_A=<chosen> CHAP_I=<identifier> CHAP_C=<challenge>
    initiator -> CHAP_N=<name> CHAP_R=<response> [CHAP_I=<id> CHAP_C=<challenge>]  (mutual)
    target    -> [CHAP_N=<name> CHAP_R=<response>]                                 (mutual)

The response is ``H(identifier byte || secret || challenge)`` with H = MD5 (5),
SHA-1 (6), SHA-256 (7) or SHA3-256 (8). Binary values travel as ``0x`` hex or
``0b`` base64. Responses are compared in constant time, and a target refuses a
mutual challenge equal to its own (a reflection attack).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum

from harness.iscsi.errors import AuthenticationError


class ChapAlgorithm(IntEnum):
    """CHAP_A values (IANA "PPP Authentication Algorithms")."""

    MD5 = 5
    SHA1 = 6
    SHA256 = 7
    SHA3_256 = 8

    def digest(self, data: bytes) -> bytes:
        return hashlib.new(_HASH_NAMES[self], data).digest()

    @property
    def size(self) -> int:
        return hashlib.new(_HASH_NAMES[self]).digest_size


_HASH_NAMES = {ChapAlgorithm.MD5: "md5", ChapAlgorithm.SHA1: "sha1",
               ChapAlgorithm.SHA256: "sha256", ChapAlgorithm.SHA3_256: "sha3_256"}

MIN_CHALLENGE = 16


def encode_binary(value: bytes, *, use_base64: bool = False) -> str:
    """A binary value as iSCSI text: ``0x`` + hex, or ``0b`` + base64."""
    if use_base64:
        return "0b" + base64.b64encode(value).decode("ascii")
    return "0x" + value.hex()


def decode_binary(text: str) -> bytes:
    """The bytes of an iSCSI binary value in ``0x``/``0X`` hex or ``0b``/``0B`` base64."""
    prefix, body = text[:2].lower(), text[2:]
    try:
        if prefix == "0x":
            return bytes.fromhex(body if len(body) % 2 == 0 else "0" + body)
        if prefix == "0b":
            return base64.b64decode(body, validate=True)
    except (ValueError, binascii.Error):
        pass
    raise AuthenticationError(
        f"CHAP value {text[:40]!r} is not 0x-hex or 0b-base64 binary; the peer's CHAP is broken"
    )


def chap_response(algorithm: ChapAlgorithm, identifier: int, secret: bytes,
                  challenge: bytes) -> bytes:
    """The CHAP response H(identifier || secret || challenge) of RFC 1994."""
    return algorithm.digest(bytes([identifier]) + secret + challenge)


@dataclass(frozen=True)
class ChapCredentials:
    """A CHAP name and its secret (the secret never appears in ``repr``)."""

    name: str
    secret: bytes

    def __post_init__(self) -> None:
        if isinstance(self.secret, str):
            object.__setattr__(self, "secret", self.secret.encode())
        if not self.secret:
            raise AuthenticationError(f"CHAP secret for {self.name!r} is empty; set one")

    def __repr__(self) -> str:
        return f"ChapCredentials(name={self.name!r}, secret=<{len(self.secret)} bytes>)"


def _required(received: Mapping[str, str], key: str, side: str) -> str:
    value = received.get(key)
    if value is None:
        raise AuthenticationError(f"{side} did not send {key} during CHAP; login cannot proceed")
    return value


def _identifier(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if not 0 <= value <= 255:
        raise AuthenticationError(f"CHAP_I={text!r} is not an identifier in 0..255")
    return value


class ChapInitiator:
    """The initiator's half: answers the target's challenge, optionally challenges back."""

    def __init__(self, credentials: ChapCredentials, *,
                 target: ChapCredentials | None = None,
                 algorithms: Iterable[ChapAlgorithm] = (ChapAlgorithm.SHA256, ChapAlgorithm.MD5),
                 random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self.credentials = credentials
        self.target = target  # set for mutual CHAP: the name and secret the target must prove
        self.algorithms = tuple(algorithms)
        self._random = random_bytes
        self._algorithm: ChapAlgorithm | None = None
        self._challenge: tuple[int, bytes] | None = None

    @property
    def mutual(self) -> bool:
        return self.target is not None

    def start(self) -> list[tuple[str, str]]:
        """The first CHAP keys: the offered algorithms."""
        return [("CHAP_A", ",".join(str(int(a)) for a in self.algorithms))]

    def respond(self, received: Mapping[str, str]) -> list[tuple[str, str]]:
        """Answer the target's CHAP_A/CHAP_I/CHAP_C; adds a challenge when mutual."""
        chosen = _required(received, "CHAP_A", "target")
        try:
            algorithm = ChapAlgorithm(int(chosen))
        except ValueError:
            algorithm = None
        if algorithm is None or algorithm not in self.algorithms:
            raise AuthenticationError(
                f"target chose CHAP_A={chosen}, which this initiator did not offer "
                f"({','.join(str(int(a)) for a in self.algorithms)})"
            )
        identifier = _identifier(_required(received, "CHAP_I", "target"))
        challenge = decode_binary(_required(received, "CHAP_C", "target"))
        self._algorithm = algorithm
        response = chap_response(algorithm, identifier, self.credentials.secret, challenge)
        pairs = [("CHAP_N", self.credentials.name), ("CHAP_R", encode_binary(response))]
        if self.target is not None:
            my_identifier = self._random(1)[0]
            my_challenge = self._random(max(MIN_CHALLENGE, algorithm.size))
            self._challenge = (my_identifier, my_challenge)
            pairs += [("CHAP_I", str(my_identifier)), ("CHAP_C", encode_binary(my_challenge))]
        return pairs

    def verify(self, received: Mapping[str, str]) -> None:
        """Check the target's mutual CHAP_N/CHAP_R (no-op for one-way CHAP)."""
        if self.target is None:
            return
        if self._challenge is None or self._algorithm is None:
            raise AuthenticationError("mutual CHAP verify called before the initiator responded")
        name = _required(received, "CHAP_N", "target")
        answer = decode_binary(_required(received, "CHAP_R", "target"))
        identifier, challenge = self._challenge
        expected = chap_response(self._algorithm, identifier, self.target.secret, challenge)
        name_ok = hmac.compare_digest(name.encode(), self.target.name.encode())
        if not (hmac.compare_digest(answer, expected) and name_ok):
            raise AuthenticationError(
                f"target failed mutual CHAP as {name!r}: wrong name or secret; check the "
                "target's mutual CHAP credentials"
            )


class ChapTarget:
    """The target's half: challenges the initiator, checks it, proves itself if asked.

    ``secret_of(name)`` returns the initiator secret for a CHAP name (or None).
    ``credentials`` are the target's own name and secret for mutual CHAP.
    """

    def __init__(self, secret_of: Callable[[str], bytes | None] | Mapping[str, bytes], *,
                 credentials: ChapCredentials | None = None,
                 algorithms: Iterable[ChapAlgorithm] = (ChapAlgorithm.SHA256, ChapAlgorithm.MD5),
                 random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self._secret_of = secret_of.get if isinstance(secret_of, Mapping) else secret_of
        self.credentials = credentials
        self.algorithms = tuple(algorithms)
        self._random = random_bytes
        self._algorithm: ChapAlgorithm | None = None
        self._challenge: tuple[int, bytes] | None = None
        self.authenticated_name: str | None = None

    def challenge(self, received: Mapping[str, str]) -> list[tuple[str, str]]:
        """Pick an algorithm from the initiator's CHAP_A and challenge it."""
        offered = []
        for item in _required(received, "CHAP_A", "initiator").split(","):
            try:
                offered.append(ChapAlgorithm(int(item)))
            except ValueError:
                continue  # unknown algorithms are skipped, as for any list key
        usable = [a for a in offered if a in self.algorithms]
        if not usable:
            raise AuthenticationError(
                f"initiator offered CHAP_A={received['CHAP_A']}, none of which this target "
                f"accepts ({','.join(str(int(a)) for a in self.algorithms)})"
            )
        self._algorithm = usable[0]
        identifier = self._random(1)[0]
        challenge = self._random(max(MIN_CHALLENGE, self._algorithm.size))
        self._challenge = (identifier, challenge)
        return [("CHAP_A", str(int(self._algorithm))), ("CHAP_I", str(identifier)),
                ("CHAP_C", encode_binary(challenge))]

    def verify(self, received: Mapping[str, str]) -> list[tuple[str, str]]:
        """Check CHAP_N/CHAP_R; answer a mutual challenge. Returns the keys to send."""
        if self._challenge is None or self._algorithm is None:
            raise AuthenticationError("CHAP response arrived before the target's challenge")
        name = _required(received, "CHAP_N", "initiator")
        answer = decode_binary(_required(received, "CHAP_R", "initiator"))
        identifier, challenge = self._challenge
        secret = self._secret_of(name)
        # Compute a response even for unknown names so timing does not reveal them.
        expected = chap_response(self._algorithm, identifier, secret or b"\x00", challenge)
        if not hmac.compare_digest(answer, expected) or secret is None:
            raise AuthenticationError(
                f"initiator {name!r} failed CHAP: unknown name or wrong secret; check the "
                "initiator's CHAP credentials"
            )
        self.authenticated_name = name
        if "CHAP_I" not in received and "CHAP_C" not in received:
            return []
        if self.credentials is None:
            raise AuthenticationError(
                f"initiator {name!r} asked for mutual CHAP but this target has no mutual "
                "credentials; configure them or use one-way CHAP"
            )
        their_identifier = _identifier(_required(received, "CHAP_I", "initiator"))
        their_challenge = decode_binary(_required(received, "CHAP_C", "initiator"))
        if hmac.compare_digest(their_challenge, challenge):
            raise AuthenticationError(
                f"initiator {name!r} sent back the target's own CHAP challenge (a reflection "
                "attack); refusing the login"
            )
        if len(their_challenge) < MIN_CHALLENGE:
            raise AuthenticationError(
                f"initiator {name!r} sent a {len(their_challenge)}-byte CHAP challenge; at "
                f"least {MIN_CHALLENGE} bytes are required"
            )
        response = chap_response(self._algorithm, their_identifier, self.credentials.secret,
                                 their_challenge)
        return [("CHAP_N", self.credentials.name), ("CHAP_R", encode_binary(response))]
