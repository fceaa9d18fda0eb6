"""Validate Required Services on Linux nodes through ``LinuxHost`` with a stand-in
shell: under systemd the unit's state, on a host whose init is not systemd the
daemon's running process, and a daemon that is neither is Failed."""

from __future__ import annotations

import dataclasses

import pytest

from fixtures.settings import INVENTORIES
from fixtures.sut import SystemUnderTest
from harness.checks.results import ResultWord
from harness.lab.inventory import load
from harness.remote.linux import LinuxHost
from harness.remote.ssh import SshTarget
from harness.validation.runner import find, run_one
from harness.validation.site import ValidationSite
from tests.support.recorded_shell import Recorder


def linux(answers: dict[str, tuple[int, str]]) -> tuple[LinuxHost, Recorder]:
    host = LinuxHost(SshTarget(name="h", address="192.0.2.1"))
    shell = Recorder(answers)
    host.execute = shell  # type: ignore[method-assign]
    host.connect = lambda: None  # type: ignore[method-assign]
    host.close = lambda: None  # type: ignore[method-assign]
    return host, shell


NO_SYSTEMD = {"test -d /run/systemd/system": (1, "")}
SYSTEMD = {"test -d /run/systemd/system": (0, "")}


def test_with_systemd_the_units_state_is_asked():
    host, shell = linux({**SYSTEMD, "is-active -- iscsid": (0, "active\n")})
    assert host.service_state("iscsid") == ("active", "systemctl is-active -- iscsid")
    assert shell.lines == ["test -d /run/systemd/system", "systemctl is-active -- iscsid"]


def test_without_systemd_the_daemons_process_is_looked_for():
    host, shell = linux({**NO_SYSTEMD, "ps -e": (0, "  1 sh\n 40 iscsid\n 41 iscsid\n")})
    state, how = host.service_state("iscsid")
    assert state == "running (pid 40, 41)" and "no systemd" in how
    assert host.service_state("multipathd")[0] == "not running"
    assert not any("systemctl" in line for line in shell.lines)


def linux_site(monkeypatch: pytest.MonkeyPatch, answers: dict[str, tuple[int, str]],
               services: tuple[str, ...] = ()) -> ValidationSite:
    inventory = load(INVENTORIES / "example-site.toml")
    hosts = {name: dataclasses.replace(h, access=dataclasses.replace(h.access, os="linux"),
                                       services=services)
             for name, h in inventory.hosts.items()}
    inventory = dataclasses.replace(inventory, hosts=hosts)
    site = ValidationSite(SystemUnderTest(inventory, None))
    facts = {"os-release": (0, 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian 12"\n'
                                   "--splitbrain--\n6.1.0-18-amd64\nx86_64\nnode\n")}
    monkeypatch.setattr(site, "host_access", lambda name: linux({**facts, **answers})[0])
    return site


def test_nodes_without_systemd_pass_when_the_daemons_run(monkeypatch):
    site = linux_site(monkeypatch, {**NO_SYSTEMD,
                                    "ps -e": (0, " 40 iscsid\n 52 multipathd\n")})
    result = run_one(find("Validate Required Services"), site)
    assert result.result is ResultWord.SUCCESS, result.reason
    text = "\n".join(e.text for e in result.evidence)
    assert "iscsid running (pid 40) [no systemd (/run/systemd/system absent)" in text


def test_a_daemon_neither_active_nor_running_fails(monkeypatch):
    site = linux_site(monkeypatch, {**NO_SYSTEMD, "ps -e": (0, " 40 iscsid\n 41 sshd\n")})
    result = run_one(find("Validate Required Services"), site)
    assert result.result is ResultWord.FAILED
    assert "service multipathd is not running" in result.reason
    assert "iscsid" not in result.reason
    site = linux_site(monkeypatch, {**SYSTEMD, "is-active -- iscsid": (3, "inactive\n"),
                                    "is-active -- multipathd": (0, "active\n")})
    result = run_one(find("Validate Required Services"), site)
    assert result.result is ResultWord.FAILED and "service iscsid is inactive" in result.reason


def test_the_inventory_names_the_services_a_node_needs(monkeypatch):
    answers = {**NO_SYSTEMD, "ps -e": (0, " 7 sshd\n")}
    result = run_one(find("Validate Required Services"), linux_site(monkeypatch, answers,
                                                                     ("sshd",)))
    assert result.result is ResultWord.SUCCESS, result.reason
    result = run_one(find("Validate Required Services"), linux_site(monkeypatch, answers))
    assert result.result is ResultWord.FAILED and "iscsid is not running" in result.reason


def test_services_in_the_inventory_must_be_a_list_of_names():
    from harness.lab.inventory import loads
    from harness.lab.toml_source import InventoryError
    from tests.unit.lab.test_inventory import BASE

    text = BASE.replace('roles = ["cluster-node"]',
                        'roles = ["cluster-node"]\nservices = "sshd"', 1)
    assert text != BASE
    with pytest.raises(InventoryError, match="list of service names"):
        loads(text)
