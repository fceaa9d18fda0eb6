"""A lab backend: the ``Lab`` protocol, and what every backend shares.

The model. A *lab* is the site of an inventory run on this machine: one
reference target process per storage host (with its portals, HA devices and
management API), the witness processes of node-majority devices, and the
links between them, whose faults the lab can inject. Two backends build it:

- ``harness.lab.loopback.LoopbackLab``: every host on 127.x addresses of this
  namespace, every link a listener of the fault proxy (no root);
- ``harness.lab.netns_lab.NetnsLab``: every host in its own network namespace,
  every network a bridge, link faults in the kernel (root).

Both implement :class:`Lab`, and everything above the lab (the fixtures, the
faults, the chaos runner, the CLI) talks to that protocol; ``harness.lab.backends``
picks the backend, ``harness.lab.lifecycle`` adopts or starts a lab. What the
two backends share lives here and nowhere else: a storage node's config and
command line, the purpose of a link on a network, the lab's summary of its
inventory, how a failed bring-up is undone, and :class:`LabError`.

This module knows no backend: it imports neither of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.errors import SplitbrainError
from harness.lab.inventory import HaDevice, Host, Inventory, NetworkRole
from harness.lab.node_process import wait_until
from harness.lab.state import LabRecord, LabState


@runtime_checkable
class Lab(Protocol):
    """What a running (or startable) lab offers, whichever backend built it."""

    state: LabState

    def up(self, inventory: Inventory, *, owner_pid: int | None = None) -> LabRecord:
        """Build and start the lab; ``owner_pid``: the lab dies with that process."""
        ...

    def down(self) -> list[str]:
        """Stop everything of the lab, remove its state; return what was stopped."""
        ...

    def record(self) -> LabRecord:
        """The running lab's record (nodes, links, owner); raises if there is none."""
        ...

    def running(self) -> bool:
        """Whether any process of the lab is alive."""
        ...

    def status(self) -> dict[str, Any]:
        """Hosts, links, devices and sessions of the running lab (JSON-ready)."""
        ...

    def ha_states(self) -> dict[str, dict[str, str]]:
        """``{alias: {host: state}}`` of every HA replica on the running nodes."""
        ...

    def wait_synchronized(self, aliases: list[str], deadline_s: float = 60.0) -> None:
        """Wait until every replica of ``aliases`` is Synchronized, or raise ``LabError``."""
        ...


TOKEN_ENV = "SPLITBRAIN_LAB_NODE_TOKEN"


class LabError(SplitbrainError):
    """The lab cannot be brought up, reached or taken down."""


def abandon_bring_up(lab: Any, record: Any, exc: BaseException, what: str) -> SplitbrainError:
    """After ``lab up`` failed half way: save what was started, take it all down, and
    return the error to raise (a user's error as it is, an OS error as ``LabError``)."""
    with contextlib.suppress(SplitbrainError, OSError):
        lab.state.save(record)
        lab.down()
    if isinstance(exc, SplitbrainError):
        return exc
    return LabError(f"cannot bring {what} up: {exc}")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def replica_alias(device: HaDevice, host: str) -> str:
    """``HA1`` on the primary replica, ``HA1Partner`` on the others (the wizard's names)."""
    return device.alias if device.primary.host == host else f"{device.alias}Partner"


def device_identity(inventory: Inventory, device: HaDevice) -> tuple[str, str]:
    """(serial, NAA) shared by every replica of a device: one disk on every path."""
    from harness.target.config import default_naa

    serial = f"{inventory.site.name}-{device.alias}"[:64]
    return serial, default_naa(f"iqn.2026-11.org.splitbrain:{serial.lower()}", device.lun)


def node_config(
    inventory: Inventory,
    host: Host,
    data_dir: Path,
    ports: dict[str, int] | None = None,
    management: str = "127.0.0.1:0",
    extra: list[str] | None = None,
) -> str:
    """The reference target node TOML for one storage host of the lab.

    ``ports`` pins each portal address to a port (0 or absent: any free port), so a
    node restarted by a fault listens where it listened before, as a real server does.
    """
    ports = ports or {}
    lines = ["[node]", f"name = {_toml(host.name)}", f"data_dir = {_toml(str(data_dir))}",
             "volatile_writes = true", ""]  # the power-loss fault (harness.faults.node)
    for net in sorted(host.addresses):
        if inventory.network(net).has_role(NetworkRole.ISCSI):
            address = str(host.addresses[net])
            lines += [
                "[[portal]]",
                f"address = {_toml(address)}",
                f"port = {int(ports.get(address, 0))}",
                "",
            ]
    lines += [
        "[management]",
        f"listen = {_toml(management)}",
        f"token_env = {_toml(TOKEN_ENV)}",
        "",
    ]
    for device in inventory.devices.values():
        replica = next((r for r in device.replicas if r.host == host.name), None)
        if replica is None:
            continue
        alias = replica_alias(device, host.name)
        serial, naa = device_identity(inventory, device)
        lines += [
            "[[target]]",
            f"iqn = {_toml(replica.target)}",
            f"alias = {_toml(alias)}",
            "",
            "[[target.lun]]",
            f"lun = {device.lun}",
            f"image = {_toml(alias + '.img')}",
            f"size = {device.size}",
            f"serial = {_toml(serial)}",
            f"naa = {_toml(naa)}",
            "",
        ]
    return "\n".join(lines + (extra or []))


