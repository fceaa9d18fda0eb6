"""A small results directory as validation and chaos write it (for the report's unit tests)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from harness.checks.results import CheckResult, Evidence, ResultsDir, ResultWord, RunInfo

PLANTED = "planted-Secret-7f3a9c"  # an ${ENV} value the inventory references
INLINE = "inline-hunter2-b41d"  # a password typed into an inventory by mistake

INVENTORY = f"""[site]
name = "lab"
destructive = true

[hosts.SWS-Store1.access]
user = "admin"
password = "${{SB_TEST_STORE_PASSWORD}}"

[hosts.SWS-Store2.access]
user = "admin"
password = "{INLINE}"
"""


def _png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [1, 3, 2])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def make_results(path: Path) -> ResultsDir:
    rd = ResultsDir(path)
    rd.write_run(RunInfo(site="lab", command="splitbrain chaos --seed 7", started=1_780_000_000.0,
                         finished=1_780_000_090.0, hosts=["SWS-Store1", "SWS-Store2", "Demo1"],
                         inventory_digest="sha256:" + "ab" * 32, seed=7))
    inventory = rd.attach("inventory.toml", INVENTORY, "application/toml")
    timeline = rd.attach("timeline.png", _png(), "image/png")
    history = rd.attach("history.jsonl.gz", gzip.compress(b'{"f": "write"}\n'),
                        "application/gzip")
    journal = rd.attach("faults.jsonl", f'{{"fault": "sync-blackhole", "token": "{PLANTED}"}}\n',
                        "application/x-ndjson")
    rd.write(CheckResult(
        kind="validation", category="Storage", name="Validate SCSI-3 Persistent Reservation",
        description="Registers, reserves and preempts from two initiators.",
        result=ResultWord.SUCCESS, reason="every PR command behaved as SPC-4 requires",
        started=1_780_000_001.0, finished=1_780_000_004.0,
        evidence=[Evidence("PERSISTENT RESERVE OUT REGISTER", "CDB 5f 00 ... GOOD")],
        labels={"site": "lab"}))
    rd.write(CheckResult(
        kind="validation", category="Network", name="Validate Network Communication",
        description="Pings every address on every network.", result=ResultWord.WARNING,
        reason="heartbeat network has a single path", started=1_780_000_004.0,
        finished=1_780_000_005.0, labels={"site": "lab"}))
    rd.write(CheckResult(
        kind="validation", category="Hyper-V Configuration", name="Validate Hyper-V Settings",
        description="Hyper-V role settings.", result=ResultWord.NOT_APPLICABLE,
        reason="the lab has no Hyper-V hosts", labels={"site": "lab"}))
    rd.write(CheckResult(
        kind="chaos", category="Chaos", name="sync link black hole under load",
        description="Black-holes the sync channel while writing over MPIO.",
        result=ResultWord.FAILED, reason="3 acknowledged writes lost (defect ack-before-mirror)",
        started=1_780_000_010.0, finished=1_780_000_080.0,
        evidence=[Evidence("steady state: replicas", "HA2: synchronized, synchronized"),
                  Evidence("inject: sync-blackhole", f"login with password {PLANTED}"),
                  Evidence("verify: lost writes", "block 17 written at 3.2 s: lost")],
        attachments=[inventory, timeline, history, journal],
        numbers={"lost": 3, "failover_s": 1.25},
        labels={"site": "lab", "seed": "7", "family": "sync-link"}))
    return rd


@pytest.fixture
def planted_env(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The planted secrets: the ${ENV} value the inventory references, and an inline one."""
    monkeypatch.setenv("SB_TEST_STORE_PASSWORD", PLANTED)
    return PLANTED, INLINE


@pytest.fixture
def results(tmp_path: Path, planted_env: tuple[str, str]) -> ResultsDir:
    return make_results(tmp_path / "results")
