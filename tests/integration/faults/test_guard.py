"""SIGINT/SIGTERM heal the live faults of the process, then end it as the signal would."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.faults import FaultJournal

REPO = Path(__file__).parents[3]

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from harness.faults import FaultJournal, heal_on_signals
    from tests.unit.faults.flag_fault import FlagFault

    flag, journal = Path(sys.argv[1]), FaultJournal(sys.argv[2])
    with heal_on_signals():
        FlagFault(flag, journal=journal).inject()
        print("injected", flush=True)
        time.sleep(60)
""")


@pytest.mark.parametrize(
    ("sig", "returncode"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, -signal.SIGINT)]
)
def test_signal_heals_then_ends_the_process(
    tmp_path: Path, sig: signal.Signals, returncode: int
) -> None:
    flag, journal_path = tmp_path / "flag", tmp_path / "faults.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(flag), str(journal_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "injected"
        assert flag.exists()
        child.send_signal(sig)
        _, stderr = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == returncode, stderr
    if sig is signal.SIGINT:
        assert "KeyboardInterrupt" in stderr  # the previous handler still acted
    assert not flag.exists()
    assert FaultJournal(journal_path).open_faults() == []
