"""splitbrain report: every output from recorded results, secrets never shipped, bad input named."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main
from harness.report import build as build_module
from harness.report.manifest import MANIFEST


def _report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["report", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _plant_raw(results: Path, planted: str, inline: str) -> None:
    """Secrets written around ResultsDir (a node log copied in by hand, a record edited)."""
    (results / "attachments" / "node.log").write_text(
        f"tgtd: CHAP login, secret {planted}\npassword={inline}\n")
    record = next((results / "results").glob("chaos-*.json"))
    text = record.read_text().replace('"attachments": [',
                                      '"attachments": [{"name": "node.log", "path": '
                                      '"attachments/node.log", "media_type": "text/plain"}, ', 1)
    record.write_text(text.replace("3 acknowledged writes lost", f"lost; token {planted}"))


def test_report_from_results_has_every_output_and_no_secret(example_results, planted_env,
                                                            tmp_path, capsys) -> None:
    planted, inline = planted_env
    _plant_raw(example_results.path, planted, inline)
    out = tmp_path / "report"
    code, stdout, _ = _report(capsys, str(example_results.path), "--out", str(out),
                              "--no-allure")
    assert code == 0
    assert stdout.strip().splitlines()[-1] == f"audit report   {out / 'audit.html'}"
    for name in ("audit.html", "junit.xml", MANIFEST, "allure-results/environment.properties",
                 "allure-results/categories.json", "evidence/attachments/timeline.png",
                 "records/run.json"):
        assert (out / name).is_file(), name
    produced = [p for p in out.rglob("*") if p.is_file()]
    assert len(produced) > 10
    for f in produced:
        data = f.read_bytes()
        assert planted.encode() not in data, f
        assert inline.encode() not in data, f
    audit = (out / "audit.html").read_text()
    assert "REDACTED" in audit


def test_audit_lists_failures_first_with_counts_and_inline_timeline(example_results, tmp_path,
                                                                   capsys) -> None:
    out = tmp_path / "r"
    assert _report(capsys, str(example_results.path), "--out", str(out), "--no-allure")[0] == 0
    audit = (out / "audit.html").read_text()
    index = audit[audit.index('id="index"'):]
    order = re.findall(r'<tr data-result="([^"]+)">', index)
    assert order == ["Failed", "Warning", "Success", "Not Applicable"]
    assert re.search(r'<img class="timeline" alt="timeline.png" src="data:image/png;base64,', audit)
    assert "3 acknowledged writes lost" in audit
    assert "block 17 written at 3.2 s: lost" in audit  # the evidence of the failure
    chaos_row = re.search(r'<tr data-category="Chaos">(.*?)</tr>', audit, re.S).group(1)
    assert re.findall(r'data-word="([^"]+)">(\d+)<', chaos_row)[2] == ("Failed", "1")
    suites = ET.parse(out / "junit.xml").getroot()
    assert (suites.get("tests"), suites.get("failures"), suites.get("skipped")) == ("4", "1", "1")


def test_verify_names_the_one_altered_attachment(example_results, tmp_path, capsys) -> None:
    out = tmp_path / "r"
    _report(capsys, str(example_results.path), "--out", str(out), "--no-allure")
    code, stdout, _ = _report(capsys, "--verify", str(out))
    assert code == 0 and "match" in stdout
    journal = out / "evidence" / "attachments" / "faults.jsonl"
    journal.write_text(journal.read_text().replace("sync-blackhole", "path-cut"))
    code, stdout, stderr = _report(capsys, "--verify", str(out))
    assert code == 1
    assert stdout.splitlines() == ["ALTERED  evidence/attachments/faults.jsonl"]
    assert "1 altered" in stderr


def test_folder_without_results_is_one_line_and_no_report(tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _stdout, stderr = _report(capsys, str(empty), "--out", str(tmp_path / "r"))
    assert code == 4
    assert len(stderr.strip().splitlines()) == 1
    assert str(empty / "results") in stderr and "no result records" in stderr
    assert not (tmp_path / "r").exists()


def test_damaged_record_and_missing_attachment_are_named_and_the_rest_reported(
        example_results, tmp_path, capsys) -> None:
    record = next((example_results.path / "results").glob("validation-Network-*.json"))
    record.write_text(record.read_text()[:80])  # truncated mid-write
    (example_results.path / "attachments" / "history.jsonl.gz").unlink()
    out = tmp_path / "r"
    code, _stdout, stderr = _report(capsys, str(example_results.path), "--out", str(out),
                                    "--no-allure")
    assert code == 3
    lines = stderr.strip().splitlines()
    assert len(lines) == 2
    assert str(record) in lines[0] or str(record) in lines[1]
    assert any("history.jsonl.gz" in line and "missing from disk" in line for line in lines)
    audit = (out / "audit.html").read_text()
    assert 'id="read-problems"' in audit and record.name in audit
    assert audit.count('<section class="check') == 3  # everything else is there
    assert "missing from the results directory" in audit


def test_an_interrupted_build_leaves_the_earlier_report_alone(example_results, tmp_path,
                                                              capsys, monkeypatch) -> None:
    out = tmp_path / "r"
    _report(capsys, str(example_results.path), "--out", str(out), "--no-allure")
    before = (out / "audit.html").read_bytes()

    def broken(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(build_module, "render_junit", broken)
    with pytest.raises(OSError):
        build_module.build_report([example_results.path], out, allure=False)
    assert (out / "audit.html").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_without_node_the_audit_report_is_made_and_the_command_says_how(
        example_results, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    monkeypatch.delenv("SPLITBRAIN_ALLURE", raising=False)
    out = tmp_path / "r"
    code, stdout, _ = _report(capsys, str(example_results.path), "--out", str(out))
    assert code == 0
    assert "Allure report skipped: Node.js is not installed" in stdout
    assert "make allure" in stdout
    assert (out / "audit.html").is_file() and not (out / "allure-report").exists()


def test_out_that_holds_other_files_is_refused(example_results, tmp_path, capsys) -> None:
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    code, _, stderr = _report(capsys, str(example_results.path), "--out", str(other))
    assert code == 4 and "not empty" in stderr
    assert (other / "notes.txt").read_text() == "keep me"


def test_without_results_the_newest_under_reports_is_used(example_results, tmp_path, capsys,
                                                          monkeypatch) -> None:
    import os
    import shutil

    reports = tmp_path / "work" / "reports"
    older, newer = reports / "validation-old", reports / "chaos-new"
    shutil.copytree(example_results.path, older)
    shutil.copytree(example_results.path, newer)
    os.utime(older, (1, 1))
    monkeypatch.chdir(tmp_path / "work")
    code, stdout, _ = _report(capsys, "--no-allure")
    assert code == 0
    assert stdout.strip().splitlines()[-1].endswith("reports/chaos-new/report/audit.html")


def test_a_run_without_run_json_is_named_and_reported(example_results, tmp_path, capsys) -> None:
    (example_results.path / "run.json").unlink()  # the run was killed before its end
    out = tmp_path / "r"
    code, _, stderr = _report(capsys, str(example_results.path), "--out", str(out), "--no-allure")
    assert code == 3
    assert stderr.strip() == (f"splitbrain report: error: cannot use {example_results.path}/"
                              "run.json: missing: the run did not finish (killed?); the header "
                              "is made from its records")
    audit = (out / "audit.html").read_text()
    assert audit.count('<section class="check') == 4 and "<td>lab</td>" in audit

