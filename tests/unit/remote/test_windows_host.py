"""WindowsHost: the PowerShell it builds and how it reads recorded answers.

Each test replays transcripts from tests/data/transcripts/windows (see the README
there for their provenance) in place of the SSH connection, and checks both the
decoded script that would have been sent and the typed result.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.remote import powershell as ps
from harness.remote import scheduled_heal
from harness.remote.deadman import timer_name
from harness.remote.errors import (
    HostUnreachable,
    OutputFormatError,
    PowerShellError,
    UnsafeArgument,
)
from harness.remote.result import CommandResult
from harness.remote.ssh import SshTarget
from harness.remote.windows import (
    ClusterGroup,
    ClusterNode,
    MpioSettings,
    WindowsHost,
)

TRANSCRIPTS = Path(__file__).parents[2] / "data" / "transcripts" / "windows"
QUOTES = "'\u2018\u2019\u201a\u201b"
HOSTILE = ["VM 'prod'", "it\u2019s", "$(Stop-Computer)", "a; Restart-Computer", "`whoami`",
           'say "hi"', "back\\slash", "*", "new\nline", "\u2018smart\u2019"]


class Replay:
    """Stands in for ``RemoteHost.execute``: answers each script from a transcript."""

    def __init__(self, *routes: tuple[str, str]) -> None:
        self.routes = routes
        self.scripts: list[str] = []

    def __call__(self, command: str, *, check: bool = True, timeout: float | None = None,
                 stdin: str | None = None) -> CommandResult:
        assert re.fullmatch(r"[A-Za-z0-9 .+/=-]+", command), "unsafe characters on the line"
        script = ps.decode_command_line(command)
        self.scripts.append(script)
        for marker, name in self.routes:
            if marker in script:
                doc = json.loads((TRANSCRIPTS / f"{name}.json").read_text())
                result = CommandResult(host=doc["host"], command=command,
                                       exit_status=doc["exit_status"], stdout=doc["stdout"],
                                       stderr=doc["stderr"], duration_ns=1)
                return result.check() if check else result
        raise AssertionError(f"no transcript answers this script:\n{script}")


def windows(*routes: tuple[str, str]) -> tuple[WindowsHost, Replay]:
    host = WindowsHost(SshTarget(name="Demo1", address="192.0.2.21", user="Administrator"))
    replay = Replay(*routes)
    host.execute = replay  # type: ignore[method-assign]
    return host, replay


def unquote(text: str) -> str:
    """Read one PowerShell single-quoted literal the way PowerShell's tokenizer does."""
    assert text[0] in QUOTES and text[-1] in QUOTES
    out, i, body = [], 0, text[1:-1]
    while i < len(body):
        if body[i] in QUOTES:
            assert i + 1 < len(body) and body[i + 1] in QUOTES, f"string ends early in {text!r}"
            out.append(body[i + 1])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


# -- quoting and transport ---------------------------------------------------------------

@pytest.mark.parametrize("value", HOSTILE)
def test_literal_keeps_hostile_values_literal(value):
    quoted = ps.literal(value)
    assert unquote(quoted) == value
    assert "'" not in value or "''" in quoted


@given(st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=40))
def test_literal_round_trips_any_text(value):
    assert unquote(ps.literal(value)) == value


def test_literal_refuses_nul():
    with pytest.raises(UnsafeArgument):
        ps.literal("a\x00b")


def test_encoded_command_line_carries_only_base64():
    script = ps.wrap("Get-Service | Where-Object { $_.Name -eq " + ps.literal(HOSTILE[2]) + " }")
    line = ps.command_line(script)
    assert line.startswith("powershell.exe -NoLogo -NoProfile -NonInteractive ")
    assert re.fullmatch(r"[A-Za-z0-9 .+/=-]+", line)
    assert ps.decode_command_line(line) == script
    assert "ConvertTo-Json -InputObject $splitbrainResult -Depth 4 -Compress" in script


def test_too_long_scripts_are_refused_before_sending():
    with pytest.raises(UnsafeArgument, match="too long"):
        ps.command_line(ps.wrap("'" + "x" * 4000 + "'"))


# -- cluster -----------------------------------------------------------------------------

@pytest.mark.parametrize("transcript", ["get-clusternode", "get-clusternode-ps51-wrapped"])
def test_cluster_nodes(transcript):
    host, replay = windows(("Get-ClusterNode", transcript))
    assert host.cluster_nodes() == [
        ClusterNode("Demo1", "1", "Up", "Normal", 1, 1),
        ClusterNode("Demo2", "2", "Paused", "Normal", 1, 0),
    ]
    assert "@{n='State';e={[string]$_.State}}" in replay.scripts[0]


