"""Replica state readers: StarWind, DRBD, LIO and the bundled target, on transcripts.

The StarWind, DRBD and LIO transcripts are reconstructed, not captured (see
tests/data/transcripts/README.md).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from harness.lab.inventory import loads
from harness.remote import powershell as ps
from harness.remote.errors import OutputFormatError, PowerShellError
from harness.remote.replicas import (
    DOWN,
    NOT_SYNCHRONIZED,
    SYNCHRONIZED,
    SYNCHRONIZING,
    NotSynchronized,
    ReplicaStatus,
    require_synchronized,
    wait_synchronized,
)
from harness.remote.replicas.bundled import BundledReplicaStates, LabReplicaStates
from harness.remote.replicas.drbd import DrbdReplicaStates, parse_status
from harness.remote.replicas.lio import LioReplicaStates, parse_alua
from harness.remote.replicas.readers import for_inventory
from harness.remote.replicas.starwind import StarWindReplicaStates
from harness.remote.result import CommandResult
from harness.remote.ssh import SshTarget
from harness.remote.windows import WindowsHost
from tests.unit.lab.test_inventory import BASE

TRANSCRIPTS = Path(__file__).parents[2] / "data" / "transcripts"


def transcript(kind: str, name: str) -> dict:
    return json.loads((TRANSCRIPTS / kind / f"{name}.json").read_text())


def site(kind: str, extra: str = "") -> object:
    storage = f'[storage]\nkind = "{kind}"\n'
    if kind == "starwind":
        storage += 'user = "${SW_USER}"\npassword = "${SW_PASSWORD}"\n'
    text = BASE.replace('[devices.HA1]\npurpose = "quorum"',
                        '[devices.HA1]\npurpose = "quorum"\nstorage_name = "' +
                        {"starwind": "HAImage1", "drbd": "r0", "lio": "ha1",
                         "bundled": "HA1"}[kind] + '"')
    return loads(text + storage + extra)


class Answers:
    """A driver that answers each host's command from a transcript and records it."""

    def __init__(self, kind: str, files: dict[str, str]) -> None:
        self.kind, self.files, self.sent = kind, files, []

    def opener(self, inventory, host):
        doc = transcript(self.kind, self.files[host]) if host in self.files else None
        answers = self

        class Driver:
            def run_argv(self, argv, *, check=True, timeout=None):
                answers.sent.append((host, list(argv)))
                if doc is None:
                    from harness.remote.errors import HostUnreachable
                    raise HostUnreachable(f"cannot reach {host} over ssh")
                return CommandResult(host, " ".join(argv), doc["exit_status"], doc["stdout"],
                                     doc["stderr"], 1).check()

        return contextlib.nullcontext(Driver())


def test_starwind_reads_every_replica_with_credentials_only_on_stdin(monkeypatch):
    monkeypatch.setenv("SW_USER", "swadmin")
    monkeypatch.setenv("SW_PASSWORD", "pa'ss$(x)")
    inv = site("starwind")
    sent: list[tuple[str, str, str | None]] = []
    files = {"Store1": "starwindx-devices-store1", "Store2": "starwindx-devices-store2-sync-cut"}

    def opener(inventory, host):
        windows = WindowsHost(SshTarget(name=host, address="192.0.2.1"))

        def execute(command, *, check=True, timeout=None, stdin=None):
            sent.append((host, command, stdin))
            doc = transcript("starwind", files[host])
            return CommandResult(host, command, doc["exit_status"], doc["stdout"],
                                 doc["stderr"], 1)

        windows.execute = execute  # type: ignore[method-assign]
        return contextlib.nullcontext(windows)

    states = {s.host: s for s in StarWindReplicaStates(inv, opener=opener).states(["HA1"])}
    assert states["Store1"].state == SYNCHRONIZED and states["Store1"].percent == 100
    assert states["Store1"].partner_connected is True
    assert states["Store2"].state == NOT_SYNCHRONIZED
    assert states["Store2"].partner_connected is False
    for _host, command, stdin in sent:
        assert stdin == "swadmin\npa'ss$(x)\n"
        script = ps.decode_command_line(command)
        assert "swadmin" not in command + script and "pa'ss" not in script
        assert "Import-Module StarWindX" in script and "-port 3261" in script
        assert "GetPropertyValue('ha_synch_status')" in script
    with pytest.raises(NotSynchronized, match=r"HA1@Store2: Not synchronized"):
        require_synchronized(StarWindReplicaStates(inv, opener=opener), inv, ["HA1"])


def test_starwind_synchronizing_with_percent_and_ps51_single_partner(monkeypatch):
    from harness.remote.replicas.starwind import parse_devices

    rows = json.loads(transcript("starwind", "starwindx-devices-store1")["stdout"])
    found = parse_devices(rows, "Store1")
    assert found["HAImage2"].state == SYNCHRONIZING and found["HAImage2"].percent == 37
    assert found["HAImage2"].partner_connected is True
    assert found["iqn.2008-08.com.starwindsoftware:sws-store1-ha2"] == found["HAImage2"]
    rows[0]["SyncStatus"] = "9"
    with pytest.raises(OutputFormatError, match="ha_synch_status '9'"):
        parse_devices(rows, "Store1")


