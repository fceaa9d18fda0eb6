"""The ``splitbrain`` dispatcher as a process: an unknown command is a usage error."""

from __future__ import annotations

import subprocess
import sys


def test_unknown_command_is_a_usage_error():
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "no-such-command"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
