"""The system under test as suites see it: devices with portals, initiators, MPIO, the
destructive marker's refusal."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fixtures.sut import SutError, SystemUnderTest
from harness.lab.inventory import load

INVENTORIES = Path(__file__).parents[3] / "fixtures" / "inventories"
REPO = Path(__file__).parents[3]


@pytest.fixture
def site() -> SystemUnderTest:
    return SystemUnderTest(load(INVENTORIES / "example-site.toml"), budget_profile="strict")


def test_real_site_devices_have_portals_on_the_iscsi_network(site: SystemUnderTest) -> None:
    ha1 = site.device("HA1")
    assert ha1.purpose == "quorum" and ha1.lun == 0
    assert [(r.host, r.priority) for r in ha1.replicas] == [("SWS-Store1", 1), ("SWS-Store2", 2)]
    assert [(p.address, p.port, p.network) for _, p in ha1.paths] == [
        ("198.51.100.11", 3260, "iscsi"),
        ("198.51.100.12", 3260, "iscsi"),
    ]
    assert set(site.hosts) >= {"Demo1", "SWS-DC"}
    # the seed: a private heartbeat network, and the mirror traffic on the iSCSI network
    assert site.networks["private"].has_role("heartbeat") and "sync" not in site.networks
    assert site.networks["iscsi"].has_role("sync")
    assert site.budget.seconds("path_failover_s") == 10.0  # the strict profile
    with pytest.raises(SutError, match="did you mean 'HA1'"):
        site.device("HA-1")


def test_initiator_is_a_cluster_node_with_its_own_iqn(site: SystemUnderTest) -> None:
    demo1, demo2 = site.initiator("Demo1"), site.initiator("Demo2")
    assert demo1.iqn == "iqn.1991-05.com.microsoft:demo1" and demo1.iqn != demo2.iqn
    specs = demo1.path_specs("HA2")
    assert [s.label for s in specs] == ["Demo1->iscsi/SWS-Store1", "Demo1->iscsi/SWS-Store2"]
    assert {s.initiator for s in specs} == {demo1.iqn}
    assert {s.target for s in specs} == {r.target for r in site.device("HA2").replicas}
    with pytest.raises(SutError, match="not a cluster node"):
        site.initiator("SWS-Store1")


def test_multipath_uses_the_inventory_policy_and_timers(site: SystemUnderTest) -> None:
    async def never(spec: object) -> object:
        raise AssertionError("not connected in this test")

    device = site.multipath("HA1", connector=never)
    assert [p.name for p in device.paths] == ["Demo1->iscsi/SWS-Store1", "Demo1->iscsi/SWS-Store2"]
    assert device.policy.name == "round-robin"
    assert device.timers.pdo_remove_period_s == 20.0 and device.timers.link_down_time_s == 15.0


def test_real_site_faults_are_black_holes_that_never_cut_management() -> None:
    from harness.faults import FaultError, RemoteFaults

    # the best-practice variant of the seed: a dedicated sync link to cut
    site = SystemUnderTest(load(INVENTORIES / "example-site-dedicated-sync.toml"))
    faults = site.faults
    assert isinstance(faults, RemoteFaults)
    assert faults.pairs("sync") == [("SWS-Store1", "sync"), ("SWS-Store2", "sync")]
    assert faults.pairs("iscsi/SWS-Store2") == [("SWS-Store2", "iscsi")]
    assert faults.pairs("SWS-Store1") == [
        ("SWS-Store1", "private"), ("SWS-Store1", "iscsi"), ("SWS-Store1", "sync")]
    fault = faults.blackhole("sync")
    assert fault.targets == [("SWS-Store1", "198.18.0.0/24"), ("SWS-Store2", "198.18.0.0/24")]
    assert fault.ttl_s > 0
    with pytest.raises(FaultError, match="cut the harness off"):
        faults.blackhole("public/SWS-Store1")  # the hosts are managed through public
    with pytest.raises(FaultError, match="did you mean 'sync'"):
        faults.blackhole("synk")
    assert [s.target for s in faults.catalogue()] == ["private", "iscsi", "sync"]


DESTRUCTIVE_TEST = textwrap.dedent("""
    import pytest

    @pytest.mark.destructive
    def test_breaks_things():
        pass
""")


def run_inner(tmp_path: Path, inventory: Path, *flags: str) -> str:
    test = tmp_path / "test_inner.py"
    test.write_text(DESTRUCTIVE_TEST)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(test),
            "-rs",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "--inventory",
            str(inventory),
            *flags,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    return done.stdout + done.stderr


def test_destructive_refused_without_the_flag(tmp_path: Path) -> None:
    out = run_inner(tmp_path, INVENTORIES / "lab.toml")
    assert "1 skipped" in out and "did not pass --allow-destructive" in out


def test_destructive_refused_on_a_site_that_forbids_it(tmp_path: Path) -> None:
    out = run_inner(tmp_path, INVENTORIES / "example-site.toml", "--allow-destructive")
    assert "1 skipped" in out and "site.destructive = false" in out


def test_destructive_runs_when_both_allow_it(tmp_path: Path) -> None:
    text = (INVENTORIES / "example-site.toml").read_text()
    inventory = tmp_path / "breakable.toml"
    inventory.write_text(text.replace("destructive = false", "destructive = true"))
    out = run_inner(tmp_path, inventory, "--allow-destructive")
    assert "1 passed" in out, out
