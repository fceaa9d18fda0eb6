"""How a user names an iSCSI LUN and how an initiator names its sessions.

Two things every part of the harness that logs in needs, kept in one place:

- the ``iscsi://[user:secret@]host[:port][/iqn[/lun]]`` URL (RFC 4173's
  scheme, simplified to portal, target name and LUN, with CHAP credentials in
  the user-info part) that the CLI, the workload and the chaos runner accept;
  :func:`parse_iscsi_url` parses it, refusing a URL without target and LUN
  unless the caller allows a partial one (``splitbrain probe`` names only a
  portal or a target);
- the ISID (RFC 7143 section 10.12.5), the initiator half of an I_T nexus:
  :func:`random_isid` for a one-off session, and :class:`IsidMint` for a
  process that opens many sessions and needs them distinct and readable
  (a qualifier byte per kind of user, the process id and a counter).
"""

from __future__ import annotations

import itertools
import os
import secrets
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from harness.errors import SplitbrainError

DEFAULT_PORT = 3260
URL_FORM = "iscsi://[user:secret@]host[:port]/iqn/lun"


class IscsiUrlError(SplitbrainError):
    """An ``iscsi://`` URL that cannot be parsed; the message never shows the secret."""


@dataclass(frozen=True, slots=True)
class IscsiUrl:
    """``iscsi://[user:secret@]host[:port][/iqn[/lun]]`` parsed.

    ``target`` and ``lun`` are None only in a URL parsed with ``partial=True``.
    """

    host: str
    port: int = DEFAULT_PORT
    target: str | None = None
    lun: int | None = None
    user: str | None = None
    secret: str | None = None

    @property
    def portal(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:  # never print the secret
        who = f"{self.user}@" if self.user else ""
        path = "".join(f"/{part}" for part in (self.target, self.lun) if part is not None)
        return f"iscsi://{who}{self.portal}{path}"


def is_iscsi_url(spec: str) -> bool:
    return spec.startswith("iscsi://")


def parse_iscsi_url(url: str, *, partial: bool = False) -> IscsiUrl:
    """Parse an ``iscsi://`` URL; raises :class:`IscsiUrlError` saying what is wrong.

    Target and LUN are required unless ``partial`` (then either may be left out).
    """
    parts = urlsplit(url)
    shown = url.replace(parts.password, "***") if parts.password else url
    form = "iscsi://[user:secret@]host[:port][/iqn[/lun]]" if partial else URL_FORM
    if parts.scheme != "iscsi":
        raise IscsiUrlError(f"{shown!r} is not an iscsi:// URL; use {form}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise IscsiUrlError(f"{shown}: bad port ({exc}); use {form}") from None
    if not host:
        raise IscsiUrlError(f"{shown}: no host; use {form}")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if len(segments) > 2 or (not partial and len(segments) != 2):
        what = "/<target iqn>[/<lun>]" if partial else "/<target iqn>/<lun>"
        raise IscsiUrlError(f"{shown}: path must be {what}; use {form}")
    lun = None
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise IscsiUrlError(f"{shown}: LUN {segments[1]!r} is not a number")
        lun = int(segments[1])
    if (parts.username is None) != (parts.password is None):
        raise IscsiUrlError(f"{shown}: CHAP needs both user and secret (user:secret@)")
    return IscsiUrl(
        host=host,
        port=port or DEFAULT_PORT,
        target=segments[0] if segments else None,
        lun=lun,
        user=unquote(parts.username) if parts.username else None,
        secret=unquote(parts.password) if parts.password else None,
    )


# -- ISIDs ---------------------------------------------------------------------

RANDOM_FORMAT = 0x80
"""The ISID's T field 10b (random): the qualifier bits are the initiator's to choose."""


def random_isid() -> int:
    """A random-format ISID (T=10b): 0x80 then 40 random bits."""
    return RANDOM_FORMAT << 40 | secrets.randbits(40)


class IsidMint:
    """Distinct random-format ISIDs for one kind of session in this process.

    ``0x80 | qualifier (8 bits) | process id (16 bits) | counter (16 bits)``:
    a capture shows which part of the harness opened a session (the
    qualifier), two processes on one host do not collide, and the counter
    keeps every session of a kind its own I_T nexus.
    """

    def __init__(self, qualifier: int) -> None:
        if not 0 <= qualifier <= 0xFF:
            raise ValueError(f"ISID qualifier {qualifier:#x} does not fit in 8 bits")
        self.qualifier = qualifier
        self._numbers = itertools.count(1)

    def isid(self, number: int | None = None) -> int:
        """The ISID for ``number`` (the mint's next number when None)."""
        n = next(self._numbers) if number is None else number
        return (RANDOM_FORMAT << 40 | self.qualifier << 32 | (os.getpid() & 0xFFFF) << 16
                | n & 0xFFFF)


MPIO_PATHS = IsidMint(0x5A)
"""Paths of a multipath device that were given no ISID."""
WORKLOAD_PATHS = IsidMint(0x5B)
"""Paths the workload opens from ``iscsi://`` URLs."""
READ_BACK_PATHS = IsidMint(0x5C)
"""Read-back sessions after a chaos run (one per replica path)."""
