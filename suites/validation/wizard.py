"""One validation check as a pytest test: run it, record it, let its result word decide.

Success passes; Warning passes with a ``ValidationWarning`` carrying the reason;
Failed and Canceled fail with the reason (and the last steps of the evidence);
Not Applicable skips with the reason. The ``CheckResult`` is written to the
run's results directory whatever the outcome.
"""

from __future__ import annotations

import warnings

import pytest

from harness.checks.results import CheckResult, ResultsDir, ResultWord
from harness.report.allure_results import publish
from harness.validation.runner import find, run_one
from harness.validation.site import ValidationSite


class ValidationWarning(UserWarning):
    """A validation test ended in Warning (passes, as the wizard allows)."""


def wizard(name: str, site: ValidationSite, results: ResultsDir) -> CheckResult:
    """Run the check named ``name`` (as the wizard names it) and turn its word into pytest's."""
    result = run_one(find(name), site)
    results.write(result)
    publish(result, results.path)  # Allure labels, steps and evidence (with --alluredir)
    word = result.result
    if word is ResultWord.WARNING:
        warnings.warn(ValidationWarning(f"{name}: {result.reason}"), stacklevel=2)
    elif word is ResultWord.NOT_APPLICABLE:
        # reported at the test (its name reads as the wizard's), not at this helper
        raise pytest.skip.Exception(f"Not Applicable: {result.reason}",
                                    _use_item_location=True)
    elif word in (ResultWord.FAILED, ResultWord.CANCELED):
        steps = next((e.text for e in result.evidence if e.title == "Steps"), "")
        tail = "\n".join(steps.splitlines()[-15:])
        pytest.fail(f"{word}: {result.reason}" + (f"\nlast steps:\n{tail}" if tail else ""),
                    pytrace=False)
    return result
