"""One HA device on two real reference-target node processes, partnered through a proxy.

Node ``store1`` (priority 1) serves HA1 and listens for its partner's sync and
heartbeat links; node ``store2`` (priority 2) serves HA1Partner and dials them
through the lab's fault proxy (a daemon thread, ``running_proxy``), so a test
can cut, black-hole or delay either link. Both present the LU identity of one
``HaLun``. Used by tests/integration/ha (``test_nodes.HaNodes``) and by the
multipath tests' ``ha_lab``; the in-process pair is ``tests.support.ha_pair``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from harness.lab.proxy import LinkSpec, ProxyControl
from harness.lab.proxy_daemon import running_proxy
from harness.peers.reference_target import NodeSpec, ReferenceTarget, ReferenceTargetFactory
from tests.support.ha_pair import free_port

IQN = "iqn.2026-11.lab.splitbrain:{node}.{target}"


@dataclass(frozen=True)
class HaLun:
    """The device both nodes serve (LUN 0 of their target) and its failure timers."""

    serial: str
    naa: str
    sync_timeout: float
    heartbeat_timeout: float
    size: int = 16 * 1024 * 1024


def node_spec(name: str, target: str, addresses: tuple[str, ...], lun: HaLun,
              ha: dict[str, Any]) -> NodeSpec:
    """A node serving ``lun`` as HA1 on target ``target``; ``ha``: its partner settings."""
    iqn = IQN.format(node=name, target=target.lower())
    return NodeSpec(name=name, addresses=addresses, targets=({
        "iqn": iqn, "alias": target,
        "lun": [{"lun": 0, "image": "ha1.img", "size": lun.size, "serial": lun.serial,
                 "naa": lun.naa}],
    },), ha_devices=({"alias": "HA1", "target": iqn, "lun": 0,
                      "sync_timeout": lun.sync_timeout,
                      "heartbeat_timeout": lun.heartbeat_timeout, **ha},))


@contextlib.contextmanager
def running_ha_nodes(factory: ReferenceTargetFactory, lun: HaLun
                     ) -> Iterator[tuple[ReferenceTarget, ReferenceTarget, ProxyControl]]:
    """store1 (portals 127.0.0.1 and .2) and store2 (.3 and .4) started, and the control
    of the proxy their partner links pass through; the proxy stops after the block (the
    factory stops the nodes)."""
    sync_port, hb_port = free_port(), free_port()
    links = [LinkSpec("sync", "127.0.0.1", 0, "127.0.0.1", sync_port),
             LinkSpec("heartbeat", "127.0.0.1", 0, "127.0.0.1", hb_port)]
    with running_proxy(links) as proxy:
        via = {name: f"127.0.0.1:{link.port}" for name, link in proxy.links.items()}
        store1 = factory.start(node_spec(
            "store1", "HA1", ("127.0.0.1", "127.0.0.2"), lun,
            {"priority": 1, "partner": "store2", "partner_priority": 2,
             "sync_listen": f"127.0.0.1:{sync_port}",
             "heartbeat_listen": f"127.0.0.1:{hb_port}"}))
        store2 = factory.start(node_spec(
            "store2", "HA1Partner", ("127.0.0.3", "127.0.0.4"), lun,
            {"priority": 2, "partner": "store1", "partner_priority": 1,
             "partner_sync": via["sync"], "partner_heartbeat": via["heartbeat"]}))
        yield store1, store2, ProxyControl.from_endpoint(proxy.endpoint())
