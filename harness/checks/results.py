"""Result records: what one validation check or chaos scenario concluded, on disk.

The model is the Failover Cluster validation wizard's: every check (or chaos
scenario) ends in one of five result words, with a one-line reason, a
description of what it does, the evidence it gathered (commands and CDBs sent,
responses, measured numbers) and files attached as evidence (a history, a
timeline plot, a pcap, a fault journal). Validation, chaos and cluster code write
these records; the report layer reads them and never re-runs anything.

A results directory holds::

    run.json              RunInfo: site, inventory digest, hosts, who, when, command
    results/<slug>.json   one CheckResult each (schema "splitbrain.result/1")
    attachments/...       evidence files, named by the records that cite them

Records are written whole (temporary file, then rename), so a reader never sees
half a record from a writer that was killed.
"""

from __future__ import annotations

import enum
import getpass
import hashlib
import json
import os
import re
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import SplitbrainError
from harness.redact import Redactor

SCHEMA = "splitbrain.result/1"
RUN_SCHEMA = "splitbrain.run/1"


class ResultsError(SplitbrainError):
    """A results directory or record that cannot be written or read."""


class ResultWord(enum.StrEnum):
    """The wizard's result words."""

    SUCCESS = "Success"
    WARNING = "Warning"
    FAILED = "Failed"
    NOT_APPLICABLE = "Not Applicable"
    CANCELED = "Canceled"

    @property
    def severity(self) -> int:
        """Higher is worse: Failed > Canceled > Warning > Success > Not Applicable."""
        return _SEVERITY[self]


_SEVERITY = {
    ResultWord.NOT_APPLICABLE: 0,
    ResultWord.SUCCESS: 1,
    ResultWord.WARNING: 2,
    ResultWord.CANCELED: 3,
    ResultWord.FAILED: 4,
}


def worst(words: list[ResultWord] | tuple[ResultWord, ...]) -> ResultWord:
    """The worst of several result words (Not Applicable when there are none)."""
    return max(words, key=lambda w: w.severity, default=ResultWord.NOT_APPLICABLE)


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence shown with a result: what was sent, what came back, numbers."""

    title: str
    text: str


@dataclass(frozen=True)
class Attachment:
    """A file of evidence, ``path`` relative to the results directory."""

    name: str
    path: str
    media_type: str


@dataclass
class CheckResult:
    """What one check or scenario concluded."""

    kind: str  # "validation" | "chaos"
    category: str
    name: str
    description: str
    result: ResultWord
    reason: str = ""
    started: float = 0.0
    finished: float = 0.0
    evidence: list[Evidence] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    numbers: dict[str, float | int | str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("validation", "chaos"):
            raise ResultsError(f"result kind {self.kind!r} must be 'validation' or 'chaos'")
        self.result = ResultWord(self.result)

    @property
    def slug(self) -> str:
        """A file-system-safe name: kind, category and name, plus a label-derived suffix."""
        base = f"{self.kind}-{self.category}-{self.name}"
        extra = "-".join(f"{k}={v}" for k, v in sorted(self.labels.items()) if k != "site")
        return _slug(f"{base}-{extra}" if extra else base)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["result"] = str(self.result)
        return {"schema": SCHEMA, **d}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CheckResult:
        if d.get("schema") != SCHEMA:
            raise ResultsError(f"not a {SCHEMA} record (schema {d.get('schema')!r})")
        try:
            return cls(
                kind=d["kind"],
                category=d["category"],
                name=d["name"],
                description=d.get("description", ""),
                result=ResultWord(d["result"]),
                reason=d.get("reason", ""),
                started=float(d.get("started", 0.0)),
                finished=float(d.get("finished", 0.0)),
                evidence=[Evidence(**e) for e in d.get("evidence", [])],
                attachments=[Attachment(**a) for a in d.get("attachments", [])],
                numbers=dict(d.get("numbers", {})),
                labels={str(k): str(v) for k, v in d.get("labels", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"damaged result record: {exc}") from None


@dataclass
class RunInfo:
    """Who ran what against which site, and when."""

    site: str
    command: str
    started: float
    finished: float = 0.0
    hosts: list[str] = field(default_factory=list)
    inventory_digest: str = ""
    user: str = field(default_factory=lambda: _user())
    machine: str = field(default_factory=socket.gethostname)
    harness_version: str = __version__
    seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"schema": RUN_SCHEMA, **asdict(self)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunInfo:
        if d.get("schema") != RUN_SCHEMA:
            raise ResultsError(f"not a {RUN_SCHEMA} record (schema {d.get('schema')!r})")
        fields = {k: v for k, v in d.items() if k != "schema"}
        try:
            return cls(**fields)
        except TypeError as exc:
            raise ResultsError(f"damaged run record: {exc}") from None


def inventory_digest(path: str | Path) -> str:
    """SHA-256 of an inventory file as written (the report's header cites it)."""
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


class ResultsDir:
    """A directory of result records and their attachments."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def results_path(self) -> Path:
        return self.path / "results"

    @property
    def attachments_path(self) -> Path:
        return self.path / "attachments"

    def write(self, result: CheckResult) -> Path:
        """Write one record (replacing an earlier one of the same slug)."""
        target = self.results_path / f"{result.slug}.json"
        text = json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n"
        _write_whole(target, Redactor.from_environment().text(text))
        return target

    def write_run(self, info: RunInfo) -> Path:
        target = self.path / "run.json"
        _write_whole(target, json.dumps(info.to_json(), indent=2, sort_keys=True) + "\n")
        return target

    def attach(self, name: str, content: bytes | str | Path, media_type: str) -> Attachment:
        """Store evidence under ``attachments/`` (secrets masked, ``harness.redact``) and
        return the record that cites it."""
        if isinstance(content, Path):
            content = content.read_bytes()
        elif isinstance(content, str):
            content = content.encode()
        content = Redactor.from_environment().content(content, media_type)
        relative = Path("attachments") / _slug(name, keep_dots=True)
        _write_whole(self.path / relative, content)
        return Attachment(name=name, path=relative.as_posix(), media_type=media_type)

    def read_run(self) -> RunInfo | None:
        target = self.path / "run.json"
        if not target.exists():
            return None
        return RunInfo.from_json(_read_json(target))

    def read_all(self) -> list[CheckResult]:
        """Every record, in file-name order; a damaged one raises naming its file."""
        records = []
        for p in sorted(self.results_path.glob("*.json")):
            try:
                records.append(CheckResult.from_json(_read_json(p)))
            except ResultsError as exc:
                raise ResultsError(f"{p}: {exc}") from None
        return records


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read ({exc})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: not a JSON object")
    return data


def _write_whole(target: Path, content: str | bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _slug(text: str, keep_dots: bool = False) -> str:
    allowed = r"[^A-Za-z0-9._-]+" if keep_dots else r"[^A-Za-z0-9_-]+"
    s = re.sub(allowed, "-", text).strip("-")
    return s[:150] or "result"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def now() -> float:
    """Wall-clock time for ``started``/``finished`` (the report shows dates, not durations)."""
    return time.time()
