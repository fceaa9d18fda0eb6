"""Secrets are masked in text, bytes, gzip and records, wherever they come from."""

from __future__ import annotations

import gzip
import json

import pytest

from harness.checks.results import CheckResult, Evidence, ResultsDir, ResultWord
from harness.redact import MASK, Redactor, remember_secret


def test_known_values_are_masked_in_text_and_bytes_keeping_length() -> None:
    r = Redactor(["s3cr3t-value"])
    assert r.text("login s3cr3t-value ok") == f"login {MASK} ok"
    masked = r.bytes(b"\x00s3cr3t-value\x01")
    assert masked == b"\x00" + b"*" * 12 + b"\x01"


@pytest.mark.parametrize("line", [
    'password = "hunter2-inline"',
    "password: hunter2-inline",
    '{"chap_secret": "hunter2-inline"}',
    "CHAP_R=hunter2-inline",
    "api_key=hunter2-inline&x=1",
    "Token: hunter2-inline",
])
def test_secret_assignments_are_masked_even_when_unknown(line: str) -> None:
    out = Redactor().text(line)
    assert "hunter2-inline" not in out
    assert MASK in out


def test_env_references_and_ordinary_keys_are_kept() -> None:
    text = 'password = "${SITE_PASSWORD}"\nuser = "admin"\ntarget = "iqn.2008-08.com.x:ha1"'
    assert Redactor().text(text) == text


def test_inventory_references_resolve_from_the_environment() -> None:
    r = Redactor.for_inventory('key = "${SB_KEY_PHRASE}"', {"SB_KEY_PHRASE": "correct-horse"})
    assert r.text("typed correct-horse") == f"typed {MASK}"


def test_secret_named_environment_variables_are_masked() -> None:
    r = Redactor.from_environment({"MY_ISCSI_CHAP_SECRET": "chap-value-1", "HOME": "/root"})
    assert r.text("chap-value-1 in /root") == f"{MASK} in /root"


def test_gzip_is_redacted_inside() -> None:
    r = Redactor(["gz-secret-9"])
    out = r.content(gzip.compress(b'{"op": "gz-secret-9"}\n'), "application/gzip")
    assert b"gz-secret-9" not in gzip.decompress(out)


def test_results_dir_masks_resolved_secrets_in_records_and_attachments(tmp_path) -> None:
    remember_secret("resolved-by-inventory-42")
    rd = ResultsDir(tmp_path)
    a = rd.attach("log.txt", "ssh with resolved-by-inventory-42", "text/plain")
    rd.write(CheckResult("validation", "Network", "ssh", "d", ResultWord.FAILED,
                         reason="password resolved-by-inventory-42 refused",
                         evidence=[Evidence("t", "resolved-by-inventory-42")], attachments=[a]))
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert b"resolved-by-inventory-42" not in f.read_bytes(), f
    record = json.loads(next((tmp_path / "results").glob("*.json")).read_text())
    assert MASK in record["reason"]
