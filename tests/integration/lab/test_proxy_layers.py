"""Overlapping link faults on one link: each is a layer, and a heal removes only its own.

Found by the 600 s nightly at seed 7: SWS-Store1's power loss (every link of the node
black-holed) healed while an asymmetric sync fault was still set on
sync/SWS-Store1/HA2; the heal set the link back to ``pass``, so for the 2.4 s left
of the sync fault the link passed both ways while the nemesis (and the verdict)
took it as broken. Over real TCP on loopback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.faults.journal import FaultJournal
from harness.faults.link import LinkFault
from harness.lab.proxy import PASS, LinkMode, LinkState
from tests.integration.lab.test_proxy import roundtrip
from tests.integration.lab.test_proxy_held_back import Proxied, proxied  # noqa: F401

BLACKHOLE = LinkState(LinkMode.BLACKHOLE)
ONEWAY_UP = LinkState(LinkMode.ONEWAY, direction="up")


@pytest.fixture
def fault(proxied: Proxied, tmp_path: Path) -> Iterator[Callable[[LinkState], LinkFault]]:  # noqa: F811
    """Inject a link fault on the proxied link; every one is healed after the test."""
    journal = FaultJournal(tmp_path / "faults.jsonl")
    made: list[LinkFault] = []

    def inject(state: LinkState) -> LinkFault:
        made.append(LinkFault(["l"], state, endpoint_file=proxied.endpoint_file,
                              journal=journal).inject())
        return made[-1]

    yield inject
    for f in reversed(made):
        f.heal()


def mode(proxied: Proxied) -> str:  # noqa: F811
    return str(proxied.link()["state"]["mode"])


def up_is_held(proxied: Proxied) -> bool:  # noqa: F811
    """Whether a fresh connection's bytes to the upstream are held: no echo and no close,
    only silence."""
    with proxied.connect() as s:
        s.settimeout(0.3)
        s.sendall(b"up?")
        try:
            s.recv(10)  # an echo, or the end of the stream: the link did not hold them
        except TimeoutError:
            return True
        return False


@pytest.mark.parametrize("first", ["blackhole", "oneway"])
def test_a_heal_leaves_the_link_in_the_fault_that_still_holds_it(
        proxied: Proxied, fault: Callable[[LinkState], LinkFault], first: str) -> None:  # noqa: F811
    # the node's power loss and the sync fault, set in either order
    if first == "blackhole":
        power = fault(BLACKHOLE)
        oneway = fault(ONEWAY_UP)
    else:
        oneway = fault(ONEWAY_UP)
        power = fault(BLACKHOLE)
    power.heal()  # the node is back: its links pass again, except what another fault holds
    assert mode(proxied) == "oneway"
    assert [layer["owner"] for layer in proxied.link()["layers"]] == [oneway.id]
    assert up_is_held(proxied)
    oneway.heal()
    assert mode(proxied) == "pass" and proxied.link()["layers"] == []
    with proxied.connect() as s:
        assert roundtrip(s, b"after") == b"after"


def test_healing_a_layer_that_is_not_in_effect_changes_nothing(
        proxied: Proxied, fault: Callable[[LinkState], LinkFault]) -> None:  # noqa: F811
    below = fault(ONEWAY_UP)
    above = fault(BLACKHOLE)
    epoch = proxied.link()["epoch"]
    below.heal()
    assert mode(proxied) == "blackhole" and proxied.link()["epoch"] == epoch
    above.heal()
    assert mode(proxied) == "pass"


def test_a_journal_record_without_an_owner_clears_every_layer(
        proxied: Proxied, fault: Callable[[LinkState], LinkFault]) -> None:  # noqa: F811
    """A journal written before layers heals as it did: the link passes."""
    one, two = fault(ONEWAY_UP), fault(BLACKHOLE)
    old_record = {k: v for k, v in one.undo_record().items() if k != "owner"}
    LinkFault.heal_from(old_record)
    assert mode(proxied) == "pass" and proxied.link()["layers"] == []
    two.heal()  # idempotent: its layer is gone already
    assert mode(proxied) == "pass"


def test_a_state_set_without_an_owner_replaces_every_layer(
        proxied: Proxied, fault: Callable[[LinkState], LinkFault]) -> None:  # noqa: F811
    fault(ONEWAY_UP)
    proxied.control.set_state(["l"], LinkState(LinkMode.DELAY, delay_ms=5.0))
    assert [layer["owner"] for layer in proxied.link()["layers"]] == [""]
    proxied.control.set_state(["l"], PASS)
    assert mode(proxied) == "pass" and proxied.link()["layers"] == []
