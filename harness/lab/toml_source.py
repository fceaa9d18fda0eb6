"""A TOML document that can say where each of its keys was written.

``tomllib`` returns plain dicts and forgets line numbers, yet an inventory error
is only useful if it names the line to fix. ``TomlSource`` keeps the file text
next to the parsed document and maps a key path (``("hosts", "SWS-Store1",
"addresses", "iscsi")``, with integers for entries of an array of tables) back to
the line that defines it, or to the nearest enclosing key or table that exists.

``InventoryError`` is the one error of the inventory model: file, line or key
path, what is wrong, and how to fix it, on one line.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import SplitbrainError

KeyPath = tuple[str | int, ...]


class InventoryError(SplitbrainError):
    """An inventory that cannot describe a site: where, what, and how to fix it."""

    def __init__(self, where: str, what: str, hint: str = "") -> None:
        self.where = where
        self.what = what
        self.hint = hint
        text = f"{where}: {what}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


def dotted(path: KeyPath) -> str:
    """``hosts.SWS-Store1.addresses`` / ``devices.HA1.replicas[1].host``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            out += ("." if out else "") + text
    return out


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A hint naming the closest valid choice, or listing the valid ones."""
    options = sorted(str(c) for c in choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if not options:
        return "nothing is defined here"
    return "expected one of: " + ", ".join(options)


_HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*(\]\]?)\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_INLINE_KEY = re.compile(r"""(?:^|[{,])\s*([A-Za-z0-9_-]+|"[^"]*"|'[^']*')\s*=""")


def _split_key(text: str) -> list[str]:
    parts: list[str] = []
    for m in re.finditer(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.|$)""", text):
        token = m.group(1)
        parts.append(token[1:-1] if token[0] in "\"'" else token)
    return parts


@dataclass
class TomlSource:
    """A parsed TOML file plus the line of every key it defines."""

    path: Path
    text: str
    data: dict[str, object]
    _lines: dict[KeyPath, int] = field(default_factory=dict, repr=False)

    @classmethod
    def read(cls, path: Path) -> TomlSource:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InventoryError(
                str(path), "inventory file not found", "pass an existing file with --inventory"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InventoryError(
                str(path),
                f"cannot read inventory: {exc}",
                "check the file's permissions and that it is UTF-8",
            ) from None
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, path: Path) -> TomlSource:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            msg = str(exc)
            m = re.search(r"\(at line (\d+), column \d+\)", msg)
            where = f"{path}:{m.group(1)}" if m else str(path)
            what = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
            raise InventoryError(
                where,
                f"not valid TOML: {what}",
                "each key may appear once per table; quote strings",
            ) from None
        source = cls(Path(path), text, data)
        source._index()
        return source

    def _index(self) -> None:
        table: list[str | int] = []
        counts: dict[tuple[str | int, ...], int] = {}
        for number, line in enumerate(self.text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            header = _HEADER.match(line)
            if header and not _KEY.match(line):
                keys = _split_key(header.group(2))
                if header.group(1) == "[[":
                    base = tuple(keys)
                    index = counts.get(base, -1) + 1
                    counts[base] = index
                    table = [*keys, index]
                    self._lines.setdefault(tuple(table), number)
                    self._lines.setdefault(base, number)
                else:
                    table = self._resolve_arrays(keys, counts)
                    self._lines.setdefault(tuple(table), number)
                continue
            key = _KEY.match(line)
            if key:
                full = (*table, *_split_key(key.group(1)))
                self._lines.setdefault(full, number)
                rest = line[key.end() :]
                if rest.lstrip().startswith("{"):
                    for inner in _INLINE_KEY.finditer(rest):
                        token = inner.group(1)
                        name = token[1:-1] if token[0] in "\"'" else token
                        self._lines.setdefault((*full, name), number)

    @staticmethod
    def _resolve_arrays(keys: Sequence[str], counts: dict[KeyPath, int]) -> list[str | int]:
        # a [table] under an array of tables belongs to that array's latest entry
        out: list[str | int] = []
        for key in keys:
            out.append(key)
            plain = tuple(k for k in out if isinstance(k, str))
            if plain in counts and len(plain) < len(keys):
                out.append(counts[plain])
        return out

    def line_of(self, path: KeyPath) -> int | None:
        """The line defining ``path``, else that of its nearest defined ancestor."""
        for end in range(len(path), 0, -1):
            prefix = tuple(path[:end])
            line = self._lines.get(prefix)
            if line is not None:
                return line
            # a table only ever written as [prefix.child] starts at its first child
            inner = [n for key, n in self._lines.items() if key[:end] == prefix]
            if inner:
                return min(inner)
        return None

    def where(self, path: KeyPath) -> str:
        line = self.line_of(path)
        location = f"{self.path}:{line}" if line else str(self.path)
        return f"{location}: {dotted(path)}" if path else location

    def error(self, path: KeyPath, what: str, hint: str = "") -> InventoryError:
        return InventoryError(self.where(path), what, hint)
