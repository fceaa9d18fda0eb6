"""The fault proxy counts what a delay or a throttle actually held back, per link state
(epoch), over real TCP on loopback; a slowed-link fault reads that back as its effect."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.chaos.evidence import LiveProbe, judge
from harness.faults.link import SlowLinkFault
from harness.faults.nemesis import FaultSpec, Step
from harness.lab.inventory import load
from harness.lab.proxy import LinkMode, LinkSpec, LinkState, ProxyControl
from harness.lab.proxy_daemon import running_proxy
from harness.workload.history import History, HistoryHeader, load_history
from tests.integration.lab.conftest import EchoServer
from tests.integration.lab.test_proxy import eventually, roundtrip

LAB = Path(__file__).resolve().parents[3] / "fixtures" / "inventories" / "lab.toml"
DELAY = LinkState(LinkMode.DELAY, delay_ms=30.0)
HELD = re.compile(r"the proxy held \d+ chunks \(\d+ bytes\) on \S+ for (29|3\d)\.\d-\d+\.\d ms")


class Proxied:
    def __init__(self, control: ProxyControl, port: int, endpoint_file: Path) -> None:
        self.control, self.port, self.endpoint_file = control, port, endpoint_file

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def link(self) -> dict:  # type: ignore[type-arg]
        return self.control.status()["l"]

    def held(self, epoch: int) -> dict | None:  # type: ignore[type-arg]
        return next((h for h in self.link()["held_back"] if h["epoch"] == epoch), None)


@pytest.fixture
def proxied(echo: EchoServer, tmp_path: Path) -> Iterator[Proxied]:
    with running_proxy([LinkSpec("l", "127.0.0.1", 0, "127.0.0.1", echo.port)]) as proxy:
        endpoint = proxy.endpoint()
        endpoint_file = tmp_path / "proxy.json"
        endpoint_file.write_text(json.dumps(endpoint))
        yield Proxied(ProxyControl.from_endpoint(endpoint), endpoint["links"]["l"]["port"],
                      endpoint_file)


def test_a_delay_counts_the_chunks_and_bytes_it_held_and_for_how_long(proxied: Proxied) -> None:
    with proxied.connect() as s:
        assert roundtrip(s, b"before") == b"before"  # passing: nothing held
        epoch = proxied.control.set_state(["l"], DELAY)["l"]
        for _ in range(3):
            assert roundtrip(s, b"ping") == b"ping"
        eventually(lambda: (proxied.held(epoch) or {}).get("chunks") == 6)  # 3 up, 3 down
        held = proxied.held(epoch)
        assert held is not None and held["mode"] == "delay" and held["bytes"] == 24
        # the measured hold, from read to written: the delay (uvloop's timers have
        # millisecond resolution and may fire up to 1 ms early)
        assert 29.0 <= held["hold_ms"]["min"] <= held["hold_ms"]["median"] \
            <= held["hold_ms"]["max"]
        healed = proxied.control.set_state(["l"], LinkState())["l"]
        assert healed == epoch + 1
        assert roundtrip(s, b"after") == b"after"
    stats = proxied.link()["stats"]
    assert stats["delayed_chunks"] == 6 and stats["delayed_bytes"] == 24
    assert proxied.held(healed) is None  # passing traffic is never counted as held back
    assert proxied.held(epoch)["chunks"] == 6  # kept after the heal  # type: ignore[index]


def test_a_throttle_counts_only_the_chunks_it_made_wait(proxied: Proxied) -> None:
    epoch = proxied.control.set_state(["l"], LinkState(LinkMode.THROTTLE, rate_bps=40_000))["l"]
    with proxied.connect() as s:
        assert roundtrip(s, b"y" * 20_000) == b"y" * 20_000
    eventually(lambda: proxied.held(epoch) is not None)
    held = proxied.held(epoch)
    assert held is not None and held["mode"] == "throttle" and held["hold_ms"]["max"] > 0
    assert proxied.link()["stats"]["throttled_bytes"] == held["bytes"] > 0
    assert proxied.link()["stats"]["delayed_chunks"] == 0


def _fault(proxied: Proxied, state: LinkState = DELAY) -> SlowLinkFault:
    return SlowLinkFault(["l"], state, endpoint_file=proxied.endpoint_file,
                         label="sync/SWS-Store1/HA1")


def test_a_delayed_link_that_carried_nothing_shows_no_effect(proxied: Proxied) -> None:
    fault = _fault(proxied)
    fault.apply()
    try:
        with proxied.connect() as s:
            assert fault.effect() is None  # an open but silent connection held nothing
            s.sendall(b"k")
            assert s.recv(1) == b"k"
        eventually(lambda: fault.effect() is not None)
        text = fault.effect()
        assert text is not None and HELD.match(text), text
        assert text.startswith("the proxy held 2 chunks (2 bytes) on sync/SWS-Store1/HA1 ")
    finally:
        SlowLinkFault.heal_from(fault.undo_record())


def test_an_earlier_delay_does_not_prove_a_later_one(proxied: Proxied) -> None:
    first = _fault(proxied)
    first.apply()
    with proxied.connect() as s:
        assert roundtrip(s, b"k") == b"k"
        eventually(lambda: first.effect() is not None)
        SlowLinkFault.heal_from(first.undo_record())
        second = _fault(proxied)
        second.apply()
        try:
            assert second.effect() is None and first.effect() is not None
        finally:
            SlowLinkFault.heal_from(second.undo_record())


def _keepalives(proxied: Proxied, stop: threading.Event) -> None:
    with proxied.connect() as s:
        while not stop.wait(0.05):
            roundtrip(s, b"keepalive")


def _idle_history(tmp_path: Path, name: str, spec: FaultSpec) -> object:
    """A run in which no operation crossed the delayed link (a hung disk held them all)."""
    header = HistoryHeader(seed=1, generation=7, block_size=4096, logical_block_size=512,
                           num_blocks=1024, device="t")
    with History(tmp_path / "h.jsonl", header) as h:
        h.fault_start(name, time_ns=10**10, action=spec.action, target=spec.target,
                      params=dict(spec.kwargs))
        h.fault_stop(name, time_ns=13 * 10**9)
    return load_history(tmp_path / "h.jsonl")


@pytest.mark.parametrize("carried", [True, False], ids=["keepalives", "silent"])
def test_the_chaos_evidence_proves_a_delay_by_what_the_proxy_held(
        proxied: Proxied, tmp_path: Path, carried: bool) -> None:
    """No operation crossed the delayed link: the live probe reads the fault's effect (the
    keepalives it held); a link that carried nothing stays "no evidence"."""
    inv = load(LAB)
    dev = inv.devices["HA1"]
    spec = FaultSpec.of("delay", "sync/SWS-Store1/HA1", delay_ms=30.0)
    step, name = Step(0.0, 1.0, spec), "delay sync/SWS-Store1/HA1 [0]"
    stop = threading.Event()
    talker = threading.Thread(target=_keepalives, args=(proxied, stop), daemon=True)
    if carried:
        talker.start()
    probe = LiveProbe(inv, dev, node_state=None, ha_status=None)
    fault = _fault(proxied)
    fault.apply()
    try:
        probe.hook(name, step, fault)
        probe.join()
    finally:
        SlowLinkFault.heal_from(fault.undo_record())
        stop.set()
        if carried:
            talker.join()
    (ev,) = judge([(name, step)], _idle_history(tmp_path, name, spec), probe.seen, inv, dev)
    assert ev.proved is carried
    if carried:
        assert HELD.match(ev.text) and "on sync/SWS-Store1/HA1 for " in ev.text, ev.text
    else:
        assert ev.text.startswith("no evidence that delay sync/SWS-Store1/HA1")
