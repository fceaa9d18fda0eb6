"""The audit report: one self-contained, printable HTML page in the validation wizard's style.

Laid out like the Failover Cluster "Validate a Configuration" report: a header
(site, hosts tested, start and end, who ran it, harness version, inventory
digest), the overall result, *Results by Category* with the count of each
result word, an index of every check and scenario (failures first), then each
one with its description, result and reason, measured numbers, evidence text,
timeline images inline (``data:`` URIs, so the page needs no other file), its
evidence files with their SHA-256, and at the end the evidence manifest.
Everything shown is redacted; the page has no script.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from harness import __version__
from harness.checks.results import ResultWord
from harness.redact import Redactor
from harness.report.records import RecordedRun

WORDS = [ResultWord.SUCCESS, ResultWord.WARNING, ResultWord.FAILED,
         ResultWord.NOT_APPLICABLE, ResultWord.CANCELED]
INLINE_IMAGES = ("image/png", "image/svg+xml", "image/jpeg", "image/gif")
INLINE_LIMIT = 8 * 2**20  # bytes; a larger image is linked, not inlined


@dataclass(frozen=True)
class EvidenceFile:
    """An attachment as shipped with the report (redacted copy), or missing."""

    name: str
    media_type: str
    path: str | None  # relative to the report directory
    file: Path | None
    sha256: str | None


def _when(t: float) -> str:
    if not t:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(a: float, b: float) -> str:
    if not a or not b or b < a:
        return "-"
    s = b - a
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _css(word: Any) -> str:
    return str(word).replace(" ", "")


def _anchor(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-").lower() or "x"


def _images(files: list[EvidenceFile]) -> list[dict[str, str]]:
    """Inline images; of a PNG and an SVG with the same stem only the PNG."""
    chosen: dict[str, EvidenceFile] = {}
    for f in files:
        if f.file is None or f.media_type not in INLINE_IMAGES:
            continue
        stem = str(Path(f.path or f.name).with_suffix(""))
        if stem in chosen and chosen[stem].media_type == "image/png":
            continue
        if f.file.stat().st_size <= INLINE_LIMIT:
            chosen[stem] = f
    return [{"name": f.name, "path": f.path or "",
             "uri": f"data:{f.media_type};base64,"
                    + base64.b64encode(f.file.read_bytes()).decode()}
            for f in chosen.values() if f.file is not None]


def render_audit(run: RecordedRun, evidence: dict[tuple[int, str], EvidenceFile],
                 manifest: list[dict[str, Any]], redactor: Redactor,
                 record_paths: dict[int, str]) -> str:
    """The audit page. ``evidence`` maps (record index in ``run.records``, attachment
    path) to what the report ships; ``record_paths`` each record's shipped copy."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True)
    env.filters["cls"] = _css
    index = {id(r): i for i, r in enumerate(run.records)}
    red = redactor.text
    views = []
    for rec in run.ordered():
        i = index[id(rec)]
        r = rec.result
        files = [evidence[(i, a.path)] for a in r.attachments]
        views.append({
            "anchor": f"r{i}-{_anchor(r.name)}",
            "name": red(r.name), "category": r.category, "kind": r.kind,
            "description": red(r.description), "result": str(r.result),
            "reason": red(r.reason),
            "started": _when(r.started), "finished": _when(r.finished),
            "duration": _duration(r.started, r.finished),
            "labels": [(k, red(v)) for k, v in sorted(r.labels.items())],
            "numbers": [(k, red(str(v))) for k, v in sorted(r.numbers.items())],
            "evidence": [(red(e.title), red(e.text)) for e in r.evidence],
            "images": _images(files),
            "attachments": files,
            "record": record_paths.get(i, str(rec.source)),
        })
    categories: dict[str, dict[str, Any]] = {}
    for v in views:
        c = categories.setdefault(v["category"], {
            "name": v["category"], "anchor": _anchor(v["category"]), "records": [],
            "counts": {str(w): 0 for w in WORDS}})
        c["records"].append(v)
        c["counts"][v["result"]] += 1
    for c in categories.values():
        c["total"] = len(c["records"])
        c["worst"] = max((ResultWord(v["result"]) for v in c["records"]),
                         key=lambda w: w.severity)
    ordered = sorted(categories.values(), key=lambda c: (-c["worst"].severity, c["name"]))
    totals = [(str(w), sum(c["counts"][str(w)] for c in ordered)) for w in WORDS]
    info = run.info
    return env.get_template("audit.html.j2").render(
        title=f"splitbrain Validation and Chaos Report: {red(info.site)}",
        info=_redacted_info(info, redactor),
        started=_when(info.started), finished=_when(info.finished),
        generated=_when(dt.datetime.now(dt.UTC).timestamp()),
        generator_version=__version__,
        overall=str(run.worst),
        totals=[(w, n) for w, n in totals if n],
        problems=[{"path": str(p.path), "reason": red(p.reason)} for p in run.problems],
        words=[str(w) for w in WORDS],
        categories=ordered,
        records=views,
        manifest=manifest,
    )


def _redacted_info(info: Any, redactor: Redactor) -> dict[str, Any]:
    return {"site": redactor.text(info.site), "hosts": info.hosts, "user": info.user,
            "machine": info.machine, "command": redactor.text(info.command),
            "harness_version": info.harness_version,
            "inventory_digest": info.inventory_digest, "seed": info.seed}
