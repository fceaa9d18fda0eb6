"""Wall time of a full validation against the loopback lab, and how it grows with LUNs.

For each count N of HA devices (default 2, 4, 8, 16) it writes the bundled
lab.toml with N HA devices (HA1, the 1 GiB quorum device, and HA2..HAN for VMs;
sparse images), brings the lab up in a state directory of its own, runs every
check of ``harness.validation`` (what ``splitbrain validate`` runs) and takes
the lab down. It reports the lab's start time, the validation's wall time and
the slowest checks. ``--write`` replaces this benchmark's section of
bench/RESULTS.md. Goals: the bundled lab (2 devices) in under 30 s, 16 HA LUNs
in under 60 s.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.recording import machine, write_section
from fixtures.settings import LAB_INVENTORY
from fixtures.sut import SystemUnderTest
from harness.lab.backends import lab_for
from harness.lab.inventory import load
from harness.validation.runner import validate
from harness.validation.site import ValidationSite

HEADING = "## Validation wall time vs HA LUNs (`bench/validation_scale.py`)"
_DEVICE = re.compile(r"\[devices\.HA2\].*?(?=\n# Lab links|\n\[budgets)", re.S)


def inventory_text(devices: int) -> str:
    """lab.toml with ``devices`` HA devices (HA1 quorum, the rest VM storage)."""
    text = LAB_INVENTORY.read_text()
    template = _DEVICE.search(text)
    assert template, "lab.toml no longer has the [devices.HA2] block this bench copies"
    block = template.group(0)
    extra = []
    for n in range(3, devices + 1):
        extra.append(block.replace("HA2", f"HA{n}").replace("ha2", f"ha{n}")
                     .replace('size = "256MiB"', 'size = "64MiB"'))
    text = text.replace(block, "\n".join([block, *extra]))
    return text


def measure(devices: int, work: Path) -> dict[str, object]:
    path = work / f"lab-{devices}.toml"
    path.write_text(inventory_text(devices))
    inventory = load(path)
    lab = lab_for(inventory, work / f"state-{devices}")
    t0 = time.monotonic()
    lab.up(inventory)
    up_s = time.monotonic() - t0
    try:
        site = ValidationSite(SystemUnderTest(inventory, lab))
        t0 = time.monotonic()
        report = validate(site)
        wall = time.monotonic() - t0
    finally:
        lab.down()
    slowest = sorted(report.results, key=lambda r: -float(r.numbers.get("duration_s", 0)))[:3]
    return {
        "devices": devices, "up_s": up_s, "wall_s": wall, "summary": report.summary,
        "checks": len(report.results),
        "slowest": ", ".join(f"{r.name} {float(r.numbers['duration_s']):.1f} s" for r in slowest),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sb-bench-validation-") as tmp:
        for n in args.devices:
            row = measure(n, Path(tmp))
            rows.append(row)
            print(f"{n:3d} HA devices: lab up {row['up_s']:.1f} s, validation "
                  f"{row['wall_s']:.1f} s ({row['checks']} checks): {row['summary']}; "
                  f"slowest: {row['slowest']}", flush=True)
    if args.write:
        lines = [
            HEADING, "",
            f"Every check of `splitbrain validate` ({rows[0]['checks']}: the wizard's Storage "
            "and Network tests, "
            "the HA-storage checks, and the host-fact checks, which are Not Applicable on the "
            "lab) against the loopback lab with N HA devices (two replicas each, two iSCSI "
            "networks, so 4 paths per device per cluster node, two cluster nodes). *lab up* "
            "is bringing the lab up (not part of the validation); *validation* is the wall "
            "time of the checks. Reproduce: `python bench/validation_scale.py --write`.",
            "", f"Machine: {machine()}.", "",
            "| HA devices | lab up s | validation s | result | slowest checks |",
            "|---:|---:|---:|---|---|",
        ]
        for row in rows:
            lines.append(f"| {row['devices']} | {row['up_s']:.1f} | {row['wall_s']:.1f} | "
                         f"{row['summary'].split(' [')[0]} | {row['slowest']} |")
        if len(rows) > 1:
            first, last = rows[0], rows[-1]
            per = (float(last["wall_s"]) - float(first["wall_s"])) / max(
                1, int(last["devices"]) - int(first["devices"]))
            lines += ["", f"Growth: about {per:.2f} s of validation per added HA device "
                          f"between {first['devices']} and {last['devices']} devices "
                          "(roughly linear: VPD reads visit device after device on every "
                          "path of every node; latency series and replica comparisons run 4 "
                          "devices at a time, reservation, arbitration and failover checks "
                          "up to 8, so they grow slower). Rows vary with the shared "
                          "machine's load (other engineers' tests ran meanwhile)."]
        write_section(HEADING, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