def test_cluster_groups_name_owner_and_state():
    host, _ = windows(("Get-ClusterGroup", "get-clustergroup"))
    groups = host.cluster_groups()
    assert [g.name for g in groups if g.group_type == "VirtualMachine"] == ["VM01", "VM02"]
    assert groups[3] == ClusterGroup("VM02", "Demo2", "PartialOnline", "VirtualMachine")


def test_move_vm_quotes_names_and_reads_the_new_owner():
    host, replay = windows(("Move-ClusterVirtualMachineRole", "move-clustervirtualmachinerole"))
    group = host.move_vm("VM 'prod'; Stop-Computer", "Demo1", migration="Live")
    assert group == ClusterGroup("VM01", "Demo1", "Online", "VirtualMachine")
    assert ("Move-ClusterVirtualMachineRole -Name 'VM ''prod''; Stop-Computer' -Node 'Demo1' "
            "-MigrationType Live") in replay.scripts[0]


def test_move_vm_refuses_unknown_migration_types_without_sending():
    host, replay = windows()
    with pytest.raises(UnsafeArgument):
        host.move_vm("VM01", "Demo1", migration="Live; Stop-Computer")
    assert replay.scripts == []


def test_move_vm_failure_is_one_typed_line_with_the_error_id():
    host, _ = windows(("Move-ClusterVirtualMachineRole", "move-clustervirtualmachinerole-failed"))
    with pytest.raises(PowerShellError) as err:
        host.move_vm("VM01", "Demo2", migration="Quick")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("Move-ClusterVirtualMachineRole 'VM01' to 'Demo2' (Quick) failed "
                              "on Demo1: An error occurred while moving the clustered role 'VM01'.")
    assert err.value.error_id.startswith("Move-ClusterVirtualMachineRole,")
    assert "password logon" in message


def test_cluster_shared_volumes():
    host, replay = windows(("Get-ClusterSharedVolume", "get-clustersharedvolume"))
    (csv,) = host.cluster_shared_volumes()
    assert (csv.name, csv.state, csv.owner_node) == ("Cluster Disk 2", "Online", "Demo1")
    assert csv.friendly_volume_name == "C:\\ClusterStorage\\Volume1"
    assert csv.redirected_access is False
    assert "$_.SharedVolumeInfo.FriendlyVolumeName" in replay.scripts[0]


def test_test_cluster_returns_report_and_verdict_warnings():
    host, replay = windows(("Test-Cluster", "test-cluster"))
    result = host.test_cluster(nodes=["Demo1", "Demo2"], include=["Storage", "Inventory"])
    assert result.report.endswith(".htm")
    assert "ClusterConditionallyApproved" in result.warnings[0]
    assert "Test-Cluster -Node @('Demo1', 'Demo2') -Include @('Storage', 'Inventory')" \
        in replay.scripts[0]


# -- iSCSI and MPIO ----------------------------------------------------------------------

def test_iscsi_sessions_and_connections():
    host, _ = windows(("Get-IscsiSession", "get-iscsisession"),
                      ("Get-IscsiConnection", "get-iscsiconnection"))
    sessions = host.iscsi_sessions()
    assert [s.is_connected for s in sessions] == [True, False]
    assert sessions[0].target_node_address == "iqn.2008-08.com.starwindsoftware:sws-store1-ha2"
    assert sessions[1].authentication_type == "ONEWAYCHAP"
    (conn,) = host.iscsi_connections()
    assert (conn.target_address, conn.target_port, conn.initiator_port) == \
        ("198.51.100.11", 3260, 52814)


def test_mpio_settings_are_the_documented_defaults():
    host, _ = windows(("Get-MPIOSetting", "get-mpiosetting"))
    assert host.mpio_settings() == MpioSettings("Disabled", 30, 20, 3, 1, "Disabled", 40, 120)


def test_msdsm_default_policy():
    host, _ = windows(("Get-MSDSMGlobalDefaultLoadBalancePolicy",
                       "get-msdsmglobaldefaultloadbalancepolicy"))
    assert host.msdsm_default_policy() == "RR"


# -- network faults, services, power -----------------------------------------------------

def test_adapters_are_matched_exactly_never_as_wildcards():
    host, replay = windows(("Disable-NetAdapter", "disable-netadapter"),
                           ("Enable-NetAdapter", "disable-netadapter"))
    host.disable_adapter("iSCSI '1' *")
    host.enable_adapter("iSCSI '1' *")
    for script in replay.scripts:
        assert "Where-Object { $_.Name -eq 'iSCSI ''1'' *' }" in script
        assert "-Name 'iSCSI" not in script
    assert "$a | Disable-NetAdapter -Confirm:$false" in replay.scripts[0]
    assert "$a | Enable-NetAdapter -Confirm:$false" in replay.scripts[1]


