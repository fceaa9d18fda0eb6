"""Evidence from a real Linux host over SSH: its logs, with secrets redacted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.checks.results import ResultsDir
from harness.lab.inventory import load
from harness.redact import MASK
from harness.remote import evidence
from tests.integration.faults.test_remote_catalogue import inventory_text

pytestmark = [pytest.mark.slow, pytest.mark.needs_root]


def test_logs_are_collected_and_secrets_redacted(sshd_host, tmp_path, monkeypatch):
    monkeypatch.setenv("SB_STORE_PASSWORD", "s3cr3t-value")
    log = tmp_path / "target.log"
    log.write_text("login ok\nused s3cr3t-value here\npassword=hunter22 in a line\n"
                   "Authorization: Bearer abc.def.ghi\n")
    text = inventory_text(sshd_host, "x").replace(
        'access = { user = "root", key',
        'access = { user = "root", password = "${SB_STORE_PASSWORD}", key').replace(
        'process = "sbstorage"', f'process = "sbstorage"\nlogs = ["{log}"]')
    path = tmp_path / "site.toml"
    path.write_text(text)
    inventory = load(path)

    def opener(inv, host):
        return sshd_host.linux_host()

    logs = evidence.collect(inventory, time.time() - 60, opener=opener, hosts=["Store1"])
    assert [(entry.host, entry.name) for entry in logs] == [("Store1", "journal")]
    body = logs[0].text
    assert "== dmesg" in body and f"== {log}" in body and "login ok" in body
    assert "s3cr3t-value" not in body and "hunter22" not in body and "abc.def" not in body
    assert body.count(MASK) >= 3
    results = ResultsDir(tmp_path / "out")
    attached = evidence.attach(results, logs)
    assert Path(results.path, attached[0].path).read_text().count(MASK) >= 3
