"""The pinned Allure 3 CLI (Node) renders a report wherever --out points, relative or not."""

from __future__ import annotations

import pytest

from harness.cli import main
from harness.report.allure_html import AllureUnavailable, allure_cli


def test_allure_report_with_a_relative_out(example_results, tmp_path, capsys,
                                           monkeypatch) -> None:
    try:
        allure_cli()
    except AllureUnavailable as exc:
        pytest.skip(str(exc))
    monkeypatch.chdir(tmp_path)
    code = main(["report", str(example_results.path), "--out", "rel/report"])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    assert "Allure report  rel/report/allure-report/index.html" in stdout
    index = tmp_path / "rel" / "report" / "allure-report" / "index.html"
    assert "googletagmanager" not in index.read_text()  # no analytics tag
