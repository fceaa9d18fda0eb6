"""Drivers for real hosts over SSH (fabric): Linux and Windows (PowerShell).

- ``ssh``: ``SshTarget`` (where and how to log in), ``RetryPolicy``, ``RemoteHost``
  (connect with bounded retries, run one command line -> ``CommandResult``);
- ``linux``: ``LinuxHost`` (facts, packages, nft black holes, ``ip link``, systemctl,
  signals), commands built from argument vectors with ``shlex``, run through
  ``shell`` (shells kept open on the connection: no SSH session per command) or,
  for long output read as it comes, in a channel of their own (``stream``);
- ``kept``: one connection per (inventory, host) for the life of the process;
- ``agent``, ``node_agent``, ``windows_agent``: the workload agent on a cluster node;
- ``replicas``: replica-state readers per storage kind;
- ``windows``: ``WindowsHost`` (adapters, firewall, services, power, cluster, iSCSI,
  MPIO, facts) through ``powershell`` (quoting, encoded scripts, JSON answers);
- ``nftables``: the tagged ``table inet splitbrain``, shared with the netns lab;
- ``result`` and ``errors``: the types every driver returns and raises.

``open_host(inventory_host)`` gives the right driver for a host of an inventory
(``harness.lab.inventory``), by its ``access.os``. This package's ``__init__``
imports nothing heavy, so ``harness.lab.netns`` can use ``nftables`` without
loading fabric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.remote.ssh import RemoteHost, RetryPolicy, SocketFactory


def open_host(host: Any, *, retry: RetryPolicy | None = None,
              sock_factory: SocketFactory | None = None, **target: Any) -> RemoteHost:
    """A ``LinuxHost`` or ``WindowsHost`` for inventory host ``host`` (not yet connected).

    ``target`` overrides ``SshTarget`` fields the inventory does not carry
    (``connect_timeout``, ``known_hosts``, ``sudo``).
    """
    from harness.remote.linux import LinuxHost
    from harness.remote.ssh import SshTarget
    from harness.remote.windows import WindowsHost

    ssh = SshTarget.from_inventory(host, **target)
    driver = WindowsHost if getattr(host.access, "os", "linux") == "windows" else LinuxHost
    return driver(ssh, retry=retry, sock_factory=sock_factory)
