"""Reading recorded results for a report: everything that can be read, and what could not.

A report is built from one or more results directories (``harness.checks.results``)
and never re-runs anything. Unlike ``ResultsDir.read_all`` (which stops at the
first damaged record), this reader keeps going: a truncated or damaged record,
a missing ``run.json`` or an attachment missing from disk each become one
``ReadProblem`` that names the file, and the report shows everything else.

``RecordedRun`` is what the renderers see: the runs' ``RunInfo`` merged (the
earliest start, the latest end, every host), every ``Recorded`` result with the
directory it came from, and the problems.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.checks.results import (
    CheckResult,
    ResultsDir,
    ResultsError,
    ResultWord,
    RunInfo,
)


class NoResultsError(ResultsError):
    """Nothing in the given directories is a result record."""


@dataclass(frozen=True)
class ReadProblem:
    """One file the report could not use, and why (one line)."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Recorded:
    """One result record and the results directory its attachment paths are relative to."""

    result: CheckResult
    source: Path  # the record's own file
    root: Path  # its results directory
    missing: list[str] = field(default_factory=list)  # attachment paths not on disk

    def attachment_file(self, path: str) -> Path:
        return self.root / path


@dataclass
class RecordedRun:
    """Everything a report shows."""

    info: RunInfo
    records: list[Recorded]
    problems: list[ReadProblem]
    roots: list[Path]

    def ordered(self) -> list[Recorded]:
        """Failures first (worst result word first), then by category and name."""
        return sorted(self.records, key=lambda r: (-r.result.result.severity,
                                                   r.result.category, r.result.name))

    @property
    def worst(self) -> ResultWord:
        return max((r.result.result for r in self.records), key=lambda w: w.severity,
                   default=ResultWord.NOT_APPLICABLE)


def _load_record(path: Path) -> CheckResult:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ResultsError("not UTF-8 text (damaged)") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"truncated or damaged JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ResultsError("not a JSON object")
    try:
        return CheckResult.from_json(data)
    except ResultsError as exc:
        raise ResultsError(str(exc).removeprefix(f"{path}: ")) from None


def _safe_attachment(root: Path, path: str) -> bool:
    """An attachment path that stays inside its results directory."""
    try:
        (root / path).resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return not Path(path).is_absolute()


def read_results(dirs: list[Path]) -> RecordedRun:
    """Read every results directory; raise ``NoResultsError`` only when nothing is usable."""
    records: list[Recorded] = []
    problems: list[ReadProblem] = []
    infos: list[RunInfo] = []
    for root in dirs:
        rd = ResultsDir(root)
        if not root.is_dir():
            problems.append(ReadProblem(root, "not a directory"))
            continue
        try:
            info = rd.read_run()
        except ResultsError as exc:
            problems.append(ReadProblem(root / "run.json", str(exc).removeprefix(
                f"{root / 'run.json'}: ")))
            info = None
        files = sorted(rd.results_path.glob("*.json"))
        if info is not None:
            infos.append(info)
        elif files and not (root / "run.json").exists():
            problems.append(ReadProblem(root / "run.json", "missing: the run did not finish "
                                        "(killed?); the header is made from its records"))
        if not files:
            problems.append(ReadProblem(rd.results_path, "no result records (*.json) here"))
        for f in files:
            try:
                result = _load_record(f)
            except (OSError, ResultsError) as exc:
                problems.append(ReadProblem(f, str(exc)))
                continue
            rec = Recorded(result, f, root)
            for a in result.attachments:
                if not _safe_attachment(root, a.path):
                    rec.missing.append(a.path)
                    problems.append(ReadProblem(f, f"attachment {a.path!r} points outside "
                                                   f"{root}; not used"))
                elif not (root / a.path).is_file():
                    rec.missing.append(a.path)
                    problems.append(ReadProblem(root / a.path,
                                                f"attachment of {result.name!r} missing from disk"))
            records.append(rec)
    if not records:
        where = ", ".join(str(d) for d in dirs)
        detail = "; ".join(str(p) for p in problems[:3])
        raise NoResultsError(f"no result records could be read from {where}"
                             + (f" ({detail})" if detail else "")
                             + "; run `splitbrain validate` or `splitbrain chaos` first, "
                               "or name a results directory")
    return RecordedRun(_merge(infos, records), records, problems, list(dirs))


def _merge(infos: list[RunInfo], records: list[Recorded]) -> RunInfo:
    """One header for several runs: every site and host, earliest start, latest end."""
    if not infos:
        started = min((r.result.started for r in records if r.result.started), default=0.0)
        finished = max((r.result.finished for r in records), default=0.0)
        sites = sorted({r.result.labels.get("site", "") for r in records} - {""})
        return RunInfo(site=", ".join(sites) or "unknown (no run.json)", command="unknown",
                       started=started, finished=finished, user="unknown", machine="unknown",
                       harness_version="unknown")
    first = infos[0]
    if len(infos) == 1:
        return first
    hosts: list[str] = []
    for i in infos:
        hosts += [h for h in i.hosts if h not in hosts]
    digests = sorted({i.inventory_digest for i in infos if i.inventory_digest})
    seeds = [i.seed for i in infos if i.seed is not None]
    return RunInfo(
        site=", ".join(dict.fromkeys(i.site for i in infos)),
        command="; ".join(dict.fromkeys(i.command for i in infos)),
        started=min(i.started for i in infos),
        finished=max(i.finished for i in infos),
        hosts=hosts,
        inventory_digest=", ".join(digests),
        user=", ".join(dict.fromkeys(i.user for i in infos)),
        machine=", ".join(dict.fromkeys(i.machine for i in infos)),
        harness_version=", ".join(dict.fromkeys(i.harness_version for i in infos)),
        seed=seeds[0] if len(set(seeds)) == 1 else None,
    )