def test_missing_adapter_is_a_clear_error():
    host, _ = windows(("Disable-NetAdapter", "disable-netadapter-not-found"))
    with pytest.raises(PowerShellError, match=r"adapter named 'iSCSI 9'.*Get-NetAdapter"):
        host.disable_adapter("iSCSI 9")


def test_net_adapters():
    host, _ = windows(("Get-NetAdapter", "get-netadapter"))
    adapters = {a.name: a.status for a in host.net_adapters()}
    assert adapters == {"Ethernet": "Up", "iSCSI 1": "Up", "Sync": "Disabled"}


def test_block_creates_tagged_rules_in_our_group_both_ways():
    host, replay = windows(("New-NetFirewallRule", "new-netfirewallrule"),
                           ("Get-NetFirewallRule", "get-netfirewallrule"))
    rules = host.block("sync-7", peer="203.0.113.12", port=3260)
    assert {(r.direction, r.action, r.group) for r in rules} == {
        ("Inbound", "Block", "splitbrain"), ("Outbound", "Block", "splitbrain")}
    created = replay.scripts[0]
    assert created.count("New-NetFirewallRule -Name 'splitbrain-sync-7-") == 4
    assert created.count("-Group 'splitbrain'") == 4
    assert "-RemoteAddress '203.0.113.12'" in created
    assert "-LocalPort 3260" in created and "-RemotePort 3260" in created
    assert "StartsWith('splitbrain-sync-7-')" in replay.scripts[1]


def test_block_refuses_hostile_tags_and_addresses_without_sending():
    host, replay = windows()
    with pytest.raises(UnsafeArgument):
        host.block("x'; Remove-NetFirewallRule -All; '", peer="203.0.113.12")
    with pytest.raises(UnsafeArgument):
        host.block("t1", peer="203.0.113.12'; Stop-Computer")
    with pytest.raises(UnsafeArgument):
        host.block("t1")
    assert replay.scripts == []


def test_heal_removes_only_the_tagged_rules_and_counts_them():
    host, replay = windows(("Unregister-ScheduledTask", "register-scheduledtask"),
                           ("Remove-NetFirewallRule", "remove-netfirewallrule"))
    assert host.heal("sync-7") == 4
    assert "Get-NetFirewallRule -Group 'splitbrain'" in replay.scripts[0]
    assert "StartsWith('splitbrain-sync-7-')" in replay.scripts[0]
    # then its pending heal task, if any, is cancelled
    assert f"$_.TaskName -eq '{timer_name('sync-7')}'" in replay.scripts[1]


def task_of(script: str) -> str:
    """The script a Register-ScheduledTask call would have the task run."""
    match = re.search(r"-Argument '([^']*)'", script)
    assert match, script
    return ps.decode_command_line(match.group(1))


def test_a_ttl_arms_a_heal_task_before_the_adapter_goes_down():
    host, replay = windows(("Register-ScheduledTask", "register-scheduledtask"),
                           ("Disable-NetAdapter", "disable-netadapter"))
    host.disable_adapter("iSCSI '1'", tag="path-3", ttl_s=90)
    register, disable = replay.scripts
    assert "Disable-NetAdapter" in disable and "Disable-NetAdapter" not in register
    assert f"-TaskPath '\\splitbrain\\' -TaskName '{timer_name('path-3')}'" in register
    assert "-At ((Get-Date).AddSeconds(90))" in register
    assert "New-ScheduledTaskPrincipal -UserId 'SYSTEM'" in register
    assert "New-ScheduledTaskSettingsSet -StartWhenAvailable" in register
    assert "-Settings $settings" in register
    task = task_of(register)
    assert "Where-Object { $_.Name -eq 'iSCSI ''1''' } | Enable-NetAdapter -Confirm:$false" in task
    assert task.rstrip().endswith(f"-TaskName '{timer_name('path-3')}' -Confirm:$false")


def test_a_ttl_on_firewall_and_service_faults_heals_exactly_that_fault():
    host, replay = windows(("Register-ScheduledTask", "register-scheduledtask"),
                           ("New-NetFirewallRule", "new-netfirewallrule"),
                           ("Get-NetFirewallRule", "get-netfirewallrule"),
                           ("Stop-Service", "stop-service"))
    host.block("sync-7", peer="203.0.113.12", ttl_s=120)
    host.stop_service("StarWindService", tag="svc-1", ttl_s=60)
    firewall_task = task_of(replay.scripts[0])
    assert "StartsWith('splitbrain-sync-7-') } | Remove-NetFirewallRule" in firewall_task
    service_task = task_of(replay.scripts[3])
    assert "Where-Object { $_.Name -eq 'StarWindService' } | Start-Service" in service_task


