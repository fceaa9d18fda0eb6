"""Link faults in the netns lab: kernel state inside a host's namespace, tagged and verified.

- ``blackhole``: nftables rules in the host namespace's ``table inet splitbrain``
  dropping every packet in and out of the host's interface on that network, each
  rule commented ``splitbrain:<fault id>``. Heal deletes exactly the rules with
  that tag (never anything else) and reads the table back to verify.
- ``down``: the host's interface on that network set down (``ip link``), as a
  pulled cable on that host's side. Heal sets it up and verifies it is up.

A namespace that no longer exists (the lab was taken down) has nothing to heal.
"""

from __future__ import annotations

from typing import Any

from harness.faults.fault import Fault, FaultError, HealError
from harness.faults.journal import FaultJournal
from harness.lab import netns
from harness.remote.nftables import check_tag

ACTIONS = ("blackhole", "down")


def _tag(fault_id: str) -> str:
    return check_tag(fault_id)


class NetnsLinkFault(Fault):
    """Break a host's interfaces (one per selected link) inside the netns lab."""

    kind = "netns-link"

    def __init__(
        self,
        targets: list[tuple[str, str]],
        action: str,
        *,
        label: str,
        journal: FaultJournal | None = None,
    ) -> None:
        """``targets``: (namespace, interface) pairs."""
        if action not in ACTIONS:
            raise FaultError(
                f"netns links support {', '.join(ACTIONS)}, not {action!r}; "
                "delay, throttle, cut and flap need the loopback lab's proxy"
            )
        if not targets:
            raise FaultError(f"netns link fault {label} selects no interface")
        super().__init__(
            label,
            {"action": action, "interfaces": [f"{n}:{i}" for n, i in targets]},
            journal=journal,
        )
        self.targets, self.action = targets, action

    def apply(self) -> None:
        for namespace, ifname in self.targets:
            ns = netns.Namespace(namespace)
            if not ns.exists():
                raise FaultError(f"namespace {namespace} does not exist; is the netns lab up?")
            if self.action == "down":
                ns.set_link(ifname, up=False)
            else:
                ns.nft.black_hole(_tag(self.id), interface=ifname)

    def undo_record(self) -> dict[str, Any]:
        return {
            "targets": [list(t) for t in self.targets],
            "action": self.action,
            "tag": _tag(self.id),
        }

    @classmethod
    def heal_from(cls, undo: dict[str, Any]) -> None:
        for namespace, ifname in undo["targets"]:
            ns = netns.Namespace(namespace)
            if not ns.exists():
                continue
            if undo["action"] == "down":
                ns.set_link(ifname, up=True)
                if not ns.link_is_up(ifname):
                    raise HealError(f"{namespace}:{ifname} is still down after heal")
            else:
                ns.nft.remove(undo["tag"])  # verifies that no rule with the tag is left
