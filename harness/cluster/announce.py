"""Announcing a moved VM: the gratuitous ARP a hypervisor sends so switches learn its port.

After a live migration the destination host sends an unsolicited ARP reply
for the VM's address from the VM's MAC (reference notes 4.1), so the network
forwards the VM's traffic to its new port. Where the lab has a layer-2 segment
(the netns backend: bridges between namespaces) ``announce_move`` sends a real
one with scapy on the named interface; the loopback backend has no layer 2,
and says so (Not Applicable) instead of pretending.
"""

from __future__ import annotations

import asyncio
from typing import Any

NOT_APPLICABLE = "Not Applicable: the loopback lab has no layer-2 network to announce the move on"


def gratuitous_arp(iface: str, ip: str, mac: str) -> None:
    """Send one gratuitous ARP (an unsolicited reply, op is-at, to broadcast) on ``iface``."""
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import sendp

    frame = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=2, hwsrc=mac, psrc=ip, hwdst="ff:ff:ff:ff:ff:ff", pdst=ip)
    sendp(frame, iface=iface, verbose=False)


async def announce_move(how: dict[str, Any]) -> str:
    """Announce the VM at its new place as ``how`` says; what was done, in one line."""
    if how.get("kind") != "garp":
        return NOT_APPLICABLE
    iface, ip, mac = str(how["iface"]), str(how["ip"]), str(how["mac"])
    await asyncio.to_thread(gratuitous_arp, iface, ip, mac)
    return f"gratuitous ARP sent on {iface}: {ip} is-at {mac}"
