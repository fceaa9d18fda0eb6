"""The bundled lab with the real reference target: iSCSI through every proxied portal, one
device identity on both replicas, and link and node faults that break and restore iSCSI."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.sut import SystemUnderTest
from harness.faults.lab_faults import LabFaults
from harness.lab.inventory import Inventory
from harness.lab.loopback import LoopbackLab

pytestmark = pytest.mark.skipif(
    shutil.which("iscsi-inq") is None, reason="needs the Debian package libiscsi-bin (iscsi-inq)"
)


@pytest.fixture
def reference_lab(tmp_path: Path, lab_inventory: Inventory) -> Iterator[SystemUnderTest]:
    lab = LoopbackLab(tmp_path / "lab")
    lab.up(lab_inventory)
    try:
        yield SystemUnderTest(lab_inventory, lab)
    finally:
        lab.down()


def inquiry(url: str, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["iscsi-inq", "-i", "iqn.1991-05.com.microsoft:demo1", *args, url],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def urls(sut: SystemUnderTest, alias: str) -> dict[str, str]:
    dev = sut.device(alias)
    return {
        f"{p.network}/{r.host}": f"iscsi://{p.address}:{p.port}/{r.target}/{dev.lun}"
        for r, p in dev.paths
    }


def test_every_path_reaches_the_same_disk(reference_lab: SystemUnderTest) -> None:
    serials = {}
    for path, url in urls(reference_lab, "HA2").items():
        done = inquiry(url, "-e", "1", "-c", "128")
        assert done.returncode == 0, f"{path}: {done.stderr}"
        serials[path] = re.search(r"Unit Serial Number:\s*(\S+)", done.stdout, re.I)
        assert serials[path], done.stdout
    assert len(serials) == 4
    assert len({m.group(1) for m in serials.values() if m}) == 1  # one disk on every path


def test_cut_and_blackhole_break_iscsi_and_heal_restores_it(reference_lab: SystemUnderTest) -> None:
    url = urls(reference_lab, "HA1")["iscsi1/SWS-Store1"]
    other = urls(reference_lab, "HA1")["iscsi2/SWS-Store1"]
    faults = reference_lab.faults
    assert isinstance(faults, LabFaults)
    with faults.cut("iscsi1/SWS-Store1"):
        assert inquiry(url).returncode != 0  # reset at once
        assert inquiry(other).returncode == 0  # the second path is untouched
    with faults.blackhole("iscsi1"), pytest.raises(subprocess.TimeoutExpired):
        inquiry(url, timeout=2.0)  # silence: the login never gets an answer
    assert inquiry(url).returncode == 0


def test_node_kill_and_heal_restarts_the_target_on_the_same_portals(
    reference_lab: SystemUnderTest,
) -> None:
    url = urls(reference_lab, "HA1")["iscsi2/SWS-Store2"]
    with reference_lab.faults.kill("SWS-Store2"):
        assert inquiry(url).returncode != 0
    assert inquiry(url).returncode == 0
