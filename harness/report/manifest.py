"""The evidence manifest: a SHA-256 for every file a report ships, and its verification.

``manifest.sha256`` in a report directory lists every evidence file, every
result record and the rendered reports, one ``<hex digest>  <relative path>``
line each, sorted by path: the format of GNU ``sha256sum``, so an auditor can
check it with ``sha256sum -c manifest.sha256`` as well as with
``splitbrain report --verify DIR``. The audit HTML embeds the same table for the
evidence files. Verification recomputes every digest and names each file that
was altered, removed, or added under a listed folder after the report was made.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import SplitbrainError

MANIFEST = "manifest.sha256"


class ManifestError(SplitbrainError):
    """A report directory without a readable manifest."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def digest_files(root: Path, files: list[Path]) -> dict[str, str]:
    """Relative posix path -> SHA-256 hex of each file."""
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(files)}


def render_manifest(digests: dict[str, str]) -> str:
    return "".join(f"{d}  {p}\n" for p, d in sorted(digests.items()))


def read_manifest(root: Path) -> dict[str, str]:
    target = root / MANIFEST
    try:
        lines = target.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ManifestError(f"{target} not found; --verify takes a directory written by "
                            "`splitbrain report`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{target}: cannot read ({exc})") from None
    digests: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        digest, sep, path = line.partition("  ")
        if not sep or len(digest) != 64 or not path:
            raise ManifestError(f"{target}:{n}: not a '<sha256>  <path>' line; the manifest "
                                "itself was altered")
        digests[path] = digest
    return digests


@dataclass
class Verification:
    """What ``--verify`` found."""

    checked: int = 0
    altered: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not (self.altered or self.missing or self.added)

    def lines(self) -> list[str]:
        return ([f"ALTERED  {p}" for p in self.altered]
                + [f"MISSING  {p}" for p in self.missing]
                + [f"ADDED    {p}" for p in self.added])


def verify(root: Path) -> Verification:
    """Recompute every digest of ``root``'s manifest."""
    expected = read_manifest(root)
    out = Verification()
    for path, digest in sorted(expected.items()):
        target = root / path
        if not target.is_file():
            out.missing.append(path)
            continue
        out.checked += 1
        if sha256_file(target) != digest:
            out.altered.append(path)
    folders = {Path(p).parts[0] for p in expected if len(Path(p).parts) > 1}
    for folder in sorted(folders):
        for f in sorted((root / folder).rglob("*")):
            rel = f.relative_to(root).as_posix()
            if f.is_file() and rel not in expected:
                out.added.append(rel)
    return out
