"""Reports of a real lab run in which a defect was caught.

The bundled lab runs with the defect ``identity-per-node`` on HA2 (each replica
presents its own VPD identity) and a host whose password is a ``${ENV}``
reference; the validation catalogue runs against it into a results directory.
The reports built from that directory must show the caught defect first, with
its diagnosis and evidence, count every result as the run did, open in
Chromium without error, and carry the password nowhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.settings import LAB_INVENTORY
from fixtures.sut import SystemUnderTest
from harness.checks.results import ResultsDir, ResultWord
from harness.lab.backends import lab_for
from harness.lab.inventory import load
from harness.report.build import build_report
from harness.validation.runner import validate
from harness.validation.site import ValidationSite

pytestmark = pytest.mark.slow

SECRET = "lab-planted-password-5c1e"
CAUGHT = "Validate SCSI device Vital Product Data (VPD)"
COUNTS_JS = """Object.fromEntries([...document.querySelectorAll('#summary tr[data-category]')]
  .map(r => [r.dataset.category, Object.fromEntries([...r.querySelectorAll('td[data-word]')]
    .map(c => [c.dataset.word, Number(c.textContent)]))]))"""


def defect_inventory(path: Path) -> Path:
    text = LAB_INVENTORY.read_text().replace(
        'purpose = "vm-storage"', 'purpose = "vm-storage"\ndefects = ["identity-per-node"]', 1)
    text += '\n[hosts.SWS-DC.access]\nuser = "admin"\npassword = "${SB_REPORT_LAB_PASSWORD}"\n'
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def lab_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResultsDir]:
    tmp = tmp_path_factory.mktemp("lab-run")
    mp = pytest.MonkeyPatch()
    mp.setenv("SB_REPORT_LAB_PASSWORD", SECRET)
    inventory = load(defect_inventory(tmp / "lab.toml"))
    lab = lab_for(inventory, tmp / "state")
    lab.up(inventory)
    try:
        results = ResultsDir(tmp / "results")
        report = validate(ValidationSite(SystemUnderTest(inventory, lab)), results=results,
                          command="pytest test_report_from_lab")
        assert report.failed, "the defect was not caught: nothing for the report to show"
        inventory.hosts["SWS-DC"].access.password.resolve()  # the run knew the secret
        results.attach("inventory.toml", Path(inventory.path), "application/toml")
        yield results
    finally:
        lab.down()
        mp.undo()


def test_caught_defect_first_with_diagnosis_and_evidence(lab_results, chromium, artifacts_dir,
                                                         tmp_path) -> None:
    built = build_report([lab_results.path], tmp_path / "report")
    records = lab_results.read_all()
    assert built.problems == [] and len(built.run.records) == len(records)

    page = chromium.open(built.audit.resolve().as_uri(), settle_s=0.2)
    assert page.errors == []
    assert all(u.startswith(("file:", "data:")) for u in page.requests), page.requests
    expected: dict[str, dict[str, int]] = {}
    for r in records:
        row = expected.setdefault(r.category, {str(w): 0 for w in ResultWord})
        row[str(r.result)] += 1
    assert page.evaluate(COUNTS_JS) == expected
    sections = page.evaluate("""[...document.querySelectorAll('section.check')].map(s =>
        [s.querySelector('h3').textContent.split(' \u2014 ')[0], s.dataset.result, s.innerText])""")
    failed = [r.name for r in records if r.result is ResultWord.FAILED]
    assert {name for name, _, _ in sections[:len(failed)]} == set(failed), \
        [(s[0], s[1]) for s in sections]  # failures first
    assert all(word == "Failed" for _, word, _ in sections[:len(failed)])
    caught = next(r for r in records if r.name == CAUGHT)
    assert caught.result is ResultWord.FAILED
    assert "HA2" in caught.reason and "identities" in caught.reason
    text = next(t for name, _, t in sections if name == CAUGHT)
    assert caught.reason in text  # the diagnosis
    assert caught.evidence and all(e.text.strip()[:60] in text
                                   for e in caught.evidence)  # and its evidence
    page.screenshot(artifacts_dir / "report" / "lab-defect-audit.png")

    if built.allure is not None:
        allure = chromium.open(built.allure.resolve().as_uri(), settle_s=3.0)
        assert allure.errors == []
        allure.screenshot(artifacts_dir / "report" / "lab-defect-allure.png")

    for f in built.out.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
    for f in lab_results.path.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


def test_report_of_a_real_chaos_scenario_shows_its_timeline(chromium, artifacts_dir,
                                                           tmp_path) -> None:
    """``splitbrain chaos --scenario path-one`` on a lab of its own, then its report."""
    import os
    import subprocess
    import sys

    out = tmp_path / "chaos"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "chaos", "--scenario", "path-one", "--seed", "3",
         "--state-dir", str(tmp_path / "lab"), "--output", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "SB_REPORT_CHAOS_TOKEN": SECRET})
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "\x1b[" not in done.stdout  # not a terminal: plain lines, no colour
    built = build_report([out], tmp_path / "report")
    [record] = built.run.records
    names = [a.name for a in record.result.attachments]
    assert any(n.endswith("timeline.png") for n in names)
    assert any(n.endswith("history.jsonl.gz") for n in names)
    assert any("-logs-" in n for n in names)  # the storage nodes' and proxy's logs
    page = chromium.open(built.audit.resolve().as_uri(), settle_s=0.2)
    assert page.errors == []
    images = page.evaluate("[...document.images].map(i => [i.alt, i.complete, i.naturalWidth])")
    assert [alt for alt, ok, width in images if ok and width > 0] == \
        [n for n in names if n.endswith("timeline.png")]
    page.screenshot(artifacts_dir / "report" / "lab-chaos-audit.png")
    for f in [*built.out.rglob("*"), *out.rglob("*")]:
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
