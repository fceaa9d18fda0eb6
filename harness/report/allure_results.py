"""Allure for splitbrain results: one mapping from a ``CheckResult`` to Allure's model.

The mapping (used both inside pytest and by ``splitbrain report``):

- labels: ``epic`` = the category (Storage, Network, HA Storage, Chaos...),
  ``feature`` = the check or scenario, ``story`` = the chaos family (label
  ``family``), ``severity`` (the record's ``severity`` label, else critical for
  storage, HA and chaos, normal otherwise), ``tag`` = ``site:<site>`` and
  ``seed:<seed>``, ``parentSuite``/``suite`` = kind and category;
- status: Success and Warning are *passed* (a Warning keeps its reason and a
  ``warning`` tag), Failed is *failed*, Canceled is *broken*, Not Applicable is
  *skipped*;
- steps, one per phase of ``PHASES`` (steady state, inject, evidence, heal,
  verify): evidence titled ``"<phase>: ..."`` goes into that step, other
  evidence by its title's first words (``TITLE_PHASES``: "took effect" is
  inject, "recovery" is heal, "checker"/"problem" is verify), the rest and the
  attachments (same rule on their names) into ``evidence``; ``verify`` always
  closes with the result and reason, its status the result's;
- every evidence text and attachment is redacted (``harness.redact``).

``publish(result, results_dir)`` is the one call a suite makes inside a test:
it applies the mapping to the running pytest test through ``allure.dynamic``
(a no-op without ``--alluredir``). ``write_results(records, out)`` writes a
standalone ``allure-results`` folder from recorded results for the Allure 3
CLI, with ``environment.properties`` and ``categories.json``.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checks.results import Attachment, CheckResult, Evidence, ResultWord, RunInfo
from harness.redact import Redactor

PHASES = ("steady state", "inject", "evidence", "heal", "verify")
STATUS = {
    ResultWord.SUCCESS: "passed",
    ResultWord.WARNING: "passed",
    ResultWord.FAILED: "failed",
    ResultWord.CANCELED: "broken",
    ResultWord.NOT_APPLICABLE: "skipped",
}
CRITICAL_CATEGORIES = ("Storage", "HA Storage", "Chaos")
# Known failure kinds, matched against a failed result's reason (Allure categories).
# Regexes in the dialect both Allure readers share (Java and JavaScript): no inline
# flags, so cases are spelled out and [\s\S] stands for "anything, newlines too".
CATEGORIES: list[dict[str, Any]] = [
    {"name": "Data loss: an acknowledged write lost, stale, torn or misplaced",
     "matchedStatuses": ["failed"],
     "messageRegex": r"[\s\S]*\b([Ll]ost|[Ss]tale|[Tt]orn|[Mm]isplaced|[Cc]orrupt\w*"
                     r"|[Dd]ata loss)\b[\s\S]*"},
    {"name": "Split brain or replica divergence",
     "matchedStatuses": ["failed"],
     "messageRegex": r"[\s\S]*([Ss]plit.[Bb]rain|[Dd]iverg\w*|replicas? differ)[\s\S]*"},
    {"name": "Availability: failover or I/O pause over budget",
     "matchedStatuses": ["failed"],
     "messageRegex": r"[\s\S]*([Bb]udget|[Ff]ailover|[Pp]ause|[Tt]imed? ?out)[\s\S]*"},
    {"name": "Site configuration: a validation check failed",
     "matchedStatuses": ["failed"], "messageRegex": r"[\s\S]*"},
    {"name": "Harness or heal error (the run could not finish)",
     "matchedStatuses": ["broken"]},
]


def severity(result: CheckResult) -> str:
    if result.labels.get("severity"):
        return result.labels["severity"]
    return "critical" if result.category in CRITICAL_CATEGORIES else "normal"


def labels(result: CheckResult) -> list[tuple[str, str]]:
    out = [("epic", result.category), ("feature", result.name),
           ("severity", severity(result)), ("parentSuite", result.kind),
           ("suite", result.category), ("framework", "splitbrain")]
    if result.labels.get("family"):
        out.append(("story", result.labels["family"]))
    for key in ("site", "seed", "scenario", "device"):
        if result.labels.get(key):
            out.append(("tag", f"{key}:{result.labels[key]}"))
    if result.result is ResultWord.WARNING:
        out.append(("tag", "warning"))
    return out


# Titles the chaos and validation records use, by the phase they belong to.
TITLE_PHASES = (
    ("steady state", "steady state"),
    ("schedule", "inject"), ("took effect", "inject"), ("no effect", "inject"),
    ("inject", "inject"), ("fault", "inject"),
    ("recovery", "heal"), ("heal", "heal"), ("resync", "heal"),
    ("checker", "verify"), ("problem", "verify"), ("replicas after", "verify"),
    ("verify", "verify"),
)


def phase_of(evidence: Evidence) -> tuple[str, str]:
    """The phase an evidence belongs to and its title without a ``"<phase>: "`` prefix.

    An explicit prefix naming one of ``PHASES`` decides; otherwise the title's
    first words (``TITLE_PHASES``); otherwise the ``evidence`` phase.
    """
    head, sep, rest = evidence.title.partition(":")
    if sep and head.strip().lower() in PHASES:
        return head.strip().lower(), rest.strip() or evidence.title
    lowered = evidence.title.strip().lower()
    for start, phase in TITLE_PHASES:
        if lowered.startswith(start):
            return phase, evidence.title
    return "evidence", evidence.title


@dataclass
class Phase:
    name: str
    evidence: list[tuple[str, str]] = field(default_factory=list)  # (title, redacted text)
    attachments: list[Attachment] = field(default_factory=list)


def phases(result: CheckResult, redactor: Redactor) -> list[Phase]:
    """The steps of a result, in ``PHASES`` order, each with what belongs to it."""
    by_name = {p: Phase(p) for p in PHASES}
    for e in result.evidence:
        name, title = phase_of(e)
        by_name[name].evidence.append((redactor.text(title), redactor.text(e.text)))
    for a in result.attachments:
        name, _ = phase_of(Evidence(a.name, ""))
        by_name[name].attachments.append(a)
    return [p for name, p in by_name.items()
            if p.evidence or p.attachments or name == "verify"]


def status_message(result: CheckResult, redactor: Redactor) -> str:
    return redactor.text(f"{result.result}: {result.reason}" if result.reason
                         else str(result.result))


# --- inside pytest -----------------------------------------------------------------------

def publish(result: CheckResult, results_dir: str | Path | None = None,
            redactor: Redactor | None = None) -> None:
    """Label the running test with ``result`` and add its steps and attachments.

    ``results_dir`` is where the record's attachment paths are relative to
    (the ``ResultsDir`` it was written to); without it only evidence text is
    attached. Does nothing visible when pytest runs without ``--alluredir``.
    """
    import allure

    redactor = redactor or Redactor.from_environment()
    for name, value in labels(result):
        allure.dynamic.label(name, value)
    allure.dynamic.title(f"{result.category}: {result.name}")
    allure.dynamic.description(redactor.text(result.description))
    for key, value in sorted(result.numbers.items()):
        # allure shows repr(): numbers as they are, text redacted
        allure.dynamic.parameter(key, redactor.text(value) if isinstance(value, str) else value)
    for phase in phases(result, redactor):
        with allure.step(phase.name):
            for title, text in phase.evidence:
                allure.attach(text, name=title, attachment_type=allure.attachment_type.TEXT)
            for a in phase.attachments:
                source = Path(results_dir) / a.path if results_dir is not None else None
                if source is None or not source.is_file():
                    allure.attach(f"{a.path} (not available)", name=a.name,
                                  attachment_type=allure.attachment_type.TEXT)
                    continue
                allure.attach(redactor.file(source, a.media_type), name=a.name,
                              attachment_type=a.media_type, extension=_extension(a))
            if phase.name == "verify":
                allure.attach(status_message(result, redactor), name="result",
                              attachment_type=allure.attachment_type.TEXT)


# --- from recorded results ---------------------------------------------------------------

def _extension(a: Attachment) -> str:
    suffix = Path(a.path).suffix.lstrip(".")
    return suffix or (mimetypes.guess_extension(a.media_type) or ".bin").lstrip(".")


def _ms(t: float) -> int:
    return int(t * 1000)


class _ResultsWriter:
    def __init__(self, out: Path, redactor: Redactor, when: float) -> None:
        self.out = out
        self.redactor = redactor
        self.when = when  # for a result that records no time (Not Applicable)

    def attach(self, name: str, data: bytes, media_type: str, ext: str) -> dict[str, str]:
        source = f"{uuid.uuid4()}-attachment.{ext}"
        (self.out / source).write_bytes(data)
        return {"name": name, "source": source, "type": media_type}

    def test(self, result: CheckResult, files: dict[str, Path]) -> dict[str, Any]:
        status = STATUS[result.result]
        started = result.started or result.finished or self.when
        start, stop = _ms(started), _ms(max(result.finished, started))
        steps = []
        for phase in phases(result, self.redactor):
            attachments = [self.attach(t, x.encode(), "text/plain", "txt")
                           for t, x in phase.evidence]
            for a in phase.attachments:
                f = files.get(a.path)
                if f is None:
                    attachments.append(self.attach(a.name, f"{a.path}: missing from the "
                                                   "results directory".encode(),
                                                   "text/plain", "txt"))
                else:
                    attachments.append(self.attach(a.name, f.read_bytes(), a.media_type,
                                                   _extension(a)))
            if phase.name == "verify":
                attachments.append(self.attach("result", status_message(
                    result, self.redactor).encode(), "text/plain", "txt"))
            steps.append({"name": phase.name, "status": status if phase.name == "verify"
                          else "passed", "stage": "finished", "start": start, "stop": stop,
                          "attachments": attachments, "steps": [], "parameters": []})
        full = f"{result.kind}.{result.category}.{result.name}"
        identity = full + "".join(f"|{k}={v}" for k, v in sorted(result.labels.items())
                                  if k not in ("seed", "site"))
        body: dict[str, Any] = {
            "uuid": str(uuid.uuid4()),
            "historyId": hashlib.md5(identity.encode()).hexdigest(),
            "testCaseId": hashlib.md5(full.encode()).hexdigest(),
            "fullName": full,
            "name": f"{result.category}: {result.name}",
            "description": self.redactor.text(result.description),
            "status": status,
            "statusDetails": {"message": status_message(result, self.redactor)},
            "stage": "finished",
            "start": start,
            "stop": stop,
            "labels": [{"name": n, "value": self.redactor.text(v)} for n, v in labels(result)],
            "parameters": [{"name": k, "value": self.redactor.text(str(v))}
                           for k, v in sorted(result.numbers.items())],
            "steps": steps,
            "attachments": [],
            "links": [],
        }
        (self.out / f"{body['uuid']}-result.json").write_text(json.dumps(body, indent=1))
        return body


def environment(info: RunInfo, results: list[CheckResult]) -> dict[str, str]:
    """Allure's environment table: harness version, site, hosts, targets, seed."""
    targets = sorted({r.labels[k] for r in results for k in ("target", "device")
                      if r.labels.get(k)})
    seeds = sorted({r.labels["seed"] for r in results if r.labels.get("seed")})
    if info.seed is not None:
        seeds = sorted({*seeds, str(info.seed)})
    return {
        "harness.version": info.harness_version,
        "site": info.site,
        "hosts": ", ".join(info.hosts) or "-",
        "targets": ", ".join(targets) or "-",
        "seed": ", ".join(seeds) or "-",
        "inventory.digest": info.inventory_digest or "-",
        "run.by": f"{info.user}@{info.machine}",
        "command": info.command,
    }


def write_environment(out: Path, env: dict[str, str], redactor: Redactor) -> None:
    """``environment.properties`` and ``categories.json`` in an allure-results folder."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"{k}={_escape(redactor.text(v))}" for k, v in env.items()]
    (out / "environment.properties").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "categories.json").write_text(json.dumps(CATEGORIES, indent=1), encoding="utf-8")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def write_results(items: Iterator[tuple[CheckResult, dict[str, Path]]], info: RunInfo,
                  out: Path, redactor: Redactor) -> int:
    """Write ``out`` as an allure-results folder; ``items`` pairs each result with its
    (already redacted) attachment files by record path. Returns the number of tests."""
    out.mkdir(parents=True, exist_ok=True)
    writer = _ResultsWriter(out, redactor, info.started or info.finished)
    results = []
    for result, files in items:
        writer.test(result, files)
        results.append(result)
    write_environment(out, environment(info, results), redactor)
    return len(results)
