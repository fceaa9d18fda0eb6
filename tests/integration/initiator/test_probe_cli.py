"""``splitbrain probe`` as a user runs it (a subprocess) against tgtd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.peers.tgtd import TgtdTarget


def probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "probe", *args],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})})


def test_probe_prints_the_lun_inventory(tgtd_target_factory) -> None:
    target = tgtd_target_factory(luns=2)
    other = tgtd_target_factory()
    done = probe(f"iscsi://{target.portal}/{target.iqn}")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert target.iqn in out and other.iqn in out  # discovery lists both
    assert "LUN 1: IET VIRTUAL-DISK" in out and "LUN 2: IET VIRTUAL-DISK" in out
    assert "131072 blocks x 512 B" in out
    assert "NAA:" in out and "serial (VPD 0x80)" in out
    assert "WRITE_EXCLUSIVE" in out and "NOP round trip" in out


def test_probe_json_with_chap_from_environment_and_pcap(tgtd_target_factory,
                                                        tmp_path: Path) -> None:
    target: TgtdTarget = tgtd_target_factory(chap=True)
    assert target.chap is not None
    pcap = tmp_path / "probe.pcap"
    done = probe(target.url(), "--json", "--pcap", str(pcap),
                 env={"SPLITBRAIN_CHAP_USER": target.chap.user,
                      "SPLITBRAIN_CHAP_SECRET": target.chap.secret})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (only,) = report["targets"]
    (lun,) = only["luns"]
    assert only["name"] == target.iqn and only["parameters"]["AuthMethod"] == "CHAP"
    assert lun["lun"] == 1 and lun["capacity"]["bytes"] == target.lun_size
    assert lun["serial"] and any(d["type"] == "NAA" for d in lun["designators"])
    assert "WRITE_EXCLUSIVE" in lun["persistent_reservations"]["types"]
    assert pcap.stat().st_size > 1000


def test_probe_errors_are_one_line(tgtd_target_factory) -> None:
    target = tgtd_target_factory(chap=True)
    cases = {
        "refused": probe("iscsi://127.0.0.1:1/iqn.x/0"),
        "rejected": probe(target.url()),
        "unknown target": probe(f"iscsi://{target.portal}/{target.iqn}-gone/1"),
        "unknown LUN": probe(f"iscsi://{target.chap.user}:{target.chap.secret}@"  # type: ignore
                             f"{target.portal}/{target.iqn}/7"),
        "bad url": probe("http://example.invalid/"),
    }
    for name, done in cases.items():
        assert done.returncode != 0, name
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("splitbrain probe: error: "), (name, lines)
        assert "Traceback" not in done.stderr
    assert "cannot connect" in cases["refused"].stderr
    assert "authentication failed" in cases["rejected"].stderr
    assert "not offered" in cases["unknown target"].stderr
    assert "LUN 7 does not exist" in cases["unknown LUN"].stderr
