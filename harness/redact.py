"""Redaction: secrets never leave the harness in a report, an attachment or a log.

A ``Redactor`` knows two kinds of secret:

- *values*: the literal text of every ``${ENV}`` reference an inventory makes
  (an ssh password, a key passphrase, a CHAP secret), plus the value of every
  environment variable whose name says it is secret (``*PASSWORD*``,
  ``*SECRET*``, ``*TOKEN*``, ``*PASSPHRASE*``, ``*CHAP*``, ``*API_KEY*``...).
  Every occurrence is masked wherever it appears; in bytes the mask keeps the
  length, so a pcap or a binary log stays well formed. The value of every
  secret the inventory resolved in this process (``remember_secret``) is
  masked too, whatever its variable is called.
- *assignments*: ``key = value`` / ``key: value`` / ``"key": "value"`` /
  ``Key=Value`` text (TOML, YAML, JSON, INI, iSCSI login keys) whose key names
  a secret (password, secret, token, passphrase, CHAP_R...). The value is
  masked even when the harness never knew it, for example a password typed
  inline in an inventory.

The mask is ``MASK``. This module sits at the bottom of the layers (beside
``harness.errors``) so the code that writes evidence and the report that
renders it share one definition.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

MASK = "***REDACTED***"
SECRET_NAME = re.compile(
    r"(passw(or)?d|secret|token|passphrase|api[_-]?key|credential|private[_-]?key|chap)",
    re.IGNORECASE,
)
# A ${ENV} reference anywhere in text (the inventory's only way to name a secret).
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# key <sep> value, where the key names a secret. Quoted and bare values; the key
# may itself be quoted (JSON). The value stops at the closing quote, or at
# whitespace / a comma / a closing brace for bare values.
_ASSIGNMENT = re.compile(
    r"""(?<![A-Za-z0-9_.-])(?P<key>["']?[A-Za-z0-9_.-]*"""
    r"""(?:passw(?:or)?d|secret|token|passphrase|api[_-]?key|credential|private[_-]?key|CHAP_R)"""
    r"""[A-Za-z0-9_.-]*["']?)"""
    r"""(?P<sep>\s*[:=]\s*)"""
    r"""(?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s,;}&"'\]]+)""",
    re.IGNORECASE,
)
GZIP = ("application/gzip", "application/x-gzip")
_SECRET_WORD = re.compile(
    r"passw(?:or)?d|secret|token|passphrase|api[_-]?key|credential|private[_-]?key|CHAP_R",
    re.IGNORECASE)
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words and numbers
_REMEMBERED: set[str] = set()


def remember_secret(value: str) -> None:
    """Mask ``value`` in everything this process redacts from now on (a resolved secret)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _REMEMBERED.add(value)


class Redactor:
    """Masks known secret values and secret-looking assignments in text and bytes."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        found = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH}
        # Longest first so a secret that contains another is masked whole.
        self.values: tuple[str, ...] = tuple(sorted(found, key=len, reverse=True))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None,
                         references: Iterable[str] = ()) -> Redactor:
        """Secrets named by ``references`` (variable names) and secret-named variables."""
        env = os.environ if environ is None else environ
        names = set(references) | {k for k in env if SECRET_NAME.search(k)}
        return cls([*(env[n] for n in names if n in env), *_REMEMBERED])

    @classmethod
    def for_inventory(cls, text: str, environ: Mapping[str, str] | None = None) -> Redactor:
        """A redactor for everything an inventory's ``${ENV}`` references resolve to."""
        return cls.from_environment(environ, ENV_REFERENCE.findall(text))

    def merged(self, other: Redactor) -> Redactor:
        return Redactor((*self.values, *other.values))

    def text(self, text: str) -> str:
        """``text`` with every secret value and secret assignment masked."""
        for value in self.values:
            text = text.replace(value, MASK)
        if not _SECRET_WORD.search(text):
            return text  # the common case (a history, a log): no key names a secret
        return _ASSIGNMENT.sub(_mask_assignment, text)

    def bytes(self, data: bytes) -> bytes:
        """``data`` with every secret value masked; the length does not change."""
        for value in self.values:
            raw = value.encode()
            data = data.replace(raw, b"*" * len(raw))
        return data

    def file(self, source: Path, media_type: str) -> bytes:
        """A file's content, redacted as text when it is text, length-preserving otherwise."""
        return self.content(source.read_bytes(), media_type)

    def content(self, data: bytes, media_type: str) -> bytes:
        """Evidence bytes redacted by their media type (gzip is redacted inside)."""
        if media_type in GZIP or data[:2] == b"\x1f\x8b":
            return self._gzip(data)
        if is_text(media_type):
            try:
                return self.text(data.decode()).encode()
            except UnicodeDecodeError:
                pass
        return self.bytes(data)


    def _gzip(self, data: bytes) -> bytes:
        """A gzip file redacted inside (a compressed history or log)."""
        try:
            inner = gzip.decompress(data)
        except (OSError, EOFError):
            return self.bytes(data)
        try:
            text = inner.decode()
        except UnicodeDecodeError:
            redacted = self.bytes(inner)
        else:
            redacted = self.text(text).encode()
        if redacted == inner:
            return data  # unchanged: keep the original bytes (and their digest)
        return gzip.compress(redacted, mtime=0)


def _mask_assignment(m: re.Match[str]) -> str:
    value = m.group("value")
    if ENV_REFERENCE.fullmatch(value.strip("\"'")) or value.strip("\"'") in ("", MASK):
        return m.group(0)  # a ${ENV} reference is not a secret; it names one
    quote = value[0] if value[0] in "\"'" else ""
    return f"{m.group('key')}{m.group('sep')}{quote}{MASK}{quote}"


def is_text(media_type: str) -> bool:
    """Whether a media type is text the redactor may rewrite (not a pcap or an image)."""
    return (media_type.startswith("text/")
            or media_type in ("application/json", "application/x-ndjson", "application/toml",
                              "application/xml", "application/yaml", "image/svg+xml"))
