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

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("iscsi-inq") is None,
        reason="needs the Debian package libiscsi-bin (iscsi-inq)"),
]


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
    # The restarted replica resynchronizes first (answering NOT READY meanwhile, as it
    # must), then serves on the same portal.
    reference_lab.lab.wait_synchronized(["HA1"], deadline_s=60)
    assert inquiry(url).returncode == 0


def test_sut_multipath_reads_what_it_wrote_and_survives_a_black_holed_path(
    reference_lab: SystemUnderTest,
) -> None:
    import asyncio

    async def scenario() -> tuple[set[str], set[str], bytes]:
        device = reference_lab.multipath("HA2", initiator="Demo2")
        await device.open()
        try:
            block = bytes(range(256)) * (device.block_size // 256)
            await device.write(8, block)
            before = {(await device.read(8, 1)).path for _ in range(8)}
            with reference_lab.faults.blackhole("iscsi1"):
                during = set()
                for _ in range(8):
                    done = await device.read(8, 1)
                    during.add(done.path)
                    data = done.data
            return before, during, data
        finally:
            await device.close()

    before, during, data = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert data == bytes(range(256)) * (len(data) // 256)
    assert len(before) >= 2  # round robin over the paths
    assert during and all("iscsi2" in path for path in during)


def test_cluster_node_logs_in_with_its_own_iqn(reference_lab: SystemUnderTest) -> None:
    import asyncio

    async def scenario() -> list[str]:
        session = await reference_lab.initiator("Demo1").login("HA1")
        try:
            await session.ping()
            return [s.get("initiator", "") for s in _sessions(reference_lab, "SWS-Store1")]
        finally:
            await session.logout()

    initiators = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert any("iqn.1991-05.com.microsoft:demo1" in i for i in initiators), initiators


def _sessions(sut: SystemUnderTest, host: str) -> list[dict]:
    from harness.target.management import ManagementClient

    assert sut.lab is not None
    return ManagementClient(sut.lab.management_url(host), sut.lab.token()).sessions()


def test_cutting_the_sync_network_is_the_ha_channel_breaking(
    reference_lab: SystemUnderTest,
) -> None:
    """The lab's sync links carry the HA mirror: cut them and the lower-priority replica
    stops being Synchronized; heal and the pair resynchronizes."""
    from harness.lab.loopback import LoopbackLab
    from harness.lab.node_process import wait_until

    lab = reference_lab.lab
    assert isinstance(lab, LoopbackLab)
    assert lab.ha_states(), "the lab's storage nodes serve no HA replicas"
    from harness.cli.lab_command import render_status

    assert "replica Synchronized (partner Synchronized, sync up, heartbeat up)" in render_status(
        lab.status() | {"faults": []}
    )
    with reference_lab.faults.cut("sync"):
        assert wait_until(lambda: lab.ha_states()["HA1"]["SWS-Store2"] != "Synchronized", 30)
        assert lab.ha_states()["HA1"]["SWS-Store1"] == "Synchronized"  # priority 1 survives
        assert "sync DOWN" in render_status(lab.status() | {"faults": []})
    lab.wait_synchronized(["HA1", "HA2"], deadline_s=60)
