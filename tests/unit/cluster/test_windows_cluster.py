"""sut.cluster on a real Windows site: the same verbs over recorded cmdlet transcripts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.cluster.budgets import judge_migrations
from harness.cluster.errors import ClusterError
from harness.cluster.windows_cluster import WindowsCluster
from harness.remote import powershell as ps
from harness.remote.result import CommandResult
from harness.remote.ssh import SshTarget
from harness.remote.windows import WindowsHost

TRANSCRIPTS = Path(__file__).parents[2] / "data" / "transcripts" / "windows"
ROUTES = {"Move-ClusterVirtualMachineRole": "move-clustervirtualmachinerole",
          "Get-ClusterNode": "get-clusternode", "Get-ClusterGroup": "get-clustergroup"}


class Replay:
    def __init__(self) -> None:
        self.scripts: list[str] = []

    def __call__(self, command: str, *, check: bool = True, timeout: float | None = None,
                 stdin: str | None = None) -> CommandResult:
        assert re.fullmatch(r"[A-Za-z0-9 .+/=-]+", command)
        script = ps.decode_command_line(command)
        self.scripts.append(script)
        name = next(n for marker, n in ROUTES.items() if marker in script)
        doc = json.loads((TRANSCRIPTS / f"{name}.json").read_text())
        result = CommandResult(host=doc["host"], command=command, exit_status=doc["exit_status"],
                               stdout=doc["stdout"], stderr=doc["stderr"], duration_ns=1)
        return result.check() if check else result


@pytest.fixture
def site() -> tuple[WindowsCluster, Replay]:
    host = WindowsHost(SshTarget(name="Demo1", address="192.0.2.21", user="Administrator"))
    replay = Replay()
    host.execute = replay  # type: ignore[method-assign]
    return WindowsCluster(["Demo1", "Demo2"], lambda name: host), replay


def test_nodes_and_roles_in_the_clusters_words(site: tuple[WindowsCluster, Replay]) -> None:
    cluster, _ = site
    assert [(n.name, n.state) for n in cluster.nodes()] == [("Demo1", "Up"), ("Demo2", "Paused")]
    assert [(r.name, r.owner, r.state) for r in cluster.roles()] == [
        ("VM01", "Demo2", "Online"), ("VM02", "Demo2", "PartialOnline")]


def test_a_live_move_runs_the_cmdlet_and_reports_total_time_only(
        site: tuple[WindowsCluster, Replay]) -> None:
    cluster, replay = site
    report = cluster.move("VM01", "Demo1", "live")
    assert (report.source, report.destination, report.kind) == ("Demo2", "Demo1", "live")
    assert report.total_s >= 0 and not report.blackout_measured
    assert any("-MigrationType Live" in s for s in replay.scripts)
    verdict = judge_migrations([report], {"live_migration_blackout_s": 2, "live_migration_s": 60})
    assert verdict.valid and "not measured" in verdict.stats["blackout"]


@pytest.mark.parametrize("vm,node,words", [
    ("VM01", "Demo9", "not a node of this cluster"),
    ("VM01", "Demo2", "Demo2 is Paused"),
    ("VM07", "Demo1", "no VM role 'VM07'"),
])
def test_bad_moves_are_refused_before_any_move_is_sent(
        site: tuple[WindowsCluster, Replay], vm: str, node: str, words: str) -> None:
    cluster, replay = site
    with pytest.raises(ClusterError, match=words) as err:
        cluster.move(vm, node, "live")
    assert "\n" not in str(err.value)
    assert not any("Move-ClusterVirtualMachineRole" in s for s in replay.scripts)


def test_failing_a_real_node_needs_a_destructive_inventory(
        site: tuple[WindowsCluster, Replay]) -> None:
    cluster, replay = site
    with pytest.raises(ClusterError, match="destructive = true"):
        cluster.fail_node("Demo2")
    assert replay.scripts == []
