"""Checks, the record of one check's run, and the wizard's summary words.

A ``Check`` is registered with ``@check(category, name, description)`` on an
async function ``fn(run: CheckRun) -> Outcome``. ``CheckRun`` is what the
function writes its evidence and numbers into while it works; ``Outcome`` is
its verdict (a result word and a one-line reason). ``execute`` runs one check
with a deadline and turns every way it can end into a ``CheckResult``: an
error a user can cause (a host that does not answer, a login refused) is
Failed with that error's one line; a check that overran its deadline is
Canceled. Nothing raised by a check stops the run of the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from harness.checks.results import CheckResult, Evidence, ResultWord, worst
from harness.errors import SplitbrainError

CATEGORIES = (
    "Inventory",
    "Network",
    "Storage",
    "System Configuration",
    "Hyper-V Configuration",
    "Cluster Configuration",
    "HA Storage",
)

DEFAULT_DEADLINE_S = 120.0

Success = ResultWord.SUCCESS
Warning_ = ResultWord.WARNING
Failed = ResultWord.FAILED
NotApplicable = ResultWord.NOT_APPLICABLE
Canceled = ResultWord.CANCELED


class ValidationError(SplitbrainError):
    """A validation run that cannot start: an unknown check or category, a bad option."""

    exit_code = 2


@dataclass(frozen=True)
class Outcome:
    """What a check concluded: the result word and one line saying why."""

    result: ResultWord
    reason: str


def success(reason: str) -> Outcome:
    return Outcome(ResultWord.SUCCESS, reason)


def warning(reason: str) -> Outcome:
    return Outcome(ResultWord.WARNING, reason)


def failed(reason: str) -> Outcome:
    return Outcome(ResultWord.FAILED, reason)


def not_applicable(reason: str) -> Outcome:
    return Outcome(ResultWord.NOT_APPLICABLE, reason)


def judged(problems: list[str], warnings: list[str], ok: str) -> Outcome:
    """Failed with the first problem (and how many more), else Warning, else Success."""
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        return failed(problems[0] + more)
    if warnings:
        more = f" (and {len(warnings) - 1} more warning(s))" if len(warnings) > 1 else ""
        return warning(warnings[0] + more)
    return success(ok)


@dataclass
class CheckRun:
    """Evidence and numbers a check gathers while it runs."""

    site: Any  # harness.validation.site.ValidationSite
    steps: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    numbers: dict[str, float | int | str] = field(default_factory=dict)

    def step(self, line: str) -> None:
        """One line of the chronological log (a CDB sent and its answer, a command run)."""
        self.steps.append(line)

    def add(self, title: str, text: str) -> None:
        self.evidence.append(Evidence(title, text))

    def number(self, name: str, value: float | int | str) -> None:
        self.numbers[name] = value


CheckFunction = Callable[[CheckRun], Awaitable[Outcome]]


@dataclass(frozen=True)
class Check:
    category: str
    name: str
    description: str
    fn: CheckFunction
    destructive: bool = False
    deadline_s: float = DEFAULT_DEADLINE_S

    @property
    def slug(self) -> str:
        return self.name.lower().replace(" ", "_")


CATALOGUE: list[Check] = []


def check(
    category: str,
    name: str,
    description: str,
    *,
    destructive: bool = False,
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> Callable[[CheckFunction], CheckFunction]:
    """Register ``fn`` as the check ``name`` of ``category`` (names as the wizard spells them)."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")

    def register(fn: CheckFunction) -> CheckFunction:
        if any(c.name == name for c in CATALOGUE):
            raise ValueError(f"check {name!r} registered twice")
        CATALOGUE.append(Check(category, name, description, fn, destructive, deadline_s))
        return fn

    return register


async def execute(chk: Check, site: Any) -> CheckResult:
    """Run one check to its result; nothing it raises escapes."""
    run = CheckRun(site)
    started = time.time()
    t0 = time.monotonic_ns()
    try:
        outcome = await asyncio.wait_for(chk.fn(run), chk.deadline_s)
    except TimeoutError:
        outcome = Outcome(
            ResultWord.CANCELED, f"did not finish within {chk.deadline_s:.0f} s; canceled"
        )
    except SplitbrainError as exc:
        outcome = failed(_one_line(f"{type(exc).__name__}: {exc}"))
    except (OSError, ConnectionError) as exc:
        outcome = failed(_one_line(f"{type(exc).__name__}: {exc}"))
    run.number("duration_s", round((time.monotonic_ns() - t0) / 1e9, 3))
    evidence = list(run.evidence)
    if run.steps:
        evidence.insert(0, Evidence("Steps", "\n".join(run.steps)))
    return CheckResult(
        kind="validation",
        category=chk.category,
        name=chk.name,
        description=chk.description,
        result=outcome.result,
        reason=outcome.reason,
        started=started,
        finished=time.time(),
        evidence=evidence,
        numbers=dict(run.numbers),
        labels={"site": site.name},
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def summary_words(results: list[CheckResult], unselected: int = 0) -> str:
    """The wizard's closing words for a run (and its Test-Cluster tokens where known)."""
    words = [r.result for r in results]
    tokens = ["HadUnselectedTests"] if unselected else []
    failed_n = words.count(ResultWord.FAILED)
    canceled_n = words.count(ResultWord.CANCELED)
    warned_n = words.count(ResultWord.WARNING)
    head = worst(words)
    if head is ResultWord.FAILED:
        text = (f"Validation failed: {failed_n} test(s) failed; the configuration is not "
                "suitable for clustering")
    elif head is ResultWord.CANCELED:
        text = f"Validation incomplete: {canceled_n} test(s) canceled"
    elif head is ResultWord.WARNING:
        text = f"Validation passed with warnings ({warned_n} test(s) reported warnings)"
        tokens.append("ClusterConditionallyApproved")
    elif words and all(w is ResultWord.NOT_APPLICABLE for w in words):
        text = "Validation ran no applicable test"
    else:
        text = "Validation passed"
    return f"{text}" + (f" [Test Result: {', '.join(tokens)}]" if tokens else "")


def select(
    checks: list[Check], include: list[str] | None = None, ignore: list[str] | None = None
) -> list[Check]:
    """The checks ``include`` names (category or exact test name; all when empty),
    minus those ``ignore`` names; an unknown name is refused."""
    known = {c.name.lower() for c in checks} | {c.category.lower() for c in checks}
    for given in [*(include or []), *(ignore or [])]:
        if given.lower() not in known:
            from harness.lab.toml_source import did_you_mean

            names = sorted({c.name for c in checks} | {c.category for c in checks})
            raise ValidationError(
                f"no validation test or category named {given!r} ({did_you_mean(given, names)})"
            )

    def named(c: Check, names: list[str]) -> bool:
        lowered = {n.lower() for n in names}
        return c.name.lower() in lowered or c.category.lower() in lowered

    chosen = [c for c in checks if not include or named(c, include)]
    return [c for c in chosen if not (ignore and named(c, ignore))]