def test_starwind_missing_module_is_one_line_with_a_hint(monkeypatch):
    monkeypatch.setenv("SW_USER", "u")
    monkeypatch.setenv("SW_PASSWORD", "p")
    doc = transcript("starwind", "starwindx-module-missing")
    windows = WindowsHost(SshTarget(name="Store1", address="192.0.2.11"))
    windows.execute = lambda command, **kw: CommandResult(  # type: ignore[method-assign]
        "Store1", command, doc["exit_status"], doc["stdout"], doc["stderr"], 1)
    reader = StarWindReplicaStates(site("starwind"), opener=lambda i, h: contextlib.nullcontext(
        windows))
    with pytest.raises(PowerShellError, match="StarWindX"):
        reader.read_host(windows, "Store1", ["HA1"])
    # through states(): the host's replicas are down, with the reason
    statuses = reader.states(["HA1"])
    assert {s.state for s in statuses} == {DOWN} and "StarWindX" in statuses[0].detail


def test_starwind_refuses_unset_credentials(monkeypatch):
    monkeypatch.delenv("SW_USER", raising=False)
    from harness.lab.inventory import InventoryError

    with pytest.raises(InventoryError, match="SW_USER"):
        StarWindReplicaStates(site("starwind")).credentials("Store1")


def test_drbd_states_and_progress():
    answers = Answers("drbd", {"Store1": "drbdsetup-status-store1",
                               "Store2": "drbdsetup-status-store2-cut"})
    states = {s.host: s for s in DrbdReplicaStates(site("drbd"), opener=answers.opener)
              .states(["HA1"])}
    assert states["Store1"].state == SYNCHRONIZED and states["Store1"].partner_connected
    assert states["Store2"].state == NOT_SYNCHRONIZED
    assert states["Store2"].partner_connected is False
    assert "Outdated" in states["Store2"].detail and "Connecting" in states["Store2"].detail
    assert answers.sent[0][1] == ["drbdsetup", "status", "--json"]
    r1 = parse_status(transcript("drbd", "drbdsetup-status-store1")["stdout"], "h")["r1"]
    assert r1.state == SYNCHRONIZING and r1.percent == 62.5
    with pytest.raises(OutputFormatError):
        parse_status("drbdsetup: command not found", "h")


def test_lio_alua_states():
    found = parse_alua(transcript("lio", "configfs-alua-store1")["stdout"], "Store1")
    assert found["ha1"].state == SYNCHRONIZED
    assert found["ha2"].state == SYNCHRONIZING
    assert found["ha3"].state == NOT_SYNCHRONIZED and "Unavailable" in found["ha3"].detail
    answers = Answers("lio", {"Store1": "configfs-alua-store1"})
    states = {s.host: s for s in LioReplicaStates(site("lio"), opener=answers.opener)
              .states(["HA1"])}
    assert states["Store1"].state == SYNCHRONIZED
    assert states["Store2"].state == DOWN and "cannot reach Store2" in states["Store2"].detail


def test_bundled_over_ssh_reads_the_api_with_a_stdlib_snippet():
    inv = site("bundled", 'ready_file = "/var/lib/sb/node.json"\ntoken_file = "/etc/sb/token"\n')
    rows = [{"alias": "HA1", "state": "Synchronizing", "partner_state": "Synchronized",
             "sync_link": True, "generation": 3, "resync": {"percent": 40.0}}]

    class Driver:
        def run_argv(self, argv, *, check=True, timeout=None):
            assert argv[0] == "python3" and argv[3:] == ["/var/lib/sb/node.json",
                                                         "/etc/sb/token"]
            assert "import harness" not in argv[2]  # the host needs only python3
            return CommandResult("h", "x", 0, json.dumps(rows), "", 1)

    reader = BundledReplicaStates(inv, opener=lambda i, h: contextlib.nullcontext(Driver()))
    statuses = reader.states(["HA1"])
    assert [(s.host, s.state, s.percent) for s in statuses] == [
        ("Store1", SYNCHRONIZING, 40.0), ("Store2", SYNCHRONIZING, 40.0)]


def test_factory_and_waiting():
    inv = site("drbd")
    assert isinstance(for_inventory(inv), DrbdReplicaStates)
    assert isinstance(for_inventory(site("starwind")), StarWindReplicaStates)
    assert isinstance(for_inventory(site("lio")), LioReplicaStates)

    class Lab:
        calls = 0

        def ha_states(self):
            Lab.calls += 1
            state = "Synchronized" if Lab.calls >= 3 else "Synchronizing"
            return {"HA1": {"Store1": "Synchronized", "Store2": state}}

    reader = for_inventory(inv, lab=Lab())
    assert isinstance(reader, LabReplicaStates)
    seen = wait_synchronized(reader, inv, ["HA1"], deadline_s=30, poll_s=0.01)
    assert {s.state for s in seen} == {SYNCHRONIZED} and Lab.calls == 3

    class Stuck:
        def ha_states(self):
            return {"HA1": {"Store1": "Synchronized"}}

    with pytest.raises(NotSynchronized, match="HA1@Store2: down"):
        wait_synchronized(for_inventory(inv, lab=Stuck()), inv, ["HA1"], deadline_s=0.2,
                          poll_s=0.05)


def test_status_refuses_unknown_words():
    with pytest.raises(ValueError):
        ReplicaStatus("HA1", "h", "fine")

