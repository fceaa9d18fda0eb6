"""Building a report directory from recorded results (``splitbrain report``).

Nothing is re-run: the results directories are read (``records``), every
attachment and record is copied redacted into the report, and the outputs are
rendered from those copies::

    audit.html            the audit report (self-contained, printable)
    junit.xml             JUnit XML for CI
    allure-results/       Allure's input (labels, steps, attachments, environment)
    allure-report/        the Allure 3 single-file report (when Node is installed)
    evidence/...          the redacted attachments, under their recorded paths
    records/...           the redacted result records and run.json
    manifest.sha256       SHA-256 of every evidence file, record and rendered report

Everything is built in a hidden sibling folder and renamed into place at the
end, so an interrupted build never leaves a half-written report that looks
complete; an earlier report in the same place is replaced only then.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.checks.results import CheckResult
from harness.errors import SplitbrainError
from harness.redact import ENV_REFERENCE, Redactor, is_text
from harness.report import allure_html
from harness.report.allure_results import write_results
from harness.report.audit import EvidenceFile, render_audit
from harness.report.junit import render_junit
from harness.report.manifest import MANIFEST, digest_files, render_manifest
from harness.report.records import ReadProblem, RecordedRun, read_results


class ReportError(SplitbrainError):
    """The report cannot be written where asked."""


@dataclass
class BuiltReport:
    out: Path
    audit: Path
    junit: Path
    allure_results: Path
    allure: Path | None
    run: RecordedRun
    notes: list[str] = field(default_factory=list)  # what was skipped and why

    @property
    def problems(self) -> list[ReadProblem]:
        return self.run.problems


def _secret_references(run: RecordedRun) -> set[str]:
    """Names of every ``${ENV}`` a record or text attachment mentions (an inventory)."""
    names: set[str] = set()
    for rec in run.records:
        with contextlib.suppress(OSError):
            names.update(ENV_REFERENCE.findall(rec.source.read_text(errors="replace")))
        for a in rec.result.attachments:
            f = rec.attachment_file(a.path)
            if a.path in rec.missing or not is_text(a.media_type):
                continue
            with contextlib.suppress(OSError):
                names.update(ENV_REFERENCE.findall(f.read_text(errors="replace")))
    return names


def _check_out(out: Path, dirs: list[Path]) -> None:
    resolved = out.resolve()
    for d in dirs:
        if resolved == d.resolve():
            raise ReportError(f"--out {out} is a results directory; name another folder")
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out} is a file; name a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise ReportError(f"--out {out} is not empty and holds no earlier report; "
                          "name a new or empty folder")


def default_out(dirs: list[Path]) -> Path:
    return dirs[0] / "report"


def build_report(dirs: list[Path], out: Path | None = None, *, allure: bool = True,
                 redactor: Redactor | None = None,
                 progress: Callable[[str], None] = lambda _: None) -> BuiltReport:
    """Read ``dirs`` and write every report into ``out``; see the module docstring."""
    out = out or default_out(dirs)
    _check_out(out, dirs)
    progress(f"reading results from {', '.join(str(d) for d in dirs)}")
    run = read_results(dirs)
    redactor = (redactor or Redactor.from_environment()).merged(
        Redactor.from_environment(references=_secret_references(run)))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        built = _build_into(tmp, out, run, redactor, allure, progress)
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return built


def _prefix(run: RecordedRun, root: Path) -> str:
    if len(run.roots) == 1:
        return ""
    i = run.roots.index(root)
    return f"{i}-{root.resolve().name}/"


def _build_into(tmp: Path, out: Path, run: RecordedRun, redactor: Redactor, allure: bool,
                progress: Callable[[str], None]) -> BuiltReport:
    progress(f"copying evidence of {len(run.records)} results (redacted)")
    evidence: dict[tuple[int, str], EvidenceFile] = {}
    files_of: dict[int, dict[str, Path]] = {}
    record_paths: dict[int, str] = {}
    for i, rec in enumerate(run.records):
        prefix = _prefix(run, rec.root)
        files_of[i] = {}
        for a in rec.result.attachments:
            if a.path in rec.missing:
                evidence[(i, a.path)] = EvidenceFile(a.name, a.media_type, None, None, None)
                continue
            rel = f"evidence/{prefix}{a.path}"
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                dest.write_bytes(redactor.file(rec.attachment_file(a.path), a.media_type))
            files_of[i][a.path] = dest
            evidence[(i, a.path)] = EvidenceFile(a.name, a.media_type, rel, dest, None)
        rel = f"records/{prefix}{rec.source.relative_to(rec.root).as_posix()}"
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(redactor.text(rec.source.read_text(errors="replace")))
        record_paths[i] = rel
    for root in run.roots:
        run_json = root / "run.json"
        if run_json.is_file():
            dest = tmp / f"records/{_prefix(run, root)}run.json"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(redactor.text(run_json.read_text(errors="replace")))
    shipped = sorted(p for p in (tmp / "evidence").rglob("*") if p.is_file()) \
        if (tmp / "evidence").is_dir() else []
    digests = digest_files(tmp, shipped)
    evidence = {k: EvidenceFile(e.name, e.media_type, e.path, e.file,
                                digests.get(e.path) if e.path else None)
                for k, e in evidence.items()}
    manifest = [{"path": p, "sha256": d, "size": (tmp / p).stat().st_size}
                for p, d in sorted(digests.items())]

    progress("writing the audit report")
    audit = tmp / "audit.html"
    audit.write_text(render_audit(run, evidence, manifest, redactor, record_paths),
                     encoding="utf-8")
    progress("writing JUnit XML")
    junit = tmp / "junit.xml"
    junit.write_text(render_junit(run, redactor), encoding="utf-8")

    progress("writing allure-results")

    def items() -> Iterator[tuple[CheckResult, dict[str, Path]]]:
        for i, rec in enumerate(run.records):
            yield rec.result, files_of[i]

    write_results(items(), run.info, tmp / "allure-results", redactor)
    notes: list[str] = []
    allure_index: Path | None = None
    if allure:
        progress("rendering the Allure 3 report")
        try:
            allure_html.generate(tmp / "allure-results", tmp / "allure-report",
                                 name=f"splitbrain {redactor.text(run.info.site)}")
            allure_index = out / "allure-report" / "index.html"
        except (allure_html.AllureUnavailable, allure_html.AllureFailed) as exc:
            notes.append(str(exc))
            shutil.rmtree(tmp / "allure-report", ignore_errors=True)
    else:
        notes.append("Allure report skipped (--no-allure)")
    listed = shipped + sorted(p for p in (tmp / "records").rglob("*") if p.is_file())
    listed += [audit, junit]
    (tmp / MANIFEST).write_text(render_manifest(digest_files(tmp, listed)), encoding="utf-8")
    return BuiltReport(out=out, audit=out / "audit.html", junit=out / "junit.xml",
                       allure_results=out / "allure-results", allure=allure_index, run=run,
                       notes=notes)


def _swap(tmp: Path, out: Path) -> None:
    """Put the finished report in place; an earlier report there goes only now."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
