"""Both reports open in headless Chromium: no console error, no request leaves the page,
the summary counts match the example_results, the timeline image loads, a failure comes first.
Screenshots go to the artifacts folder (``reports/test-artifacts/report/``)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from harness.report.build import build_report

pytestmark = pytest.mark.slow

COUNTS_JS = """[...document.querySelectorAll('#summary tr[data-category]')].map(r =>
  [r.dataset.category, Object.fromEntries([...r.querySelectorAll('td[data-word]')]
    .map(c => [c.dataset.word, Number(c.textContent)]))])"""
IMAGES_JS = "[...document.images].map(i => [i.alt, i.complete, i.naturalWidth])"
OPEN_TEST_JS = """[...document.querySelectorAll('span')]
  .find(e => e.children.length == 0 && e.textContent.includes(%s)).click()"""
FIRST_JS = "document.querySelector('#index tr[data-result]').dataset.result"


def expected_counts(records) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for rec in records:
        r = rec.result
        row = out.setdefault(r.category, {w: 0 for w in
                                          ("Success", "Warning", "Failed", "Not Applicable",
                                           "Canceled")})
        row[str(r.result)] += 1
    return out


def check_audit(chromium, built, shots: Path, name: str) -> None:
    page = chromium.open(built.audit.resolve().as_uri(), settle_s=0.2)
    assert page.errors == []
    assert all(u.startswith(("file:", "data:")) for u in page.requests), page.requests
    counts = dict(page.evaluate(COUNTS_JS))
    assert counts == expected_counts(built.run.records)
    images = page.evaluate(IMAGES_JS)
    assert images and all(complete and width > 0 for _, complete, width in images), images
    first = built.run.ordered()[0].result
    assert page.evaluate(FIRST_JS) == str(first.result)
    page.screenshot(shots / f"{name}-audit.png")


def test_both_reports_in_chromium(example_results, chromium, artifacts_dir, tmp_path) -> None:
    built = build_report([example_results.path], tmp_path / "report")
    shots = artifacts_dir / "report"
    check_audit(chromium, built, shots, "example")
    assert built.run.ordered()[0].result.result == "Failed"

    if built.allure is None:
        pytest.skip(f"Allure report not built here: {built.notes}")
    page = chromium.open(built.allure.resolve().as_uri(), settle_s=3.0)
    assert page.errors == []
    assert all(u.startswith(("file:", "data:", "blob:")) for u in page.requests), page.requests
    text = page.evaluate("document.body.innerText")
    total = re.search(r"Total\s+(\d+)", text)
    assert total and int(total.group(1)) == len(built.run.records), text[:400]
    assert re.search(r"Failed\s+1\b", text), text[:400]
    page.screenshot(shots / "example-allure.png")
    failed = built.run.ordered()[0].result
    page.evaluate(OPEN_TEST_JS % json.dumps(failed.name))
    chromium.loop.run_until_complete(asyncio.sleep(1.0))
    detail = page.evaluate("document.body.innerText")
    assert "Category: Data loss" in detail, detail[:600]  # the known failure kind
    assert "steady state" in detail and "verify" in detail  # one step per phase
    page.screenshot(shots / "example-allure-failed-test.png")
    summary = json.loads((built.out / "allure-report" / "summary.json").read_text())
    assert summary["stats"]["failed"] == 1, summary
