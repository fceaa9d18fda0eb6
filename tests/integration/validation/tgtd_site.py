"""An inventory that points at Debian's tgtd as a single-node site (no lab, no HA).

``tgtd_inventory(target, ...)`` writes the site: one storage host (tgtd on
127.0.0.1 at its port), two cluster nodes on the same loopback network (their
initiators are the harness's own, with the nodes' IQNs), one device on tgtd's
first data LUN marked ``test = true`` so that the checks that write and reserve
may use it. Extra devices (a target no portal offers) and hosts (one with ssh
access to a closed port) are how the bad-input tests ask for trouble.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEMPLATE = """
[site]
name = "tgtd"
description = "Debian tgtd as a single-node site"
iscsi_port = {port}

[networks.san]
roles = ["iscsi", "public"]
cidr = "127.0.0.0/24"

[hosts.tgtd]
roles = ["storage"]
addresses = {{ san = "127.0.0.1" }}

[hosts.Demo1]
roles = ["cluster-node"]
addresses = {{ san = "127.0.0.21" }}

[hosts.Demo2]
roles = ["cluster-node"]
addresses = {{ san = "127.0.0.22" }}
{extra_hosts}
[devices.LUN1]
purpose = "vm-storage"
size = "{size}"
lun = {lun}
test = true

[[devices.LUN1.replicas]]
host = "tgtd"
target = "{iqn}"
{extra_devices}
[budgets.default]
disk_latency_s = 0.1
"""


def tgtd_inventory(path: Path, target: Any, *, extra_devices: str = "",
                   extra_hosts: str = "") -> Path:
    path.write_text(TEMPLATE.format(port=target.port, iqn=target.iqn, lun=target.lun,
                                    size=target.lun_size, extra_devices=extra_devices,
                                    extra_hosts=extra_hosts))
    return path


GHOST_DEVICE = """
[devices.GHOST]
purpose = "quorum"
size = "1GiB"
lun = 1

[[devices.GHOST.replicas]]
host = "tgtd"
target = "iqn.2026-11.test.splitbrain.tgtd:no-such-target"
"""


def silent_host(port: int) -> str:
    """A cluster-node-less host whose ssh port answers nothing (a closed port)."""
    return f"""
[hosts.Gone]
roles = ["domain-controller"]
addresses = {{ san = "127.0.0.30" }}
access = {{ user = "root", host = "127.0.0.1", port = {port}, key = "/nonexistent" }}
"""
