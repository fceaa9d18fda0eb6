"""The netns primitives against the real kernel: separation, link faults, nft black
holes and sweep, each proved with real TCP traffic between namespaces."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest
from tenacity import Retrying, retry, retry_if_exception_type, stop_after_delay, wait_fixed

from harness.lab import netns
from harness.remote import deadman
from harness.remote.errors import ForeignState, UnsafeArgument
from tests.support.netns import NetnsRun, skip_unless_netns

pytestmark = pytest.mark.needs_root


def roundtrip(client: netns.Namespace, server: netns.Namespace, address: str,
              timeout: float = 2.0) -> bytes:
    """Connect from ``client`` to a fresh listener in ``server`` and echo one message."""
    listener = server.listen_tcp(address)
    try:
        port = listener.getsockname()[1]
        listener.settimeout(timeout)
        with client.connect_tcp(address, port, timeout) as conn:
            peer, _ = listener.accept()
            with peer:
                conn.sendall(b"ping")
                peer.settimeout(timeout)
                data = peer.recv(4)
                peer.sendall(data[::-1])
                conn.settimeout(timeout)
                return conn.recv(4)
    finally:
        listener.close()


@retry(retry=retry_if_exception_type(OSError), stop=stop_after_delay(10), wait=wait_fixed(0.2),
       reraise=True)
def roundtrip_eventually(client: netns.Namespace, server: netns.Namespace, address: str) -> bytes:
    return roundtrip(client, server, address)


@pytest.fixture
def two_networks(netns_run: NetnsRun):
    """h1 on A, h2 on A and B, h3 on B; h3 also holds an A-subnet address on its B link."""
    switch = netns_run.namespace("switch")
    h1, h2, h3 = (netns_run.namespace(h) for h in ("h1", "h2", "h3"))
    netns.attach(h1, "a0", switch, "br-a", "h1-a", "10.77.0.1/24")
    netns.attach(h2, "a0", switch, "br-a", "h2-a", "10.77.0.2/24")
    netns.attach(h2, "b0", switch, "br-b", "h2-b", "10.78.0.2/24")
    netns.attach(h3, "b0", switch, "br-b", "h3-b", "10.78.0.3/24")
    h3.add_address("b0", "10.77.0.3/24")  # same subnet as A, but on the other bridge
    return switch, h1, h2, h3


def test_hosts_on_one_bridge_talk_and_bridges_are_separate(two_networks):
    _switch, h1, h2, h3 = two_networks
    assert roundtrip(h1, h2, "10.77.0.2") == b"gnip"
    assert roundtrip(h2, h3, "10.78.0.3") == b"gnip"
    # 10.77.0.3 is in h1's own subnet, yet it sits on bridge B: no frame gets across.
    listener = h3.listen_tcp("10.77.0.3")
    try:
        with pytest.raises(OSError):
            h1.connect_tcp("10.77.0.3", listener.getsockname()[1], timeout=1.5).close()
    finally:
        listener.close()


def test_link_down_breaks_traffic_and_up_restores_it(two_networks):
    _switch, h1, h2, _h3 = two_networks
    assert roundtrip(h1, h2, "10.77.0.2") == b"gnip"
    h1.set_link("a0", up=False)
    assert not h1.link_is_up("a0")
    with pytest.raises(OSError):
        roundtrip(h1, h2, "10.77.0.2", timeout=1.0)
    h1.set_link("a0", up=True)
    assert h1.link_is_up("a0")
    assert roundtrip_eventually(h1, h2, "10.77.0.2") == b"gnip"


def test_nft_drop_black_holes_a_flow_and_removing_it_restores_the_same_flow(two_networks):
    skip_unless_netns(nft=True)
    _switch, h1, h2, _h3 = two_networks
    listener = h2.listen_tcp("10.77.0.2")
    port = listener.getsockname()[1]
    listener.settimeout(3)
    with h1.connect_tcp("10.77.0.2", port, 3) as conn, listener.accept()[0] as peer:
        conn.sendall(b"before")
        peer.settimeout(3)
        assert peer.recv(6) == b"before"

        rules = h2.nft.black_hole("fault-7", peer="10.77.0.1", port=port)
        assert {r.chain for r in rules} == {"input", "output"} and len(rules) == 4
        conn.sendall(b"during")
        peer.settimeout(1.5)
        with pytest.raises(socket.timeout):  # silently dropped: no data, no reset
            peer.recv(6)
        with pytest.raises(socket.timeout):  # new connections hang too, never refused
            h1.connect_tcp("10.77.0.2", port, timeout=1.0)

        assert h2.nft.remove("fault-7") == 4
        assert h2.nft.rules() == []
        peer.settimeout(15)  # TCP retransmits the held segment once the path is back
        assert peer.recv(6) == b"during"
    listener.close()


def test_nft_remove_touches_only_its_own_tag_and_drop_table_refuses_foreign_rules(netns_run):
    skip_unless_netns(nft=True)
    ns = netns_run.namespace("solo")
    ns.nft.black_hole("a", peer="192.0.2.1")
    ns.nft.black_hole("b", peer="192.0.2.2", port=3260)
    assert ns.nft.remove("a") == 2
    assert {r.tag for r in ns.nft.rules()} == {"b"}
    ns.run_argv(["nft", "add", "rule", "inet", "splitbrain", "input", "ip", "saddr",
                 "192.0.2.9", "drop"])  # somebody else's rule, no splitbrain comment
    with pytest.raises(ForeignState):
        ns.nft.drop_table()
    assert ns.nft.exists()
    assert ns.nft.remove("b") == 4
    assert [r.tag for r in ns.nft.rules()] == [None]


def test_everything_is_idempotent(netns_run):
    a = netns_run.namespace("a")
    assert netns_run.namespace("a") == a
    if shutil.which("nft") is not None:  # no table yet: nothing listed, nothing to remove
        assert (a.nft.rules(), a.nft.exists(), a.nft.remove("t1"), a.nft.drop_table()) == \
            ([], False, 0, False)
    b = netns_run.namespace("b")
    netns.add_veth(a, "v0", b, "v0")
    netns.add_veth(a, "v0", b, "v0")
    a.add_address("v0", "10.5.0.1/30")
    a.add_address("v0", "10.5.0.1/30")
    netns.add_bridge(b, "br0")
    netns.add_bridge(b, "br0")
    assert netns.delete_namespace(b.name) == []
    assert netns.delete_namespace(b.name) == []
    # The kernel tears a namespace down asynchronously; its veth peer goes with it.
    for attempt in Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.1), reraise=True):
        with attempt:
            assert not a.has_link("v0")


def test_sweep_removes_namespaces_processes_links_and_tables(netns_run):
    skip_unless_netns(nft=True)
    root_tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    switch = netns_run.namespace("switch")
    h1 = netns_run.namespace("h1")
    netns.attach(h1, "a0", switch, "br-a", "h1-a", "10.9.0.1/24")
    h1.nft.black_hole("crash", peer="10.9.0.2")
    sleeper = h1.popen(["sleep", "300"])
    try:
        report = netns.sweep(netns_run.prefix)
        assert sorted(report.namespaces) == sorted([switch.name, h1.name])
        assert sleeper.wait(timeout=10) == -9
        assert sleeper.pid in report.processes
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert netns_run.prefix not in listed
    assert subprocess.run(["nft", "list", "tables"], capture_output=True,
                          text=True).stdout == root_tables
    assert netns_run.prefix not in subprocess.run(["ip", "-o", "link", "show"],
                                                  capture_output=True, text=True).stdout
    assert netns.sweep(netns_run.prefix).empty


def test_sweep_refuses_a_prefix_that_is_not_ours():
    with pytest.raises(netns.BadName):
        netns.sweep("")
    with pytest.raises(netns.BadName):
        netns.sweep("docker")


def test_hostile_names_are_refused_or_passed_literally(netns_run):
    ns = netns_run.namespace("x")
    other = netns_run.namespace("y")
    for name in ("a b", 'q"x', "x/y", "sixteen-chars-xx", ""):
        with pytest.raises(UnsafeArgument):
            ns.set_link(name, up=False)
    # '$(id);x' is a valid Linux interface name: it must reach ip as one literal argument.
    netns.add_veth(ns, "$(id);x", other, "v0")
    ns.set_link("$(id);x", up=False)
    assert ns.has_link("$(id);x") and not ns.link_is_up("$(id);x")
    ns.set_link("$(id);x", up=True)
    assert ns.link_is_up("$(id);x")
    with pytest.raises(netns.BadName):
        netns.namespace_name("run", "h; rm -rf /")


def test_without_root_the_error_says_so(monkeypatch):
    skip_unless_netns()
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(netns.NotRoot, match="need root"):
        netns.add_namespace("sb-x-y")


def test_the_node_side_heal_script_deletes_exactly_one_tag(netns_run):
    skip_unless_netns(nft=True)
    ns = netns_run.namespace("dm")
    ns.nft.black_hole("a.b", peer="192.0.2.1", port=3260)
    ns.nft.black_hole("axb", peer="192.0.2.1")  # would match an unescaped 'a.b'
    ns.nft.black_hole("a.b2", peer="192.0.2.3")  # shares the prefix
    ns.run_argv(["sh", "-c", deadman.heal_script("a.b")])
    assert sorted({r.tag for r in ns.nft.rules()}) == ["a.b2", "axb"]
    assert len(ns.nft.rules("axb")) == 2


def test_a_missing_namespace_is_a_typed_error_heal_code_can_catch(netns_run):
    ns = netns_run.namespace("gone")
    netns.delete_namespace(ns.name)
    for action in (lambda: ns.run_argv(["true"]), lambda: ns.set_link("lo", up=True),
                   lambda: ns.nft.remove("f1"), lambda: ns.link_is_up("lo")):
        with pytest.raises(netns.NamespaceMissing, match="does not exist"):
            action()
