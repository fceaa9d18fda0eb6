"""What the benchmarks share: running libiscsi's iscsi-perf, describing the machine,
and replacing one benchmark's section of bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
import re
import resource
import subprocess
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
_AVERAGE = re.compile(r"iops average (\d+)")
PERF_INITIATOR = "iqn.2026-11.org.splitbrain.bench:iscsi-perf"


def cpu_s(who: int = resource.RUSAGE_CHILDREN) -> float:
    """User + system CPU seconds of this process (RUSAGE_SELF) or its children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def iscsi_perf(url: str, seconds: int, *, depth: int = 32, blocks: int = 8) -> tuple[int, float]:
    """Average IOPS of one ``iscsi-perf`` random-read run, and its CPU microseconds per I/O."""
    before = cpu_s()
    proc = subprocess.run(
        ["iscsi-perf", "-i", PERF_INITIATOR, "-m", str(depth), "-b", str(blocks), "-r",
         "-t", str(seconds), url],
        capture_output=True, text=True, timeout=seconds + 60, check=False)
    cpu = cpu_s() - before
    found = _AVERAGE.findall(proc.stdout)
    if not found:
        raise RuntimeError(f"iscsi-perf against {url} printed no average: "
                           f"{(proc.stdout + proc.stderr)[-400:]}")
    iops = int(found[-1])
    return iops, cpu * 1e6 / max(1, iops * seconds)


def machine() -> str:
    """This machine, as a results section states it (the cores are shared)."""
    return (f"{platform.node()}: {os.cpu_count()} cores ({platform.machine()}), Linux "
            f"{platform.release()}, Python {platform.python_version()}, load average "
            f"{os.getloadavg()[0]:.1f} at the start (the cores are shared with other work)")


def write_section(heading: str, text: str) -> None:
    """Replace the section that starts with ``heading`` (or append it)."""
    doc = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    if heading in doc:
        start = doc.index(heading)
        nxt = doc.find("\n## ", start + len(heading))
        doc = doc[:start] + text.rstrip("\n") + ("\n" + doc[nxt:] if nxt != -1 else "\n")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    RESULTS.write_text(doc, encoding="utf-8")
