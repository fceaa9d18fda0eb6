"""Link faults: a network link of the lab cut, black-holed, delayed, throttled or flapping.

In the loopback lab every link is a listener of the fault proxy daemon; a
``LinkFault`` sets the state of one or more of them through the proxy's control
endpoint (found in the lab's ``proxy.json``) and heals by setting them back to
``pass``, then reads the states back to verify. Several links change in one
request, so "cut the sync network" breaks both directions at the same instant.
Each fault's state is its own layer on the link (its owner is the fault's id): a
heal clears that layer only, so a link another fault still holds stays faulty (a
node's power loss healing under an asymmetric sync fault leaves the sync link
asymmetric until that fault heals).

If the proxy is gone (the lab was taken down, or its daemon died) there is
nothing left to heal: the links it served no longer exist.

A link slowed rather than broken (``delay``, ``throttle``: a ``SlowLinkFault``)
proves its own effect: the proxy counts what the state it set held back (its
*epoch*, returned by the ``set`` request), and ``effect()`` reads that back, e.g.
"the proxy held 28 chunks (896 bytes) on heartbeat/SWS-Store1/HA2 for 29.3-31.8 ms
(median 30.1 ms)". A
slowed link that carried nothing during the fault held nothing back: no effect.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.faults.fault import Fault, FaultError, HealError
from harness.faults.journal import FaultJournal
from harness.lab.node_process import process_start_ticks
from harness.lab.proxy import PASS, LinkMode, LinkState, ProxyControl, ProxyError


def _control(endpoint_file: str) -> ProxyControl | None:
    """The proxy's control client, or None if that proxy no longer exists."""
    try:
        endpoint = json.loads(Path(endpoint_file).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise HealError(f"proxy endpoint {endpoint_file} is damaged: {exc}") from None
    pid = endpoint.get("pid")
    if pid is not None and process_start_ticks(int(pid)) != endpoint.get(
        "start_ticks", process_start_ticks(int(pid))
    ):
        return None  # that proxy is gone (its pid is free or reused): its links went with it
    if pid is not None and process_start_ticks(int(pid)) is None:
        return None
    return ProxyControl.from_endpoint(endpoint)


class LinkFault(Fault):
    """Set lab links (by proxy link name) to a faulty ``LinkState`` until healed."""

    kind = "link"

    def __init__(
        self,
        links: list[str],
        state: LinkState,
        *,
        endpoint_file: str | Path,
        label: str | None = None,
        journal: FaultJournal | None = None,
    ) -> None:
        if not links:
            raise FaultError(f"link fault {label or state.mode} selects no link")
        if state.mode is LinkMode.PASS:
            raise FaultError("a link fault needs a faulty mode, not pass")
        params: dict[str, Any] = {"action": state.mode.value, "links": list(links)}
        params |= {k: v for k, v in state.to_json().items() if k != "mode" and v}
        super().__init__(label or ",".join(links), params, journal=journal)
        self.links = list(links)
        self.state = state
        self.endpoint_file = str(endpoint_file)
        self.epochs: dict[str, int] = {}  # link -> the epoch this fault's state opened

    def apply(self) -> None:
        control = _control(self.endpoint_file)
        if control is None:
            raise FaultError(
                f"no fault proxy running for {self.endpoint_file}; "
                "is the lab up? see `splitbrain lab status`"
            )
        try:
            self.epochs = control.set_state(self.links, self.state, owner=self.id)
        except ProxyError as exc:
            raise FaultError(str(exc)) from None

    def undo_record(self) -> dict[str, Any]:
        return {"endpoint_file": self.endpoint_file, "links": self.links, "owner": self.id}

    @classmethod
    def heal_from(cls, undo: dict[str, Any]) -> None:
        control = _control(undo["endpoint_file"])
        if control is None:
            return
        links = list(undo["links"])
        owner = undo.get("owner")  # (a journal from before layers: every layer goes)
        try:
            control.set_state(links, PASS, owner=owner)
            status = control.status()
        except ProxyError as exc:
            raise HealError(str(exc)) from None
        if owner is not None:
            still = [n for n in links if any(layer.get("owner") == owner for layer
                                             in status.get(n, {}).get("layers", []))]
            if still:
                raise HealError(f"links {still} still hold fault {owner} after heal")
            return
        still = [n for n in links if status.get(n, {}).get("state", {}).get("mode") != "pass"]
        if still:
            raise HealError(f"links {still} are not passing after heal")


class SlowLinkFault(LinkFault):
    """A link delayed or throttled: its effect is what the proxy held back while it was
    set (``effect()``), which the chaos evidence takes as live proof."""

    def __init__(self, links: list[str], state: LinkState, **kw: Any) -> None:
        if state.mode not in (LinkMode.DELAY, LinkMode.THROTTLE):
            raise FaultError(f"a slow link is delayed or throttled, not {state.mode.value}")
        super().__init__(links, state, **kw)

    def effect(self) -> str | None:
        """What the proxy held back under this fault's state (None: nothing yet)."""
        control = _control(self.endpoint_file)
        if control is None or not self.epochs:
            return None
        return held_back_text(control.status(), self.epochs, self.state.mode, self.target)


def held_back_text(status: dict[str, Any], epochs: dict[str, int], mode: LinkMode,
                   where: str) -> str | None:
    """"the proxy held N chunks (M bytes) on WHERE for A-B ms" from a proxy ``status``: the
    chunks the links' ``epochs`` (in ``mode``) held back; None when they held none."""
    logs = [log for name, epoch in epochs.items()
            for log in status.get(name, {}).get("held_back", [])
            if log.get("epoch") == epoch and log.get("mode") == mode.value]
    chunks = sum(int(log["chunks"]) for log in logs)
    if not chunks:
        return None
    size = sum(int(log["bytes"]) for log in logs)
    low = min(float(log["hold_ms"]["min"]) for log in logs)
    high = max(float(log["hold_ms"]["max"]) for log in logs)
    median = (f" (median {float(logs[0]['hold_ms']['median']):.1f} ms)"
              if len(logs) == 1 else "")
    verb = "held" if mode is LinkMode.DELAY else "throttled"
    return (f"the proxy {verb} {chunks} chunks ({size} bytes) on {where} for "
            f"{low:.1f}-{high:.1f} ms{median}")
