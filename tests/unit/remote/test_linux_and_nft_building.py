"""Pure parts of the Linux driver: nft rule building, output parsers, command lines."""

from __future__ import annotations

import json
import shlex

import pytest

from harness.remote.errors import OutputFormatError, UnsafeArgument
from harness.remote.linux import (
    LinuxHost,
    parse_dpkg,
    parse_facts,
    parse_os_release,
    parse_ps,
    parse_rpm,
)
from harness.remote.nftables import (
    DropRule,
    black_hole_rules,
    check_interface,
    parse_address,
    parse_rules,
)
from harness.remote.ssh import SshTarget
from tests.support.recorded_shell import Recorder


def test_black_hole_with_a_port_drops_both_ends_in_both_directions():
    rules = black_hole_rules("f1", peer="10.0.0.2", port=3260)
    TAIL = ["counter", "drop", "comment", '"splitbrain:f1"']
    assert [r.expression() for r in rules] == [
        ["ip", "saddr", "10.0.0.2", "tcp", "dport", "3260", *TAIL],
        ["ip", "saddr", "10.0.0.2", "tcp", "sport", "3260", *TAIL],
        ["ip", "daddr", "10.0.0.2", "tcp", "dport", "3260", *TAIL],
        ["ip", "daddr", "10.0.0.2", "tcp", "sport", "3260", *TAIL],
    ]
    assert [r.chain for r in rules] == ["input", "input", "output", "output"]
    cut = black_hole_rules("f1", peer="10.0.0.2", port=3260, reset=True)
    assert {tuple(r.expression()[6:-2]) for r in cut} == {
        ("tcp", "flags", "&", "rst", "==", "0", "counter", "reject", "with", "tcp", "reset")}
    with pytest.raises(UnsafeArgument, match="reset"):
        black_hole_rules("f1", peer="10.0.0.2", reset=True)


def test_black_hole_of_a_subnet_over_ipv6_on_an_interface():
    rules = black_hole_rules("f2", peer="2001:db8::/64", interface="sync0")
    assert rules[0].expression()[:5] == ["iifname", '"sync0"', "ip6", "saddr", "2001:db8::/64"]
    assert rules[1].expression()[:5] == ["oifname", '"sync0"', "ip6", "daddr", "2001:db8::/64"]


@pytest.mark.parametrize("tag", ["", "a b", 'x"; flush ruleset', "x\n", "-x", "a" * 101])
def test_tags_that_could_escape_the_comment_are_refused(tag):
    with pytest.raises(UnsafeArgument):
        black_hole_rules(tag, peer="10.0.0.2")


@pytest.mark.parametrize("bad", ["10.0.0.2; nft flush ruleset", "300.1.1.1", "eth0", ""])
def test_addresses_must_parse(bad):
    with pytest.raises(UnsafeArgument):
        parse_address(bad)


def test_interface_rules_follow_the_kernel():
    assert check_interface("$(id);x") == "$(id);x"  # legal in Linux, passed literally
    for bad in ("", ".", "a b", "a/b", "a:b", 'q"', "x" * 16):
        with pytest.raises(UnsafeArgument):
            check_interface(bad)


def test_drop_rule_checks_ports_and_families():
    with pytest.raises(UnsafeArgument):
        DropRule("input", "t", dport=70000, protocol="tcp")
    with pytest.raises(UnsafeArgument):
        DropRule("input", "t", dport=22)  # a port without a protocol
    with pytest.raises(UnsafeArgument):
        DropRule("input", "t", source=parse_address("10.0.0.1"),
                 destination=parse_address("::1"))
    with pytest.raises(UnsafeArgument):
        DropRule("prerouting", "t")


def test_parse_rules_keeps_ours_and_marks_foreign():
    doc = {"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": "splitbrain", "handle": 1}},
        {"rule": {"family": "inet", "table": "splitbrain", "chain": "input", "handle": 4,
                  "comment": "splitbrain:f1", "expr": []}},
        {"rule": {"family": "inet", "table": "splitbrain", "chain": "output", "handle": 7,
                  "expr": []}},
        {"rule": {"family": "ip", "table": "filter", "chain": "input", "handle": 2,
                  "comment": "splitbrain:f1", "expr": []}},
    ]}
    rules = parse_rules(json.dumps(doc))
    assert [(r.chain, r.handle, r.tag) for r in rules] == [("input", 4, "f1"), ("output", 7, None)]
    with pytest.raises(OutputFormatError):
        parse_rules("table inet splitbrain {")


