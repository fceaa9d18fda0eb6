"""Fixtures of the validation suites: the site to validate and where results go.

``validation_site`` wraps the session's ``sut`` for ``harness.validation`` (a
lab, shared with the other suites, once its replicas are Synchronized again);
``validation_results`` is the ``ResultsDir`` every test writes its
``CheckResult`` into (``--results DIR``, else a directory of the run), with the
run's ``run.json`` written at the end of the session, so ``splitbrain report``
can render a suite run exactly as it renders ``splitbrain validate``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures.plugin import SETTINGS_KEY
from harness.checks.results import ResultsDir
from harness.validation.runner import write_run_info
from harness.validation.site import ValidationSite


@pytest.fixture(scope="session")
def validation_site(sut: Any) -> ValidationSite:
    """The site to validate. The bundled lab is shared with the other suites of the
    session, so it is validated once its replicas have settled (Synchronized, within
    the budget's ``resync_s``); a real site is validated exactly as it is."""
    if sut.lab is not None:
        sut.wait_synchronized()
    return ValidationSite(sut)


@pytest.fixture(scope="session")
def validation_results(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory,
                       validation_site: ValidationSite) -> Iterator[ResultsDir]:
    path = pytestconfig.stash[SETTINGS_KEY].results or tmp_path_factory.mktemp("validation")
    results = ResultsDir(path)
    started = time.time()
    yield results
    write_run_info(results, validation_site, "pytest suites/validation", started)
