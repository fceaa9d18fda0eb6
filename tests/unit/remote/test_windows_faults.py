"""Windows side of the real-host faults: freeze (NtSuspendProcess) with a scheduled
resume, service stop verified by state, and a firewall path drop that Windows does not
enforce on established connections reported as a failed injection."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from harness.faults import FaultJournal, FaultNotEffective
from harness.faults.remote_catalogue import (
    RemoteFreeze,
    RemoteHostFault,
    RemotePathDrop,
    RemoteServiceStop,
)
from harness.remote import windows_process
from harness.remote.errors import UnsafeArgument
from harness.remote.windows import IscsiConnection, ServiceState


class FakeWindows:
    """Records PowerShell bodies; answers what a Windows host would (no black_hole)."""

    def __init__(self, **answers: Any) -> None:
        self.bodies: list[str] = []
        self.answers = answers
        self.status = "Running"

    def powershell(self, body: str, *, operation: str, **kw: Any) -> list[Any]:
        self.bodies.append(body)
        if "Select-Object Id" in body:
            return [{"Id": 4242}]
        if "Running = @($_.Threads" in body:
            return [{"Id": 4242, "Running": self.answers.get("running_threads", 0)}]
        return []

    def stop_service(self, name: str, *, tag: str | None = None, ttl_s: float | None = None):
        self.bodies.append(f"stop {name} {tag} {ttl_s}")
        self.status = self.answers.get("after_stop", "Stopped")
        return ServiceState(name, self.status, "Automatic")

    def start_service(self, name: str, *, tag: str | None = None):
        self.status = "Running"
        return ServiceState(name, "Running", "Automatic")

    def block(self, tag: str, **kw: Any):
        return ["rule"]

    def iscsi_connections(self):
        return [IscsiConnection("c1", "198.51.100.21", 50000, "198.51.100.11", 3260)]

    def heal(self, tag: str) -> int:
        return 4

    def firewall_rules(self, tag: str):
        return []


@pytest.fixture
def windows(monkeypatch, tmp_path):
    host = FakeWindows()
    monkeypatch.setattr(RemoteHostFault, "opener",
                        staticmethod(lambda inventory, name: contextlib.nullcontext(host)))
    return host


def common(tmp_path):
    return {"inventory": str(tmp_path / "site.toml"), "journal": FaultJournal(tmp_path / "j"),
            "ttl_s": 120}


def test_freeze_suspends_with_a_scheduled_resume_first(windows, tmp_path):
    with RemoteFreeze(host="SWS-Store1", label="primary", process="StarWindService",
                      service="StarWindService", **common(tmp_path)):
        suspend = next(b for b in windows.bodies if "Suspend($q.Id)" in b)
        register = next(b for b in windows.bodies if "Register-ScheduledTask" in b)
        assert windows.bodies.index(register) < windows.bodies.index(suspend)
        assert "NtSuspendProcess" in suspend and "StartWhenAvailable" in register
    assert any("Resume($id)" in b and "4242" in b for b in windows.bodies)


def test_freeze_that_leaves_threads_running_is_a_failed_injection(windows, tmp_path):
    windows.answers["running_threads"] = 3
    with pytest.raises(FaultNotEffective, match="not all suspended"):
        RemoteFreeze(host="SWS-Store1", label="primary", process="StarWindService",
                     service=None, **common(tmp_path)).inject()


def test_service_stop_verified_and_healed(windows, tmp_path):
    with RemoteServiceStop(host="SWS-Store1", label="primary", service="StarWindService",
                           **common(tmp_path)):
        assert windows.status == "Stopped"
    assert windows.status == "Running"
    windows.answers["after_stop"] = "Running"
    with pytest.raises(FaultNotEffective, match="still Running"):
        RemoteServiceStop(host="SWS-Store1", label="primary", service="StarWindService",
                          **common(tmp_path)).inject()


def test_windows_path_drop_with_the_session_still_up_is_a_failed_injection(windows, tmp_path,
                                                                            monkeypatch):
    import harness.faults.remote_catalogue as catalogue

    monkeypatch.setattr(catalogue, "VERIFY_S", 0.3)
    with pytest.raises(FaultNotEffective, match="does not cut established connections"):
        RemotePathDrop(host="Demo1", label="Demo1->iscsi/SWS-Store1", peer="198.51.100.11",
                       port=3260, require_drops=True, **common(tmp_path)).inject()


def test_resume_body_quotes_only_integers():
    with pytest.raises(UnsafeArgument):
        windows_process.resume_body(["1; Stop-Computer"])  # type: ignore[list-item]


def test_windows_evidence_reads_system_log_and_cluster_log_on_nodes_only(monkeypatch):
    import time

    from harness.lab.inventory import loads
    from harness.redact import MASK
    from harness.remote import evidence
    from tests.unit.lab.test_inventory import BASE

    monkeypatch.setenv("T_PASSWORD", "winpass-123")
    text = BASE.replace('access = { user = "admin", password = "${T_PASSWORD}" }',
                        'access = { user = "admin", os = "windows", password = "${T_PASSWORD}" }')
    text = text.replace('[hosts.Node1]\nroles = ["cluster-node"]\n'
                        'addresses = { public = "192.0.2.21", iscsi = "198.51.100.21" }',
                        '[hosts.Node1]\nroles = ["cluster-node"]\n'
                        'addresses = { public = "192.0.2.21", iscsi = "198.51.100.21" }\n'
                        'access = { user = "admin", os = "windows", password = "${T_PASSWORD}" }')
    inventory = loads(text)
    scripts: dict[str, str] = {}

    class Host:
        def __init__(self, name):
            self.name = name

        def powershell(self, body, **kw):
            scripts[self.name] = body
            return [{"Name": "System", "Text": "logon by admin with winpass-123"}]

    logs = evidence.collect(inventory, time.time() - 300,
                            opener=lambda inv, h: contextlib.nullcontext(Host(h)))
    assert sorted(scripts) == ["Node1", "Store1"]
    assert "Get-WinEvent -FilterHashtable @{ LogName = 'System'" in scripts["Store1"]
    assert "Get-ClusterLog" in scripts["Node1"] and "Get-ClusterLog" not in scripts["Store1"]
    assert all("winpass-123" not in log.text and MASK in log.text for log in logs)
