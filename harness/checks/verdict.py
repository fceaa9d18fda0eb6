"""Verdicts: what a checker concluded, as problems an auditor can trace to the history.

A ``Problem`` is one thing that is wrong: its ``kind`` (lost, stale, torn,
misplaced, corrupt, phantom, stale_read, split_brain, diverged, over_budget,
...), where it is (byte ``offset`` and ``length`` on a ``device`` or path,
when it is about data), a one-line ``message``, the history ``records`` behind
it (the invoke and completion records of the writes and reads involved, the
fault records active at the time) and a ``detail`` dict of measured values. A
``Verdict`` is one checker's list of problems plus statistics about what it
checked; it is valid when it has no problems. Both are JSON-serialisable.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Problem:
    kind: str
    message: str
    offset: int | None = None
    length: int | None = None
    device: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "offset": self.offset,
            "length": self.length,
            "device": self.device,
            "records": self.records,
            "detail": self.detail,
        }

    def where(self) -> str:
        if self.offset is None:
            return self.device or ""
        assert self.length is not None
        place = f"bytes {self.offset}..{self.offset + self.length - 1}"
        return f"{self.device}: {place}" if self.device else place


@dataclass(slots=True)
class Verdict:
    checker: str
    problems: list[Problem] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.problems))

    def to_json(self) -> dict[str, Any]:
        return {
            "checker": self.checker,
            "valid": self.valid,
            "counts": self.counts(),
            "stats": self.stats,
            "problems": [p.to_json() for p in self.problems],
        }

    def summary(self) -> str:
        if self.valid:
            return f"{self.checker}: ok"
        parts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts().items()))
        return f"{self.checker}: {len(self.problems)} problems ({parts})"
