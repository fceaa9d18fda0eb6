"""The defect zoo: each deliberate defect of the reference target, and the suite that
must catch it.

Model: an ``Entry`` names a defect mode (harness.target.defects), where it is switched
on in the lab inventory (``device``: ``[devices.X] defects`` on every HA device;
``partner``: ``[[devices.X.replicas]] defects`` on SWS-Store2's replicas only), the
suite test (a pytest node id under suites/) that must catch it, and the diagnosis: a
regular expression over the suite's output naming *why* it failed (a checker's problem
kind such as ``(integrity: lost)``, or a validation check's reason). ``run_suite``
runs that suite in a pytest subprocess against a fresh loopback lab of the bundled
inventory with the defect switched on (``--inventory``; the lab is started for that
session and taken down after it); the same call without a defect is the baseline:
the correct lab must not show the diagnosis.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "fixtures" / "inventories" / "lab.toml"
PARTNER = re.compile(r'(target = "[^"]*partner")\n')
#: the longest one suite run may take (lab up, workload, settle, checkers, lab down)
RUN_TIMEOUT_S = 900

CHAOS = "suites/chaos/"
VALIDATION = "suites/validation/"
DATA_LOSS = r"\((integrity|divergence|register): (lost|stale|diverged|split_brain|stale_read)\)"


@dataclass(frozen=True)
class Entry:
    defect: str
    suite: str  # pytest node id
    diagnosis: str  # regex the failing suite's output holds (and the baseline's does not)
    where: str = "device"  # "device" (every replica) or "partner" (SWS-Store2's replicas)
    site: str = "lab"  # the bundled inventory: lab (heartbeat) or lab-majority (a witness)
    #: no site suite catches it yet (""): the HA test that proves the defect manifests
    proof: str = ""

    @property
    def id(self) -> str:
        return f"{self.defect}@{self.suite.rsplit('/', 1)[-1] or 'no-suite'}"


def chaos(file: str, scenario: str, test: str = "test_scenario") -> str:
    return f"{CHAOS}{file}::{test}[{scenario}]"


ENTRIES: tuple[Entry, ...] = (
    Entry("ack-before-mirror", chaos("test_double.py", "primary-dies-while-sync-silent"),
          DATA_LOSS),
    Entry("no-fencing", chaos("test_sync_link.py", "sync-reset"),
          r"split brain|" + DATA_LOSS),
    Entry("resync-skips-dirty", chaos("test_sync_link.py", "sync-reset"), DATA_LOSS),
    Entry("slow-failover", chaos("test_sync_link.py", "sync-blackhole"),
          r"\((timing|faults): (over_budget|no_recovery)\)"),
    Entry("merge-after-split-brain",
          chaos("test_split_brain.py", "split-brain-heal-late",
                "test_heartbeat_partition_is_reported_and_never_merged_silently"),
          r"then merged silently"),
    Entry("resync-without-activity-log",
          chaos("test_double.py", "sequencer-dies-with-its-writer"), DATA_LOSS),
    Entry("ack-before-failover-decision",
          chaos("test_split_brain.py", "majority-primary-loses-witness",
                "test_node_majority_never_splits"), DATA_LOSS, site="lab-majority"),
    Entry("no-order-timeout", chaos("test_disk.py", "disk-hang-secondary"),
          r"\(faults: over_budget\): over budget: disk-slow [^\n]*: no I/O completed for"),
    Entry("ack-before-durable", chaos("test_power_loss.py", "power-loss-both"), DATA_LOSS),
    Entry("reads-from-unsynchronized", chaos("test_sync_link.py", "sync-reset"), DATA_LOSS),
    Entry("resync-wrong-direction", chaos("test_sync_link.py", "sync-reset"), DATA_LOSS),
    Entry("ack-before-mirror-under-load", chaos("test_double.py", "primary-dies-while-sync-silent"),
          DATA_LOSS),
    # the replicas end with different acknowledged writes on one block: the divergence
    # checker calls that split brain (each holds a write the other lacks), merged silently
    Entry("overlapping-write-lost", chaos("test_sync_link.py", "sync-delay-hot-spot"),
          r"then merged silently|" + DATA_LOSS),
    Entry("identity-per-node",
          f"{VALIDATION}test_storage.py::test_scsi_device_vital_product_data_vpd",
          r"do not present one disk"),
    Entry("stale-reservations",
          f"{VALIDATION}test_storage.py::test_scsi_3_persistent_reservation",
          r"not replicated"),
    Entry("reservations-not-enforced",
          f"{VALIDATION}test_storage.py::test_scsi_3_persistent_reservation",
          r"not enforced", where="partner"),
    Entry("write-not-mirrored", f"{VALIDATION}test_ha_storage.py::test_ha_replica_data",
          r"not hold the same data", where="partner"),
)


def inventory_text(defect: str | None, where: str = "device", site: str = "lab") -> str:
    """A bundled lab inventory (fixtures/inventories/SITE.toml) with ``defect`` switched
    on (None: as it is)."""
    text = (LAB.parent / f"{site}.toml").read_text()
    if defect is None:
        return text
    line = f'defects = ["{defect}"]'
    if where == "partner":
        return PARTNER.sub(lambda m: f"{m.group(1)}\n{line}\n", text)
    return re.sub(r"^(\[devices\.[A-Za-z0-9_-]+\])\n", lambda m: f"{m.group(1)}\n{line}\n",
                  text, flags=re.MULTILINE)


@dataclass(frozen=True)
class Outcome:
    returncode: int
    output: str

    @property
    def failed(self) -> bool:
        return self.returncode != 0

    def shows(self, diagnosis: str) -> bool:
        return re.search(diagnosis, self.output) is not None

    def summary(self) -> str:
        """The suite's verdict line (pytest's count of passed and failed)."""
        verdicts = re.findall(r"^=*\s*(\d+ (?:passed|failed|skipped|error).*?)\s*=*$",
                              self.output, flags=re.MULTILINE)
        return verdicts[-1] if verdicts else f"exit {self.returncode}"


def run_suite(suite: str, workdir: Path, *, defect: str | None = None, where: str = "device",
              site: str = "lab", seed: int = 1) -> Outcome:
    """Run one suite test against a fresh lab of the bundled inventory with ``defect``."""
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = workdir / "lab.toml"
    inventory.write_text(inventory_text(defect, where, site))
    env = {**os.environ, "SPLITBRAIN_RESULTS_DIR": str(workdir / "chaos-results")}
    env.pop("PYTEST_ADDOPTS", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", suite,
           "--inventory", str(inventory), "--allow-destructive", "--seed", str(seed),
           "--results", str(workdir / "results"), "-o", "addopts="]
    try:
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout
        return Outcome(-1, (out or "") + f"\nzoo: timed out after {RUN_TIMEOUT_S} s")
    (workdir / "output.txt").write_text(done.stdout + done.stderr)
    outcome = Outcome(done.returncode, done.stdout + done.stderr + recorded(workdir))
    (workdir / "outcome.json").write_text(json.dumps(
        {"suite": suite, "defect": defect, "where": where, "site": site,
         "returncode": outcome.returncode}))
    return outcome


def recorded(workdir: Path) -> str:
    """Every problem the suite recorded (its result records hold all of them; pytest's
    output shows the first dozen)."""
    lines = []
    for path in sorted(workdir.glob("*/results/*.json")) + sorted(workdir.glob("results/*.json")):
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(body, dict) or "evidence" not in body:
            continue
        lines.append(f"{body.get('name')}: {body.get('result')}: {body.get('reason')}")
        lines += [f"  {e.get('title')}: {e.get('text')}" for e in body["evidence"]]
    return "\n".join(["", "-- recorded results --", *lines]) if lines else ""


def saved_outcomes(workdir: Path) -> dict[tuple[str, str | None, str, str], Outcome]:
    """Runs kept in an earlier matrix's work directory, by (suite, defect, where, site)."""
    found = {}
    for record in sorted(workdir.glob("*/outcome.json")):
        meta = json.loads(record.read_text())
        output = record.with_name("output.txt").read_text() + recorded(record.parent)
        found[meta["suite"], meta["defect"], meta.get("where", "device"),
              meta.get("site", "lab")] = Outcome(meta["returncode"], output)
    return found
