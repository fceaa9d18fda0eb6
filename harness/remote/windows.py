"""``WindowsHost``: a Windows Server node (storage, Hyper-V, cluster) driven over OpenSSH.

What it runs: Windows PowerShell 5.1 (``powershell.exe``) cmdlets, each built by
``harness.remote.powershell`` into one pipeline inside the JSON envelope, sent
with ``-EncodedCommand`` and answered as JSON, which is parsed here into typed
records. Enum values are cast to their names (``[string]$_.State``) inside the
pipeline, so the records carry ``Up``/``Online``/``Inbound``, not numbers.

Needs on the host: the OpenSSH server (Windows capability ``OpenSSH.Server``),
an administrator login, and the modules of the cmdlets used: NetAdapter and
NetSecurity (network faults), FailoverClusters (cluster), MPIO, iSCSI, and
ServerManager (``Get-WindowsFeature``). Cluster cmdlets need a logon with
network credentials: log in with a password (``${ENV}``) on cluster nodes, since
key-based logons behave like a second hop.

Faults are marked as ours: firewall rules carry the group ``splitbrain`` and the
name ``splitbrain-<tag>-<direction>-<end>``, so ``heal(tag)`` removes exactly the
rules of one fault and ``sweep_firewall()`` all of ours, never anyone else's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.remote import powershell as ps
from harness.remote import scheduled_heal
from harness.remote.errors import HostUnreachable, OutputFormatError, UnsafeArgument
from harness.remote.nftables import check_tag, parse_address
from harness.remote.result import CommandResult
from harness.remote.ssh import RemoteHost

FIREWALL_GROUP = "splitbrain"
MIGRATION_TYPES = ("Live", "Quick", "Shutdown", "ShutdownForce", "TurnOff")
DEFAULT_FEATURES = ("Failover-Clustering", "Multipath-IO", "Hyper-V")


@dataclass(frozen=True)
class ClusterNode:
    name: str
    id: str
    state: str  # Up, Down, Paused, Joining, Unknown
    status_information: str
    node_weight: int | None
    dynamic_weight: int | None


@dataclass(frozen=True)
class ClusterGroup:
    name: str
    owner_node: str
    state: str  # Online, Offline, Failed, PartialOnline, Pending, Unknown
    group_type: str  # VirtualMachine, Cluster, AvailableStorage, ...


@dataclass(frozen=True)
class ClusterSharedVolume:
    name: str
    state: str
    owner_node: str
    friendly_volume_name: str
    redirected_access: bool | None
    maintenance_mode: bool | None


@dataclass(frozen=True)
class IscsiSession:
    session_identifier: str
    target_node_address: str
    initiator_node_address: str
    initiator_portal_address: str
    is_connected: bool
    is_persistent: bool
    is_header_digest: bool
    is_data_digest: bool
    number_of_connections: int
    authentication_type: str


@dataclass(frozen=True)
class IscsiConnection:
    connection_identifier: str
    initiator_address: str
    initiator_port: int
    target_address: str
    target_port: int


@dataclass(frozen=True)
class MpioSettings:
    """``Get-MPIOSetting``: the MSDSM timers (seconds) that bound failover on Windows."""

    path_verification_state: str
    path_verification_period: int
    pdo_remove_period: int
    retry_count: int
    retry_interval: int
    use_custom_path_recovery_time: str
    custom_path_recovery_time: int
    disk_timeout_value: int


@dataclass(frozen=True)
class NetAdapter:
    name: str
    interface_description: str
    status: str  # Up, Disconnected, Disabled, Not Present
    mac_address: str
    link_speed: str


@dataclass(frozen=True)
class FirewallRule:
    name: str
    display_name: str
    group: str
    direction: str
    action: str
    enabled: str


@dataclass(frozen=True)
class ServiceState:
    name: str
    status: str  # Running, Stopped, StartPending, StopPending, ...
    start_type: str


@dataclass(frozen=True)
class WindowsFacts:
    caption: str
    version: str
    build_number: str
    architecture: str
    hostname: str
    last_boot_utc: str
    features: dict[str, str]  # feature name -> InstallState (Installed, Available, Removed)


@dataclass(frozen=True)
class ClusterValidation:
    """What ``Test-Cluster`` left: the report file and its warnings (e.g. the verdict)."""

    report: str
    warnings: tuple[str, ...]


def _field(record: Any, key: str, *, operation: str, host: str) -> Any:
    if not isinstance(record, dict) or key not in record:
        raise OutputFormatError(
            f"{operation} on {host} returned no {key!r} (got {str(record)[:80]}): the cmdlet's "
            "output shape differs from what splitbrain expects; report the Windows version"
        )
    return record[key]


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _remote_address(peer: str) -> str:
    """An address (``198.51.100.11``) or subnet (``198.51.100.0/24``) for -RemoteAddress."""
    net = parse_address(peer)
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def parse_mpio_text(text: str) -> dict[str, str]:
    """``Get-MPIOSetting`` as printed (``Name : Value`` lines) -> dict."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            values[key.strip()] = value.strip()
    return values