def test_a_ttl_without_a_tag_or_out_of_range_sends_nothing():
    host, replay = windows()
    with pytest.raises(UnsafeArgument, match="needs its tag"):
        host.disable_adapter("Sync", ttl_s=30)
    with pytest.raises(UnsafeArgument, match="TTL"):
        host.stop_service("StarWindService", tag="svc-1", ttl_s=0)
    assert replay.scripts == []


def test_pending_heal_tasks_and_sweep():
    host, replay = windows(("Unregister-ScheduledTask", "sweep-scheduledtask"),
                           ("Get-ScheduledTask", "get-scheduledtask"))
    assert scheduled_heal.pending(host) == [timer_name("sync-7")]
    assert scheduled_heal.sweep(host) == 1
    assert "Get-ScheduledTask -TaskPath '\\splitbrain\\'" in replay.scripts[1]


def test_services_are_matched_exactly_and_report_their_state():
    host, replay = windows(("Stop-Service", "stop-service"), ("Start-Service", "start-service"))
    assert host.stop_service("StarWindService").status == "Stopped"
    assert host.start_service("StarWindService").status == "Running"
    assert "Where-Object { $_.Name -eq 'StarWindService' }" in replay.scripts[0]
    assert "$s | Stop-Service -Force" in replay.scripts[0]
    assert all("Get-Service -Name" not in script for script in replay.scripts)  # no wildcards


def test_stop_computer_treats_the_dropped_connection_as_done():
    host = WindowsHost(SshTarget(name="SWS-Store2", address="192.0.2.12"))
    sent: list[str] = []

    def dropped(command: str, **_: object) -> CommandResult:
        sent.append(ps.decode_command_line(command))
        raise HostUnreachable("lost the ssh connection to SWS-Store2")

    host.execute = dropped  # type: ignore[method-assign]
    host.stop_computer()
    assert "Stop-Computer -Force" in sent[0]


# -- facts, errors, run_argv -------------------------------------------------------------

def test_facts():
    host, replay = windows(("Win32_OperatingSystem", "facts"))
    facts = host.facts()
    assert facts.caption == "Microsoft Windows Server 2022 Datacenter"
    assert (facts.build_number, facts.hostname) == ("20348", "SWS-STORE1")
    assert facts.features == {"Failover-Clustering": "Installed", "Hyper-V": "Available",
                              "Multipath-IO": "Installed"}
    assert "@('Failover-Clustering', 'Multipath-IO', 'Hyper-V')" in replay.scripts[0]


def test_clixml_errors_outside_the_envelope_are_readable():
    host, _ = windows(("Get-ClusterNode", "clixml-error"))
    with pytest.raises(PowerShellError) as err:
        host.cluster_nodes()
    assert "The term 'Get-ClusterNode' is not recognized as the name of a cmdlet" in str(err.value)
    assert "_x000D_" not in str(err.value) and "\n" not in str(err.value)


def test_text_instead_of_json_is_an_output_format_error():
    with pytest.raises(OutputFormatError, match="did not print JSON"):
        ps.parse_output("Windows PowerShell\r\nCopyright (C) Microsoft", operation="x", host="h")


def test_missing_property_is_an_output_format_error():
    host, _ = windows(("Get-ClusterNode", "get-netadapter"))
    with pytest.raises(OutputFormatError, match="no 'State'"):
        host.cluster_nodes()


def test_run_argv_passes_each_argument_as_a_literal():
    host, replay = windows(("mpclaim", "run-argv-mpclaim"))
    result = host.run_argv(["mpclaim", "-s", "-d"])
    assert result.ok and "MPIO Disk0" in result.stdout
    assert "& 'mpclaim' '-s' '-d' 2>&1" in replay.scripts[0]


def test_every_transcript_is_well_formed_and_replayed_by_a_test():
    source = Path(__file__).read_text()
    for path in sorted(TRANSCRIPTS.glob("*.json")):
        doc = json.loads(path.read_text())
        assert {"operation", "host", "exit_status", "stdout", "stderr"} <= set(doc), path.name
        assert f'"{path.stem}"' in source, f"{path.name} is replayed by no test"
        if doc["exit_status"] == 0:
            ps.parse_output(doc["stdout"], operation=doc["operation"], host=doc["host"])