def inventory_summary(inventory: Inventory) -> dict[str, Any]:
    """Hosts, networks and devices of an inventory, JSON-ready (for ``lab status``)."""
    return {
        "hosts": {
            h.name: {
                "roles": sorted(r.value for r in h.roles),
                "addresses": {n: str(a) for n, a in h.addresses.items()},
            }
            for h in inventory.hosts.values()
        },
        "networks": {
            n.name: {"roles": sorted(r.value for r in n.roles), "cidr": str(n.cidr)}
            for n in inventory.networks.values()
        },
        "devices": {
            d.alias: {
                "purpose": d.purpose.value,
                "size": d.size,
                "lun": d.lun,
                "strategy": d.strategy.value,
                "replicas": [
                    {"host": r.host, "target": r.target, "priority": r.priority} for r in d.replicas
                ],
            }
            for d in inventory.devices.values()
        },
    }


def link_purpose(roles: frozenset[NetworkRole]) -> str | None:
    for role, purpose in (
        (NetworkRole.ISCSI, "portal"),
        (NetworkRole.SYNC, "sync"),
        (NetworkRole.HEARTBEAT, "heartbeat"),
    ):
        if role in roles:
            return purpose
    return None  # public only: nothing listens there


NodeCommand = Callable[[Path, Path], tuple[str, ...]]


def reference_target_command(config: Path, ready_file: Path) -> tuple[str, ...]:
    """How a storage node starts: the bundled reference target, as its own process."""
    return (
        sys.executable,
        "-m",
        "harness.target",
        "serve",
        "--config",
        str(config),
        "--ready-file",
        str(ready_file),
    )


class NodeLab:
    """What both backends do the same way: their settings, the running lab's record,
    and waiting for the HA replicas; each backend adds ``up``, ``down``, ``status``
    and ``ha_states``.

    ``node_command`` builds a storage node's command line from its config and ready
    file (default: the reference target; tests of the lab's own mechanics may pass a
    smaller node that speaks the same contract). ``ha``: wire HA devices into the
    nodes (None: if the nodes can read the tables). ``wait_sync``: ``up()`` returns
    only once every HA replica is Synchronized.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        node_command: NodeCommand | None = None,
        ha: bool | None = None,
        wait_sync: bool = True,
    ) -> None:
        self.state = LabState(state_dir)
        self.node_command = node_command or reference_target_command
        self.ha = ha
        self.wait_sync = wait_sync

    def record(self) -> LabRecord:
        return self.state.load()

    def running(self) -> bool:
        """Whether any process recorded in the state (node, witness, proxy) is alive."""
        try:
            record = self.state.load()
        except SplitbrainError:
            return False
        return any(n.alive for n in record.nodes.values()) or bool(
            record.proxy and record.proxy.alive
        )

    def leftover_record(self) -> LabRecord | None:
        """What ``down`` must stop: the record, or None when it is gone or unreadable."""
        try:
            return self.state.load() if self.state.root.exists() else None
        except SplitbrainError:
            return None

    def ha_states(self) -> dict[str, dict[str, str]]:
        raise NotImplementedError

    def wait_synchronized(self, aliases: list[str], deadline_s: float = 60.0) -> None:
        """Wait until both replicas of every device in ``aliases`` are Synchronized, or
        raise ``LabError``."""

        def synchronized() -> bool:
            states = self.ha_states()
            return all(len(states.get(a, {})) == 2 and set(states[a].values()) == {"Synchronized"}
                       for a in aliases)

        if not wait_until(synchronized, deadline_s):
            raise LabError(f"HA devices not Synchronized within {deadline_s:.0f}s: "
                           f"{self.ha_states()}; see the node logs in {self.state.root / 'logs'}")
