"""The loopback lab: up starts nodes and proxied links, down leaves no process or file behind,
and lab faults break and restore real traffic through the links."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.faults import FaultJournal, heal_journal
from harness.faults.lab_faults import LabFaults
from harness.lab.backend import LabError
from harness.lab.inventory import Inventory
from harness.lab.loopback import LoopbackLab
from tests.integration.lab.conftest import lab_processes, standin_command

pytestmark = pytest.mark.slow  # brings up a lab, nodes or peers: seconds per test

REPO = Path(__file__).parents[3]


def echoes(address: tuple[str, int], timeout: float = 5.0) -> bool:
    """True if bytes sent through the link come back; False on silence or reset."""
    try:
        with socket.create_connection(address, timeout=timeout) as s:
            s.sendall(b"ping")
            return s.recv(4) == b"ping"
    except (TimeoutError, ConnectionError):
        return False


def link(lab: LoopbackLab, name: str) -> tuple[str, int]:
    return lab.record().links[name].listen


def test_up_builds_the_topology_and_down_leaves_nothing(
    tmp_path: Path, lab_inventory: Inventory
) -> None:
    lab = LoopbackLab(tmp_path / "lab", node_command=standin_command, ha=False)
    record = lab.up(lab_inventory)
    try:
        assert set(record.nodes) == {"SWS-Store1", "SWS-Store2"}
        assert all(n.alive for n in record.nodes.values()) and record.proxy and record.proxy.alive
        assert set(record.links) == {
            f"{net}/{host}"
            for host in ("SWS-Store1", "SWS-Store2")
            for net in ("iscsi1", "iscsi2", "sync", "heartbeat")
        } | {"heartbeat/Demo1", "heartbeat/Demo2"}  # the cluster's own heartbeat
        assert record.links["heartbeat/Demo1"].purpose == "cluster-heartbeat"
        assert record.links["heartbeat/Demo1"].listen[0] == "127.10.4.21"
        portal = record.links["iscsi2/SWS-Store2"]
        assert portal.purpose == "portal" and portal.listen[0] == "127.10.2.12"
        assert portal.upstream[0] == "127.10.2.12" and portal.upstream[1] != portal.listen[1]
        assert record.links["sync/SWS-Store1"].purpose == "sync"
        for name in record.links:
            if record.links[name].purpose == "portal":
                assert echoes(link(lab, name)), name  # traffic reaches the node through the proxy
        assert len(lab_processes(lab.state.root)) == 3  # two nodes and the proxy
        with pytest.raises(LabError, match="already up"):
            lab.up(lab_inventory)
    finally:
        stopped = lab.down()
    assert len(stopped) == 3
    assert lab_processes(tmp_path / "lab") == []
    assert not (tmp_path / "lab").exists()


def test_status_and_down_work_from_another_process(
    tmp_path: Path, lab_inventory: Inventory
) -> None:
    state = tmp_path / "lab"
    LoopbackLab(state, node_command=standin_command, ha=False).up(lab_inventory)
    cli = [sys.executable, "-m", "harness", "lab"]
    common = ["--inventory", str(lab_inventory.path), "--state-dir", str(state)]
    try:
        status = subprocess.run(
            [*cli, "status", *common], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert status.returncode == 0, status.stderr
        for word in (
            "SWS-Store1",
            "node running",
            "iscsi1/SWS-Store1",
            "HA1 quorum",
            "active faults:",
            "sessions:",
        ):
            assert word in status.stdout
    finally:
        down = subprocess.run(
            [*cli, "down", *common], cwd=REPO, capture_output=True, text=True, timeout=60
        )
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert lab_processes(state) == [] and not state.exists()


def test_up_cleans_the_leftovers_of_a_crashed_lab(tmp_path: Path, lab_inventory: Inventory) -> None:
    lab = LoopbackLab(tmp_path / "lab", node_command=standin_command, ha=False)
    first = lab.up(lab_inventory)
    for node in first.nodes.values():
        node.kill()  # the lab "crashed": processes gone, state left behind
    assert first.proxy is not None
    first.proxy.kill()
    second = lab.up(lab_inventory)
    try:
        assert all(n.alive for n in second.nodes.values())
    finally:
        lab.down()


def test_network_fault_breaks_every_link_of_the_network(standin_lab: LoopbackLab) -> None:
    faults = LabFaults(standin_lab.state.root)
    assert faults.links("sync") == ["sync/SWS-Store1", "sync/SWS-Store2"]
    assert faults.links("role:iscsi") == sorted(
        f"{n}/{h}" for n in ("iscsi1", "iscsi2") for h in ("SWS-Store1", "SWS-Store2")
    )
    with faults.blackhole("iscsi1"):
        assert not echoes(link(standin_lab, "iscsi1/SWS-Store1"), timeout=0.3)
        assert not echoes(link(standin_lab, "iscsi1/SWS-Store2"), timeout=0.3)
        assert echoes(link(standin_lab, "iscsi2/SWS-Store1"))  # the other path still works
        assert faults.open_faults()
    assert echoes(link(standin_lab, "iscsi1/SWS-Store1"))
    assert faults.open_faults() == []


def test_kill_then_heal_restarts_the_node(standin_lab: LoopbackLab) -> None:
    faults = LabFaults(standin_lab.state.root)
    before = standin_lab.record().nodes["SWS-Store2"]
    with faults.kill("SWS-Store2"):
        assert not before.alive
        assert not echoes(link(standin_lab, "iscsi1/SWS-Store2"))  # refused: reset by the proxy
        assert echoes(link(standin_lab, "iscsi1/SWS-Store1"))
    after = standin_lab.record().nodes["SWS-Store2"]
    assert after.alive and after.pid != before.pid
    assert echoes(link(standin_lab, "iscsi1/SWS-Store2"))


def test_freeze_then_thaw(standin_lab: LoopbackLab) -> None:
    faults = LabFaults(standin_lab.state.root)
    node = standin_lab.record().nodes["SWS-Store1"]
    address = link(standin_lab, "iscsi2/SWS-Store1")
    with socket.create_connection(address, timeout=0.3) as s:
        with faults.freeze("SWS-Store1"):
            assert node.frozen
            s.sendall(b"held")
            with pytest.raises(TimeoutError):
                s.recv(4)
        s.settimeout(5)
        assert s.recv(4) == b"held"  # the thawed node answers on the same connection
    assert node.alive and not node.frozen


def test_crash_blackholes_then_kills_and_heal_restores(standin_lab: LoopbackLab) -> None:
    faults = LabFaults(standin_lab.state.root)
    old = standin_lab.record().nodes["SWS-Store1"]
    with faults.crash("SWS-Store1"):
        assert not old.alive
        status = standin_lab.proxy().status()
        assert {status[n]["state"]["mode"] for n in faults.links("SWS-Store1")} == {"blackhole"}
        assert {status[n]["state"]["mode"] for n in faults.links("SWS-Store2")} == {"pass"}
        assert not echoes(link(standin_lab, "iscsi1/SWS-Store1"), timeout=0.3)
    assert standin_lab.record().nodes["SWS-Store1"].alive
    assert echoes(link(standin_lab, "iscsi1/SWS-Store1"))


def test_journal_sweep_heals_a_killed_node_and_a_cut(standin_lab: LoopbackLab) -> None:
    faults = LabFaults(standin_lab.state.root)
    faults.kill("SWS-Store2").inject()
    faults.cut("iscsi2").inject()
    assert len(faults.open_faults()) == 2
    outcomes = heal_journal(FaultJournal(standin_lab.state.journal_file))
    assert [o.healed for o in outcomes] == [True, True]
    assert standin_lab.record().nodes["SWS-Store2"].alive
    assert echoes(link(standin_lab, "iscsi2/SWS-Store2"))


def test_selectors_and_hosts_are_checked(standin_lab: LoopbackLab) -> None:
    faults = LabFaults(standin_lab.state.root)
    with pytest.raises(Exception, match="did you mean 'heartbeat'"):
        faults.cut("hartbeat")
    with pytest.raises(Exception, match="no lab node 'Demo1'"):
        faults.kill("Demo1")


def test_sut_on_the_lab_sends_every_path_through_the_proxy(
    standin_lab: LoopbackLab, lab_inventory: Inventory
) -> None:
    from fixtures.sut import SystemUnderTest

    sut = SystemUnderTest(lab_inventory, standin_lab)
    links = standin_lab.record().links
    paths = sut.device("HA2").paths
    assert len(paths) == 4  # two replicas, two iSCSI networks each
    for replica, portal in paths:
        proxied = links[f"{portal.network}/{replica.host}"]
        assert (portal.address, portal.port) == proxied.listen != proxied.upstream
    specs = sut.initiator("Demo2").path_specs("HA2")
    assert len(specs) == 4 and {s.initiator for s in specs} == {"iqn.1991-05.com.microsoft:demo2"}
    with sut.faults.cut("iscsi2/SWS-Store2"):
        assert not echoes(link(standin_lab, "iscsi2/SWS-Store2"))
    assert echoes(link(standin_lab, "iscsi2/SWS-Store2"))


def test_ha_channels_pass_through_per_device_links(
    tmp_path: Path, lab_inventory: Inventory
) -> None:
    lab = LoopbackLab(tmp_path / "lab", node_command=standin_command, ha=True, wait_sync=False)
    record = lab.up(lab_inventory)
    try:
        channels = sorted(n for n, x in record.links.items()
                          if x.purpose not in ("portal", "cluster-heartbeat"))
        assert channels == [
            f"{net}/SWS-Store1/{alias}" for net in ("heartbeat", "sync") for alias in ("HA1", "HA2")
        ]  # the priority-1 replica listens
        dialer = (lab.state.node_dir("SWS-Store2") / "node.toml").read_text()
        sync = record.links["sync/SWS-Store1/HA1"]
        assert f'partner_sync = "{sync.listen[0]}:{sync.listen[1]}"' in dialer  # via the proxy
        listener = (lab.state.node_dir("SWS-Store1") / "node.toml").read_text()
        assert f'sync_listen = "{sync.upstream[0]}:{sync.upstream[1]}"' in listener
        assert echoes(sync.listen)
        faults = LabFaults(lab.state.root)
        with faults.blackhole("sync"):
            assert not echoes(sync.listen, timeout=0.3)
            assert echoes(record.links["heartbeat/SWS-Store1/HA1"].listen)  # heartbeat survives
        assert echoes(sync.listen)
    finally:
        lab.down()


def test_seeded_nemesis_on_the_lab_records_and_heals_everything(
    standin_lab: LoopbackLab, tmp_path: Path
) -> None:
    import asyncio

    from harness.chaos.schedule import Density, draw_schedule
    from harness.faults import Nemesis
    from harness.workload.history import History, HistoryHeader, load_history

    faults = LabFaults(standin_lab.state.root)
    wanted = ("cut", "blackhole", "freeze")
    catalogue = {"any": [s for s in faults.catalogue() if s.action in wanted]}
    dense = Density(fault_s=(0.1, 0.3), gap_s=(0.05, 0.1), relative=False, tail_s=0.0)
    schedule = draw_schedule(catalogue, ["any"], seed=11, duration_s=1.5, density=dense)
    assert schedule == draw_schedule(catalogue, ["any"], seed=11, duration_s=1.5, density=dense)
    header = HistoryHeader(
        seed=11, generation=0, block_size=4096, logical_block_size=512, num_blocks=8, device="lab"
    )
    path = tmp_path / "history.jsonl"
    with History(path, header) as history:
        names = asyncio.run(Nemesis(schedule, faults.build, history).run_async())
    recorded = load_history(path)
    assert [f.name for f in recorded.faults] == names and len(names) == len(schedule.steps)
    assert all(f.stop_ns is not None for f in recorded.faults)
    assert faults.open_faults() == []
    status = standin_lab.proxy().status()
    assert {s["state"]["mode"] for s in status.values()} == {"pass"}
    assert all(n.alive and not n.frozen for n in standin_lab.record().nodes.values())


def test_graceful_stop_and_restart(standin_lab: LoopbackLab) -> None:
    faults = LabFaults(standin_lab.state.root)
    first = standin_lab.record().nodes["SWS-Store1"]
    with faults.stop("SWS-Store1"):
        assert not first.alive
        assert not Path(first.ready_file).exists()  # it shut down cleanly, removing its file
        assert not echoes(link(standin_lab, "iscsi1/SWS-Store1"))
    second = standin_lab.record().nodes["SWS-Store1"]
    assert second.alive and second.pid != first.pid
    with faults.restart("SWS-Store1"):
        third = standin_lab.record().nodes["SWS-Store1"]
        assert third.alive and third.pid != second.pid and not second.alive
        assert echoes(link(standin_lab, "iscsi1/SWS-Store1"))  # back on the same port
    assert standin_lab.record().nodes["SWS-Store1"].pid == third.pid  # heal: already running
