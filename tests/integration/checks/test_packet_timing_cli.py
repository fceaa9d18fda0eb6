"""splitbrain check with a capture beside the history (a process): the capture's numbers
are reported beside the per-fault report."""

from __future__ import annotations

from tests.support.crafted_capture import build


def test_check_command_sets_capture_beside_history(tmp_path):
    import subprocess
    import sys

    pcap, _ = build(tmp_path)
    run = subprocess.run([sys.executable, "-m", "harness", "check", str(tmp_path / "h.jsonl"),
                          "--pcap", str(pcap), "--wire-tolerance", "0.002"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "wire       2 paths in the capture; cut A failover: wire 0.3020 s, history 0.3021 s" \
        in run.stdout
