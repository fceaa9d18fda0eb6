"""Every fault kind, loaded: the registry ``FAULT_KINDS`` is complete once this is imported.

A fault in a journal is healed by its kind's ``heal_from`` (``harness.faults.fault``
registers each ``Fault`` subclass under its ``kind``). Whoever heals a journal
written by another process (``guard.heal_journal``, ``splitbrain heal``) needs
every kind registered, so a new fault kind is added here and nowhere else.
"""

from __future__ import annotations

from harness.faults.client import ClientCrash
from harness.faults.disk import DiskFault
from harness.faults.fault import FAULT_KINDS, CompositeFault
from harness.faults.link import LinkFault
from harness.faults.netns_link import NetnsLinkFault
from harness.faults.node import NodeCrash
from harness.faults.process import ProcessFault
from harness.faults.remote_faults import RemoteBlackHole

KINDS = (ClientCrash, CompositeFault, DiskFault, LinkFault, NetnsLinkFault, NodeCrash,
         ProcessFault, RemoteBlackHole)
"""The fault kinds, each registered in ``FAULT_KINDS`` under its ``kind``."""

__all__ = ["FAULT_KINDS", "KINDS"]
