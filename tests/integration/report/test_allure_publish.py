"""A suite's one call (publish) labels its pytest test for Allure; the session adds the
environment and the failure categories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SUITE = textwrap.dedent('''
    import os

    import pytest

    from harness.checks.results import CheckResult, Evidence, ResultsDir, ResultWord
    from harness.report.allure_results import publish


    def test_sync_blackhole(tmp_path):
        rd = ResultsDir(tmp_path)
        journal = rd.attach("inject: faults.jsonl", '{"fault": "sync-blackhole"}',
                            "application/json")
        result = CheckResult(
            kind="chaos", category="Chaos", name="sync link black hole",
            description="Black-holes the sync channel under load.", result=ResultWord.FAILED,
            reason="2 acknowledged writes lost",
            evidence=[Evidence("steady state: replicas", "synchronized"),
                      Evidence("heal: sync-blackhole", "healed after 2.0 s"),
                      Evidence("SCSI sense", "ssh " + os.environ["SB_PLANTED_TOKEN"])],
            attachments=[journal], numbers={"lost": 2},
            labels={"site": "lab", "seed": "7", "family": "sync-link"})
        publish(result, rd.path)
        pytest.fail(result.reason)
''')


def test_publish_labels_steps_and_attachments(tmp_path: Path) -> None:
    """The inner suite reads a secret (a secret-named variable) into its evidence."""
    (tmp_path / "test_suite.py").write_text(SUITE)
    alluredir = tmp_path / "allure-results"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
         str(tmp_path), "-c", os.devnull, f"--alluredir={alluredir}", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
        env={**os.environ, "SB_PLANTED_TOKEN": "planted-in-evidence-77"})
    assert done.returncode == 1, done.stdout + done.stderr  # the test failed, as recorded
    [result_file] = alluredir.glob("*-result.json")
    body = json.loads(result_file.read_text())
    labels = {(x["name"], x["value"]) for x in body["labels"]}
    assert {("epic", "Chaos"), ("feature", "sync link black hole"), ("severity", "critical"),
            ("story", "sync-link"), ("tag", "site:lab"), ("tag", "seed:7")} <= labels
    assert [s["name"] for s in body["steps"]] == ["steady state", "inject", "evidence", "heal",
                                                  "verify"]
    inject = body["steps"][1]
    assert [a["name"] for a in inject["attachments"]] == ["inject: faults.jsonl"]
    assert (alluredir / inject["attachments"][0]["source"]).read_text() == \
        '{"fault": "sync-blackhole"}'
    assert body["parameters"] == [{"name": "lost", "value": "2"}]
    env = (alluredir / "environment.properties").read_text()
    assert "site=lab" in env and "seed=" in env and "harness.version=" in env
    assert "HA2:" in env  # the lab's devices and their target names
    names = [c["name"] for c in json.loads((alluredir / "categories.json").read_text())]
    assert any(n.startswith("Data loss") for n in names)
    for f in alluredir.iterdir():
        assert b"planted-in-evidence-77" not in f.read_bytes(), f
