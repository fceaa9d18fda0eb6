"""The seed's Windows site through stand-in Windows drivers: what each check asks a host
and how it judges the answers (no host is contacted; the drivers answer as
``WindowsHost`` would, with the shapes its parsers return)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from fixtures.settings import INVENTORIES
from fixtures.sut import SystemUnderTest
from harness.checks.results import ResultWord
from harness.lab.inventory import load
from harness.remote.errors import HostUnreachable
from harness.remote.result import CommandResult
from harness.remote.windows import ClusterGroup, ClusterNode, ServiceState, WindowsFacts
from harness.validation.runner import find, run_one
from harness.validation.site import ValidationSite

S, W, F, NA = (ResultWord.SUCCESS, ResultWord.WARNING, ResultWord.FAILED,
               ResultWord.NOT_APPLICABLE)
PING_OK = ("Packets: Sent = 3, Received = 3, Lost = 0 (0% loss),\n"
           "Minimum = 0ms, Maximum = 1ms, Average = 0ms\n")


@dataclass
class StandInWindows:
    name: str
    addresses: list[str]
    build: str = "20348"
    hyperv: str = "Installed"
    hotfixes: tuple[str, ...] = ("KB5030216", "KB5031364")
    services: dict[str, str] = field(default_factory=lambda: {"ClusSvc": "Running",
                                                               "MSiSCSI": "Running"})
    policy: str = "RR"
    threshold: int = 20
    peer_state: str = "Up"
    vm_state: str = "Online"
    commands: list[str] = field(default_factory=list)

    def __enter__(self) -> StandInWindows:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def close(self) -> None:
        pass

    def facts(self) -> WindowsFacts:
        return WindowsFacts("Microsoft Windows Server 2022 Datacenter", f"10.0.{self.build}",
                            self.build, "64-bit", self.name.upper(), "2026-12-01T00:00:00Z",
                            {"Hyper-V": self.hyperv, "Failover-Clustering": "Installed",
                             "Multipath-IO": "Installed"})

    def powershell(self, body: str, *, operation: str, **_: object) -> list[dict]:
        self.commands.append(operation)
        if operation == "Get-HotFix":
            return [{"HotFixID": h} for h in self.hotfixes]
        if operation == "Get-NetIPAddress":
            return [{"IPAddress": a, "PrefixLength": 24} for a in self.addresses] + [
                {"IPAddress": "fe80::1%4", "PrefixLength": 64}]
        if operation == "Get-ClusterQuorum":
            return [{"Type": "NodeAndDiskMajority", "Resource": "Cluster Disk 1"}]
        if operation == "Get-Cluster":
            return [{"CrossSubnetDelay": 1000, "CrossSubnetThreshold": self.threshold}]
        raise AssertionError(f"unexpected {operation}")

    def service(self, name: str) -> ServiceState:
        return ServiceState(name, self.services[name], "Automatic")

    def cluster_nodes(self) -> list[ClusterNode]:
        return [ClusterNode("Demo1", "1", "Up", "Normal", 1, 1),
                ClusterNode("Demo2", "2", self.peer_state, "Normal", 1, 1)]

    def cluster_groups(self) -> list[ClusterGroup]:
        return [ClusterGroup("Cluster Group", "Demo1", "Online", "Cluster"),
                ClusterGroup("VM1", "Demo2", self.vm_state, "VirtualMachine")]

    def msdsm_default_policy(self) -> str:
        return self.policy

    def run_argv(self, argv: list[str], *, check: bool = True) -> CommandResult:
        self.commands.append(" ".join(argv))
        assert argv[:2] == ["ping", "-n"] and "-S" in argv  # ping.exe from a source address
        return CommandResult(self.name, " ".join(argv), 0, PING_OK, "", 1)


def seed_site(monkeypatch: pytest.MonkeyPatch, **changes: dict) -> ValidationSite:
    inventory = load(INVENTORIES / "example-site.toml")
    gone = {name for name, change in changes.items() if change.pop("gone", False)}
    drivers = {h.name: StandInWindows(**{"name": h.name,
                                         "addresses": [str(a) for a in h.addresses.values()],
                                         **changes.get(h.name, {})})
               for h in inventory.hosts.values()}
    site = ValidationSite(SystemUnderTest(inventory, None))
    site.asked = []  # type: ignore[attr-defined]

    def host_access(name: str) -> StandInWindows:
        site.asked.append(name)  # type: ignore[attr-defined]
        if name in gone:
            raise HostUnreachable(f"cannot reach {name} at 192.0.2.22:22 over ssh after 1 "
                                  "attempts (timed out): check the address and that sshd runs")
        return drivers[name]

    monkeypatch.setattr(site, "host_access", host_access)
    return site


def check(site: ValidationSite, name: str):
    return run_one(find(name), site)


def test_matching_windows_nodes_pass_the_host_checks(monkeypatch):
    site = seed_site(monkeypatch)
    for name in ("List Operating System Information", "Validate Operating System Version",
                 "Validate Operating System Edition", "Validate Same Processor Architecture",
                 "Validate Software Update Levels", "Validate Required Services",
                 "Validate Hyper-V Role Installed", "Validate Quorum Configuration",
                 "Validate IP Configuration", "Validate Network Communication",
                 "Validate HA MPIO Policy"):
        result = check(site, name)
        assert result.result is S, f"{name}: {result.reason}"
    comm = check(site, "Validate Network Communication")
    assert "Demo1: ping -n 3 -w 1000 -S 203.0.113.21 203.0.113.22" in comm.evidence[0].text


def test_differing_nodes_fail_naming_both(monkeypatch):
    site = seed_site(monkeypatch, Demo2={"build": "17763", "hyperv": "Available",
                                         "hotfixes": ("KB5030216",), "policy": "FOO",
                                         "services": {"ClusSvc": "Stopped",
                                                      "MSiSCSI": "Running"}})
    version = check(site, "Validate Operating System Version")
    assert version.result is F and "Demo1 '10.0.20348" in version.reason
    assert "Demo2 '10.0.17763" in version.reason
    hyperv = check(site, "Validate Hyper-V Role Installed")
    assert hyperv.result is F and "Demo2: Hyper-V is Available" in hyperv.reason
    updates = check(site, "Validate Software Update Levels")
    assert updates.result is W and "Demo2 lacks 1 update(s)" in updates.reason
    services = check(site, "Validate Required Services")
    assert services.result is F and "Demo2: service ClusSvc is Stopped" in services.reason
    policy = check(site, "Validate HA MPIO Policy")
    assert policy.result is F and "Demo2 uses MPIO policy failover-only" in policy.reason


def test_a_node_that_does_not_answer_fails_in_one_line_and_the_other_still_counts(
        monkeypatch):
    site = seed_site(monkeypatch, Demo2={"gone": True})
    os_info = check(site, "List Operating System Information")
    assert os_info.result is F and "\n" not in os_info.reason
    assert os_info.reason.startswith("Demo2: cannot reach Demo2")
    assert "Demo1: Microsoft Windows Server 2022 Datacenter" in os_info.evidence[-1].text
    # later checks of the same run fail at once with the same line: it is not asked again
    version = check(site, "Validate Operating System Version")
    assert version.result is F and version.reason.startswith("Demo2: cannot reach Demo2")
    check(site, "Validate Network Communication")
    assert site.asked.count("Demo2") == 1


def test_the_addresses_a_node_really_has_are_compared_with_the_inventory(monkeypatch):
    inventory = load(INVENTORIES / "example-site.toml")
    wrong = [str(a) for a in inventory.host("Demo1").addresses.values()]
    wrong[wrong.index("198.51.100.21")] = "198.51.100.99"
    site = seed_site(monkeypatch, Demo1={"addresses": wrong})
    ip = check(site, "Validate IP Configuration")
    assert ip.result is F
    assert "Demo1 does not have its address 198.51.100.21 on network iscsi" in ip.reason
    assert "198.51.100.99/24" in ip.evidence[0].text  # what it has instead: the evidence


@pytest.mark.parametrize(("threshold", "word"), [(20, S), (5, W)])
def test_a_multi_subnet_cluster_is_judged_by_its_cross_subnet_heartbeat(monkeypatch, tmp_path,
                                                                        threshold, word):
    from harness.lab.inventory import loads

    text = (INVENTORIES / "example-site.toml").read_text()
    text = text.replace('[networks.private]', '[networks.public2]\nroles = ["public"]\n'
                        'cidr = "192.0.3.0/24"\n\n[networks.private]')
    text = text.replace('addresses = { public = "192.0.2.22",',
                        'addresses = { public2 = "192.0.3.22",')
    inventory = loads(text, tmp_path / "multi.toml")
    site = ValidationSite(SystemUnderTest(inventory, None))
    driver = StandInWindows("Demo1", [], threshold=threshold)
    monkeypatch.setattr(site, "host_access", lambda name: driver)
    result = check(site, "Validate Multiple Subnet Properties")
    assert result.result is word, result.reason
    assert "Get-Cluster" in driver.commands


def test_a_host_that_does_not_answer_is_asked_once_and_named(monkeypatch):
    site = seed_site(monkeypatch, Demo2={"gone": True})
    comm = check(site, "Validate Network Communication")
    assert comm.result is W
    assert comm.reason.startswith("not tested from Demo2: cannot reach Demo2")
    assert site.asked.count("Demo2") == 1  # not once per pair
    assert "Demo1: ping -n 3 -w 1000 -S 203.0.113.21 203.0.113.22" in comm.evidence[0].text


def test_cluster_roles_and_resource_status(monkeypatch):
    site = seed_site(monkeypatch)
    listed = check(site, "List Clustered Roles")
    assert listed.result is S and listed.reason == "2 role(s) on 2 node(s)"
    assert "VM1 (VirtualMachine): Online on Demo2" in listed.evidence[-1].text
    assert check(site, "Validate Resource Status").result is S
    failed_vm = seed_site(monkeypatch, Demo1={"vm_state": "Failed", "peer_state": "Paused"})
    status = check(failed_vm, "Validate Resource Status")
    assert status.result is F and status.reason.startswith("role VM1 is Failed")