class WindowsHost(RemoteHost):
    """A Windows host over OpenSSH, driven by PowerShell cmdlets returning JSON."""

    def powershell(self, body: str, *, operation: str, timeout: float | None = None,
                   hint: str = "", depth: int = ps.JSON_DEPTH,
                   stdin: str | None = None) -> list[Any]:
        """Run ``body`` in the envelope and return its objects; raise ``PowerShellError``.

        ``stdin`` feeds the script's ``[Console]::In`` (secrets go there, never into
        the command line)."""
        line = ps.command_line(ps.wrap(body, depth=depth))
        result: CommandResult = self.execute(line, check=False, timeout=timeout, stdin=stdin)
        if result.exit_status != 0:
            ps.raise_for(result.stderr, operation=operation, host=self.name, hint=hint)
        return ps.parse_output(result.stdout, operation=operation, host=self.name)

    def run_argv(self, argv: Sequence[str], *, check: bool = True,
                 timeout: float | None = None) -> CommandResult:
        """Run a program with literal arguments (``& 'prog' 'arg' ...``); stdout as text."""
        call = "& " + " ".join(ps.literal(a) for a in argv)
        # Native stderr under 'Stop' would turn into a terminating error in PowerShell 5.1.
        body = (f"$splitbrainOut = & {{ $ErrorActionPreference = 'Continue'; "
                f"{call} 2>&1 | Out-String }}\n"
                "[pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = $splitbrainOut }")
        line = ps.command_line(ps.wrap(body))
        result = self.execute(line, check=False, timeout=timeout)
        records = ps.parse_output(result.stdout, operation=argv[0], host=self.name) \
            if result.ok else []
        exit_status = int(records[0].get("ExitCode") or 0) if records else result.exit_status
        output = str(records[0].get("Output") or "") if records else ""
        outcome = CommandResult(host=self.name, command=" ".join(argv), exit_status=exit_status,
                                stdout=output, stderr=result.stderr,
                                duration_ns=result.duration_ns)
        return outcome.check() if check else outcome

    # -- network faults ------------------------------------------------------------------

    def net_adapters(self) -> list[NetAdapter]:
        op = "Get-NetAdapter"
        rows = self.powershell(
            "Get-NetAdapter | Select-Object Name, InterfaceDescription, "
            "@{n='Status';e={[string]$_.Status}}, MacAddress, "
            "@{n='LinkSpeed';e={[string]$_.LinkSpeed}}", operation=op)
        return [NetAdapter(name=_field(r, "Name", operation=op, host=self.name),
                           interface_description=r.get("InterfaceDescription") or "",
                           status=r.get("Status") or "", mac_address=r.get("MacAddress") or "",
                           link_speed=r.get("LinkSpeed") or "") for r in rows]

    def _adapter(self, name: str) -> str:
        return ("$a = @(Get-NetAdapter | Where-Object { $_.Name -eq " + ps.literal(name) + " })\n"
                "if ($a.Count -ne 1) { throw ('no network adapter named ' + "
                + ps.literal(name) + ") }")

    def _armed(self, tag: str | None, ttl_s: float | None, heal_body: str) -> None:
        """Arm the node-side heal task before a fault is applied (when a TTL is asked)."""
        if ttl_s is None:
            return
        if tag is None:
            raise UnsafeArgument("a fault with a TTL needs its tag (the fault id) to name the "
                                 "heal task")
        scheduled_heal.arm(self, check_tag(tag), ttl_s, heal_body)

    def _disarmed(self, tag: str | None) -> None:
        if tag is not None:
            scheduled_heal.disarm(self, check_tag(tag))

    def disable_adapter(self, name: str, *, tag: str | None = None,
                        ttl_s: float | None = None) -> None:
        """``Disable-NetAdapter`` on exactly the adapter named ``name`` (no wildcards).

        With ``ttl_s`` (and the fault's ``tag``) the host re-enables it by itself
        after that long, even if the harness is gone.
        """
        self._armed(tag, ttl_s, scheduled_heal.heal_adapter_body(name))
        self.powershell(self._adapter(name) + "\n$a | Disable-NetAdapter -Confirm:$false",
                        operation=f"Disable-NetAdapter {name!r}",
                        hint="check the adapter name with Get-NetAdapter")

    def enable_adapter(self, name: str, *, tag: str | None = None) -> None:
        self.powershell(self._adapter(name) + "\n$a | Enable-NetAdapter -Confirm:$false",
                        operation=f"Enable-NetAdapter {name!r}",
                        hint="check the adapter name with Get-NetAdapter")
        self._disarmed(tag)

    def block(self, tag: str, *, peer: str | None = None, port: int | None = None,
              protocol: str = "TCP", ttl_s: float | None = None) -> list[FirewallRule]:
        """Add blocking firewall rules (group ``splitbrain``) for traffic with ``peer``/``port``.

        Windows Firewall applies rules to new connections; to cut an established
        iSCSI session at once, ``disable_adapter`` is the reliable fault.
        """
        check_tag(tag)
        if peer is None and port is None:
            raise UnsafeArgument("a firewall block needs a peer address, a port or both")
        proto = ps.choice(protocol.upper(), ("TCP", "UDP"))
        self._armed(tag, ttl_s, scheduled_heal.heal_firewall_body(tag))
        lines = []
        for direction in ("Inbound", "Outbound"):
            ends = [("Local", "-LocalPort"), ("Remote", "-RemotePort")] if port else [("Any", "")]
            for end, port_flag in ends:
                way = {"Inbound": "in", "Outbound": "out"}[direction]
                name = f"splitbrain-{tag}-{way}-{end.lower()}"
                args = [f"-Name {ps.literal(name)}",
                        f"-DisplayName {ps.literal(f'splitbrain fault {tag}')}",
                        f"-Group {ps.literal(FIREWALL_GROUP)}", f"-Direction {direction}",
                        "-Action Block", "-Enabled True"]
                if peer is not None:
                    args.append(f"-RemoteAddress {ps.literal(_remote_address(peer))}")
                if port:
                    number = ps.integer(port, low=1, high=65535)
                    args += [f"-Protocol {proto}", f"{port_flag} {number}"]
                lines.append("New-NetFirewallRule " + " ".join(args) + " | Out-Null")
        self.powershell("\n".join(lines), operation=f"New-NetFirewallRule (fault {tag})",
                        hint="the NetSecurity module and an elevated login are needed")
        return self.firewall_rules(tag)

    def firewall_rules(self, tag: str | None = None) -> list[FirewallRule]:
        """Our rules (group ``splitbrain``), or only those of fault ``tag``."""
        where = ""
        if tag is not None:
            prefix = ps.literal(f"splitbrain-{check_tag(tag)}-")
            where = f" | Where-Object {{ $_.Name.StartsWith({prefix}) }}"
        op = "Get-NetFirewallRule"
        rows = self.powershell(
            f"Get-NetFirewallRule -Group {ps.literal(FIREWALL_GROUP)} -ErrorAction "
            f"SilentlyContinue{where} | Select-Object Name, DisplayName, Group, "
            "@{n='Direction';e={[string]$_.Direction}}, @{n='Action';e={[string]$_.Action}}, "
            "@{n='Enabled';e={[string]$_.Enabled}}", operation=op)
        return [FirewallRule(name=_field(r, "Name", operation=op, host=self.name),
                             display_name=r.get("DisplayName") or "", group=r.get("Group") or "",
                             direction=r.get("Direction") or "", action=r.get("Action") or "",
                             enabled=r.get("Enabled") or "") for r in rows]

    def heal(self, tag: str) -> int:
        """Remove the firewall rules of fault ``tag``; returns how many."""
        prefix = ps.literal(f"splitbrain-{check_tag(tag)}-")
        rows = self.powershell(
            f"$r = @(Get-NetFirewallRule -Group {ps.literal(FIREWALL_GROUP)} -ErrorAction "
            f"SilentlyContinue | Where-Object {{ $_.Name.StartsWith({prefix}) }})\n"
            "$r | Remove-NetFirewallRule\n[pscustomobject]@{ Removed = $r.Count }",
            operation=f"Remove-NetFirewallRule (fault {tag})")
        self._disarmed(tag)
        return int(rows[0]["Removed"]) if rows else 0

    def sweep_firewall(self) -> int:
        """Remove every rule of group ``splitbrain`` (after a crash); returns how many."""
        rows = self.powershell(
            f"$r = @(Get-NetFirewallRule -Group {ps.literal(FIREWALL_GROUP)} -ErrorAction "
            "SilentlyContinue)\nif ($r.Count) { Remove-NetFirewallRule -Group "
            f"{ps.literal(FIREWALL_GROUP)} }}\n[pscustomobject]@{{ Removed = $r.Count }}",
            operation="Remove-NetFirewallRule -Group splitbrain")
        return int(rows[0]["Removed"]) if rows else 0

    # -- services and power --------------------------------------------------------------

    def _service(self, name: str) -> str:
        return ("$s = @(Get-Service | Where-Object { $_.Name -eq " + ps.literal(name) + " })\n"
                "if ($s.Count -ne 1) { throw ('no service named ' + " + ps.literal(name) + ") }")

    def _service_state(self, verb: str, name: str, tail: str) -> ServiceState:
        op = f"{verb} {name!r}"
        rows = self.powershell(
            self._service(name) + tail + "\n$s[0].Refresh()\n"
            "$s[0] | Select-Object Name, @{n='Status';e={[string]$_.Status}}, "
            "@{n='StartType';e={[string]$_.StartType}}", operation=op,
            hint="check the service name with Get-Service")
        if not rows:
            raise OutputFormatError(f"{op} on {self.name} returned no service state")
        r = rows[0]
        return ServiceState(name=_field(r, "Name", operation=op, host=self.name),
                            status=r.get("Status") or "", start_type=r.get("StartType") or "")

    def service(self, name: str) -> ServiceState:
        return self._service_state("Get-Service", name, "")

    def stop_service(self, name: str, *, tag: str | None = None,
                     ttl_s: float | None = None) -> ServiceState:
        """``Stop-Service -Force``; with ``ttl_s`` the host restarts it by itself later."""
        self._armed(tag, ttl_s, scheduled_heal.heal_service_body(name))
        return self._service_state("Stop-Service", name, "\n$s | Stop-Service -Force")

    def start_service(self, name: str, *, tag: str | None = None) -> ServiceState:
        state = self._service_state("Start-Service", name, "\n$s | Start-Service")
        self._disarmed(tag)
        return state

    def _power(self, cmdlet: str) -> None:
        try:
            self.powershell(f"{cmdlet} -Force", operation=cmdlet, timeout=60)
        except HostUnreachable:
            pass  # the host went down under us: that is what was asked
        finally:
            self.close()

    def stop_computer(self) -> None:
        """``Stop-Computer -Force``: a whole-node crash (the connection drops)."""
        self._power("Stop-Computer")

    def restart_computer(self) -> None:
        self._power("Restart-Computer")

    # -- cluster -------------------------------------------------------------------------

    def cluster_nodes(self) -> list[ClusterNode]:
        op = "Get-ClusterNode"
        rows = self.powershell(
            "Get-ClusterNode | Select-Object Name, @{n='Id';e={[string]$_.Id}}, "
            "@{n='State';e={[string]$_.State}}, "
            "@{n='StatusInformation';e={[string]$_.StatusInformation}}, NodeWeight, DynamicWeight",
            operation=op, hint="the FailoverClusters module and a password logon are needed")
        return [ClusterNode(name=_field(r, "Name", operation=op, host=self.name),
                            id=str(r.get("Id") or ""), state=_field(r, "State", operation=op,
                                                                    host=self.name),
                            status_information=r.get("StatusInformation") or "",
                            node_weight=_int(r.get("NodeWeight")),
                            dynamic_weight=_int(r.get("DynamicWeight"))) for r in rows]

    _GROUP_SELECT = ("Select-Object Name, @{n='OwnerNode';e={[string]$_.OwnerNode.Name}}, "
                     "@{n='State';e={[string]$_.State}}, @{n='GroupType';e={[string]$_.GroupType}}")

    def _groups(self, rows: list[Any], op: str) -> list[ClusterGroup]:
        return [ClusterGroup(name=_field(r, "Name", operation=op, host=self.name),
                             owner_node=r.get("OwnerNode") or "",
                             state=_field(r, "State", operation=op, host=self.name),
                             group_type=r.get("GroupType") or "") for r in rows]

    def cluster_groups(self) -> list[ClusterGroup]:
        op = "Get-ClusterGroup"
        return self._groups(self.powershell(f"Get-ClusterGroup | {self._GROUP_SELECT}",
                                            operation=op), op)

    def move_vm(self, vm: str, node: str, *, migration: str = "Live",
                timeout: float | None = 900) -> ClusterGroup:
        """``Move-ClusterVirtualMachineRole -Name <vm> -Node <node> -MigrationType <type>``."""
        kind = ps.choice(migration, MIGRATION_TYPES)
        op = f"Move-ClusterVirtualMachineRole {vm!r} to {node!r} ({kind})"
        rows = self.powershell(
            f"Move-ClusterVirtualMachineRole -Name {ps.literal(vm)} -Node {ps.literal(node)} "
            f"-MigrationType {kind} | {self._GROUP_SELECT}", operation=op, timeout=timeout,
            hint="run it on a cluster node with a password logon (no second hop)")
        groups = self._groups(rows, op)
        if len(groups) != 1:
            raise OutputFormatError(f"{op} on {self.name} returned {len(groups)} groups, not 1")
        return groups[0]

    def cluster_shared_volumes(self) -> list[ClusterSharedVolume]:
        op = "Get-ClusterSharedVolume"
        rows = self.powershell(
            "Get-ClusterSharedVolume | Select-Object Name, @{n='State';e={[string]$_.State}}, "
            "@{n='OwnerNode';e={[string]$_.OwnerNode.Name}}, "
            "@{n='FriendlyVolumeName';e={[string]$_.SharedVolumeInfo.FriendlyVolumeName}}, "
            "@{n='RedirectedAccess';e={$_.SharedVolumeInfo.RedirectedAccess}}, "
            "@{n='MaintenanceMode';e={$_.SharedVolumeInfo.MaintenanceMode}}", operation=op)
        return [ClusterSharedVolume(name=_field(r, "Name", operation=op, host=self.name),
                                    state=r.get("State") or "", owner_node=r.get("OwnerNode") or "",
                                    friendly_volume_name=r.get("FriendlyVolumeName") or "",
                                    redirected_access=r.get("RedirectedAccess"),
                                    maintenance_mode=r.get("MaintenanceMode")) for r in rows]

    def test_cluster(self, nodes: Sequence[str] = (), include: Sequence[str] = (),
                     timeout: float | None = 3600) -> ClusterValidation:
        """Run ``Test-Cluster`` (optionally on ``nodes``, only the ``include`` categories)."""
        args = ""
        if nodes:
            args += f" -Node {ps.literal_list(nodes)}"
        if include:
            args += f" -Include {ps.literal_list(include)}"
        rows = self.powershell(
            f"$r = Test-Cluster{args} -WarningVariable w -WarningAction SilentlyContinue\n"
            "[pscustomobject]@{ Report = [string]$r.FullName; "
            "Warnings = @($w | ForEach-Object { [string]$_.Message }) }",
            operation="Test-Cluster", timeout=timeout)
        if not rows:
            raise OutputFormatError(f"Test-Cluster on {self.name} returned no report")
        return ClusterValidation(report=rows[0].get("Report") or "",
                                 warnings=tuple(rows[0].get("Warnings") or ()))

    # -- iSCSI and MPIO ------------------------------------------------------------------

    def iscsi_sessions(self) -> list[IscsiSession]:
        op = "Get-IscsiSession"
        rows = self.powershell(
            "Get-IscsiSession | Select-Object SessionIdentifier, TargetNodeAddress, "
            "InitiatorNodeAddress, InitiatorPortalAddress, IsConnected, IsPersistent, "
            "IsHeaderDigest, IsDataDigest, NumberOfConnections, AuthenticationType", operation=op)
        return [IscsiSession(
            session_identifier=_field(r, "SessionIdentifier", operation=op, host=self.name),
            target_node_address=r.get("TargetNodeAddress") or "",
            initiator_node_address=r.get("InitiatorNodeAddress") or "",
            initiator_portal_address=r.get("InitiatorPortalAddress") or "",
            is_connected=bool(r.get("IsConnected")), is_persistent=bool(r.get("IsPersistent")),
            is_header_digest=bool(r.get("IsHeaderDigest")),
            is_data_digest=bool(r.get("IsDataDigest")),
            number_of_connections=int(r.get("NumberOfConnections") or 0),
            authentication_type=r.get("AuthenticationType") or "") for r in rows]

    def iscsi_connections(self) -> list[IscsiConnection]:
        op = "Get-IscsiConnection"
        rows = self.powershell(
            "Get-IscsiConnection | Select-Object ConnectionIdentifier, InitiatorAddress, "
            "InitiatorPortNumber, TargetAddress, TargetPortNumber", operation=op)
        return [IscsiConnection(
            connection_identifier=_field(r, "ConnectionIdentifier", operation=op, host=self.name),
            initiator_address=r.get("InitiatorAddress") or "",
            initiator_port=int(r.get("InitiatorPortNumber") or 0),
            target_address=_field(r, "TargetAddress", operation=op, host=self.name),
            target_port=int(r.get("TargetPortNumber") or 0)) for r in rows]

    def mpio_settings(self) -> MpioSettings:
        op = "Get-MPIOSetting"
        rows = self.powershell(
            "$m = Get-MPIOSetting\n[pscustomobject]@{ Text = ($m | Out-String) }", operation=op,
            hint="install the Multipath-IO feature")
        values = parse_mpio_text(rows[0].get("Text", "") if rows else "")
        try:
            return MpioSettings(
                path_verification_state=values["PathVerificationState"],
                path_verification_period=int(values["PathVerificationPeriod"]),
                pdo_remove_period=int(values["PDORemovePeriod"]),
                retry_count=int(values["RetryCount"]),
                retry_interval=int(values["RetryInterval"]),
                use_custom_path_recovery_time=values["UseCustomPathRecoveryTime"],
                custom_path_recovery_time=int(values["CustomPathRecoveryTime"]),
                disk_timeout_value=int(values["DiskTimeoutValue"]))
        except (KeyError, ValueError) as exc:
            raise OutputFormatError(
                f"Get-MPIOSetting on {self.name} printed no usable {exc}: check that the "
                "Multipath-IO feature is installed"
            ) from None

    def msdsm_default_policy(self) -> str:
        """``Get-MSDSMGlobalDefaultLoadBalancePolicy``: None, FOO, RR, LQD or LB."""
        rows = self.powershell("[string](Get-MSDSMGlobalDefaultLoadBalancePolicy)",
                               operation="Get-MSDSMGlobalDefaultLoadBalancePolicy")
        policy = str(rows[0]).strip() if rows else ""
        if policy not in ("None", "FOO", "RR", "LQD", "LB"):
            raise OutputFormatError(
                f"Get-MSDSMGlobalDefaultLoadBalancePolicy on {self.name} printed {policy!r}, "
                "not one of None, FOO, RR, LQD, LB")
        return policy

    # -- facts ---------------------------------------------------------------------------

    def facts(self, features: Sequence[str] = DEFAULT_FEATURES) -> WindowsFacts:
        op = "Get-CimInstance Win32_OperatingSystem"
        rows = self.powershell(
            "$os = Get-CimInstance -ClassName Win32_OperatingSystem\n"
            f"$names = {ps.literal_list(features)}\n"
            "$f = @(Get-WindowsFeature | Where-Object { $names -contains $_.Name } | "
            "Select-Object Name, @{n='InstallState';e={[string]$_.InstallState}})\n"
            "[pscustomobject]@{ Caption = $os.Caption; Version = $os.Version; "
            "BuildNumber = $os.BuildNumber; OSArchitecture = $os.OSArchitecture; "
            "CSName = $os.CSName; "
            "LastBootUpTime = $os.LastBootUpTime.ToUniversalTime().ToString('o'); "
            "Features = $f }", operation=op)
        if not rows:
            raise OutputFormatError(f"{op} on {self.name} returned nothing")
        r = rows[0]
        feats = r.get("Features") or []
        feats = feats if isinstance(feats, list) else [feats]
        return WindowsFacts(
            caption=_field(r, "Caption", operation=op, host=self.name),
            version=r.get("Version") or "", build_number=str(r.get("BuildNumber") or ""),
            architecture=r.get("OSArchitecture") or "", hostname=r.get("CSName") or "",
            last_boot_utc=r.get("LastBootUpTime") or "",
            features={f["Name"]: f.get("InstallState") or "" for f in feats})