OS_RELEASE = '''PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
# a comment
ID=debian
HOME_URL='https://www.debian.org/'
'''


def test_facts_parse_os_release_and_uname():
    assert parse_os_release(OS_RELEASE)["HOME_URL"] == "https://www.debian.org/"
    facts = parse_facts(OS_RELEASE + "--splitbrain--\n6.1.0-18-amd64\nx86_64\nsws-store1\n",
                        host="h")
    assert (facts.os_id, facts.os_version, facts.kernel, facts.architecture, facts.hostname) == \
        ("debian", "12", "6.1.0-18-amd64", "x86_64", "sws-store1")
    with pytest.raises(OutputFormatError):
        parse_facts("sh: cat: not found", host="h")


def test_package_parsers_keep_only_installed():
    dpkg = "tgt\t1:1.0.85-1\tii \nopen-iscsi\t2.1.8-1\trc \nlibc6:amd64\t2.36-9\tii \n"
    assert parse_dpkg(dpkg) == {"tgt": "1:1.0.85-1", "libc6": "2.36-9"}
    rpm = "iscsi-initiator-utils\t6.2.1.4-8.el9\npackage nope is not installed\n"
    assert parse_rpm(rpm) == {"iscsi-initiator-utils": "6.2.1.4-8.el9"}


def test_ps_parser_keeps_names_with_spaces():
    assert parse_ps("    1 init\n  812 sl'ep $(x)\n") == [(1, "init"), (812, "sl'ep $(x)")]


def linux(sudo: bool = False, answers: dict[str, tuple[int, str]] | None = None):
    host = LinuxHost(SshTarget(name="h", address="192.0.2.1", sudo=sudo))
    rec = Recorder(answers)
    host.execute = rec  # type: ignore[method-assign]
    return host, rec


def test_command_lines_quote_every_word_and_add_sudo_when_asked():
    host, rec = linux(sudo=True)
    host.run(["touch", "a b; rm -rf /", "$(reboot)"])
    assert rec.lines == ["sudo -n -- touch 'a b; rm -rf /' '$(reboot)'"]
    assert shlex.split(rec.lines[0])[4:] == ["a b; rm -rf /", "$(reboot)"]
    with pytest.raises(UnsafeArgument):
        host.run([])


def test_unit_and_signal_commands():
    host, rec = linux(answers={"ps -e": (0, "  42 tgtd\n  43 tgtd\n  44 sshd\n")})
    host.unit("restart", "tgt@it's.service")
    assert host.signal("tgtd", "STOP") == [42, 43]
    assert rec.lines == ["systemctl restart -- 'tgt@it'\"'\"'s.service'",
                         "ps -e -o pid=,comm=", "kill -s STOP -- 42 43"]
    with pytest.raises(UnsafeArgument):
        host.signal(42, "SEGV; reboot")  # type: ignore[arg-type]
    with pytest.raises(UnsafeArgument):
        host.unit("mask", "tgt")


def test_long_process_names_match_the_kernels_15_bytes():
    host, _ = linux(answers={"ps -e": (0, "  7 starwind-servic\n  8 starwind-serv\n")})
    assert host.processes("starwind-service") == [7]


def test_packages_via_rpm_when_there_is_no_dpkg():
    host, rec = linux(answers={"command -v": (0, "/usr/bin/rpm\n"),
                               "rpm -q": (1, "tgt\t1.0.85-1.el9\npackage nope is not installed\n")})
    assert host.packages(["tgt", "nope"]) == {"tgt": "1.0.85-1.el9"}
    assert rec.lines[-1] == "rpm -q tgt nope --qf '%{NAME}\\t%{VERSION}-%{RELEASE}\\n'"


def test_packages_without_a_package_manager_is_a_clear_error():
    host, _ = linux(answers={"command -v": (1, "")})
    with pytest.raises(OutputFormatError, match="neither dpkg-query nor rpm"):
        host.packages()


def test_link_state_is_read_from_the_flags():
    host, _ = linux(answers={"show dev sync0": (0, "4: sync0: <BROADCAST,MULTICAST,UP,LOWER_UP> "
                                                   "mtu 9000 qdisc mq state UP\n"),
                             "show dev iscsi0": (0, "5: iscsi0: <BROADCAST,MULTICAST> mtu 9000\n"),
                             "show dev odd0": (0, "garbage\n")})
    assert host.link_is_up("sync0") and not host.link_is_up("iscsi0")
    with pytest.raises(OutputFormatError, match="no flags"):
        host.link_is_up("odd0")
