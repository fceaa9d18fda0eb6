"""LinuxHost against Debian's real OpenSSH server running in a network-namespace host."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from harness.remote import deadman
from harness.remote.errors import (
    AuthenticationFailed,
    CommandFailed,
    HostUnreachable,
    MissingSecret,
    UnsafeArgument,
)
from harness.remote.linux import LinuxHost, NoSuchProcess

pytestmark = [pytest.mark.slow, pytest.mark.needs_root]

HOSTILE = ["a b", "it's", 'say "hi"', "$(touch PWNED)", "`touch PWNED`", "x; touch PWNED",
           "a\\b", "-rf", "*", "new\nline", "ü€"]


@pytest.fixture
def linux(sshd_host):
    with sshd_host.linux_host() as host:
        yield host


def test_facts_match_this_machine(linux):
    facts = linux.facts()
    release = Path("/etc/os-release").read_text()
    assert f"ID={facts.os_id}" in release
    assert facts.kernel == platform.release()
    assert facts.architecture == platform.machine()
    assert facts.hostname == platform.node()


def test_packages_report_installed_versions_and_skip_missing(linux):
    if shutil.which("dpkg-query") is None:
        pytest.skip("package facts test needs dpkg (Debian)")
    want = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "openssh-server"],
                          capture_output=True, text=True, check=True).stdout
    found = linux.packages(["openssh-server", "no-such-package-splitbrain"])
    assert found == {"openssh-server": want}


def test_command_results_are_typed(linux):
    ok = linux.run(["sh", "-c", "echo out; echo err >&2; exit 0"])
    assert (ok.exit_status, ok.stdout, ok.stderr) == (0, "out\n", "err\n")
    assert ok.duration_ns > 0 and ok.host == "netns-host"
    failed = linux.run(["sh", "-c", "exit 7"], check=False)
    assert failed.exit_status == 7 and not failed.ok
    with pytest.raises(CommandFailed, match="exit status 7"):
        linux.run(["sh", "-c", "exit 7"])
    assert linux.run(["cat"], stdin="fed through stdin").stdout == "fed through stdin"


def test_hostile_file_names_are_single_literal_arguments(linux, tmp_path):
    tmp_path = tmp_path / "files"
    tmp_path.mkdir()
    for name in HOSTILE:
        path = tmp_path / name.replace("/", "_")
        linux.run(["touch", "--", str(path)])
        assert path.exists(), name
        assert linux.run(["printf", "%s", name]).stdout == name
    assert not (tmp_path / "PWNED").exists()
    assert not Path(linux.run(["pwd"]).stdout.strip(), "PWNED").exists()
    listed = set(os.listdir(tmp_path))
    assert listed == {n.replace("/", "_") for n in HOSTILE}


def test_nft_black_hole_added_and_removed_by_tag_inside_the_namespace(linux, sshd_host):
    if shutil.which("nft") is None:
        pytest.skip("needs the Debian package nftables (nft)")
    pair = sshd_host.pair
    listener = pair.host.listen_tcp(pair.host_address)
    port = listener.getsockname()[1]
    try:
        rules = linux.black_hole("fault-42", peer=pair.client_address, port=port)
        assert len(rules) == 4
        assert linux.faults() == {"fault-42": 4}
        # Observed independently of the driver: the namespace's own table, and real traffic.
        assert {r.tag for r in pair.host.nft.rules()} == {"fault-42"}
        with pytest.raises(TimeoutError):
            pair.client.connect_tcp(pair.host_address, port, timeout=1.0)
        assert linux.heal("fault-42") == 4
        assert linux.faults() == {}
        pair.client.connect_tcp(pair.host_address, port, timeout=3.0).close()
        assert linux.heal("fault-42") == 0  # healing twice is fine
    finally:
        listener.close()
    with pytest.raises(UnsafeArgument):
        linux.black_hole("x; flush ruleset", peer=pair.client_address)


def test_link_down_and_up_with_a_hostile_interface_name(linux, sshd_host):
    host_ns = sshd_host.pair.host
    name = "d$(id);x"
    host_ns.run_argv(["ip", "link", "add", "name", name, "type", "veth", "peer", "name", "p0"])
    linux.set_link(name, up=True)
    assert host_ns.link_is_up(name) and linux.link_is_up(name)
    linux.set_link(name, up=False)
    assert not host_ns.link_is_up(name) and not linux.link_is_up(name)
    with pytest.raises(UnsafeArgument):
        linux.set_link("eth0 down; reboot", up=False)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _reaches(pid: int, *states: str) -> None:
    """kill(2) returns once the signal is queued; the target changes state when it is next
    scheduled, which on a loaded machine is a moment later (CI once read 'R' at once)."""
    for attempt in Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.05), reraise=True):
        with attempt:
            assert _state(pid) in states


def test_stop_cont_and_kill_a_process_by_hostile_name(linux, sshd_host, tmp_path):
    binary = tmp_path / "sl'ep $(x)"
    shutil.copy("/bin/sleep", binary)
    proc = sshd_host.pair.host.popen([str(binary), "300"])
    try:
        name = binary.name
        assert linux.processes(name) == [proc.pid]
        assert linux.signal(name, "STOP") == [proc.pid]
        _reaches(proc.pid, "T")
        assert linux.signal(proc.pid, "CONT") == [proc.pid]
        _reaches(proc.pid, "S", "R")
        assert linux.signal(name, "KILL") == [proc.pid]
        assert proc.wait(timeout=10) == -9
        with pytest.raises(NoSuchProcess):
            linux.signal(name, "KILL")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_systemctl_is_driven_with_quoted_unit_names(linux):
    if shutil.which("systemctl") is None:
        pytest.skip("needs systemctl (Debian package systemd)")
    booted = Path("/run/systemd/system").is_dir()
    if booted:
        assert linux.unit_state("no-such-unit-splitbrain.service") in {"inactive", "unknown"}
    else:  # no systemd as PID 1 here: the error must say what happened, not hang
        with pytest.raises(CommandFailed, match="systemctl is-active -- "):
            linux.unit_state("it's $(bad).service")
    with pytest.raises(UnsafeArgument):
        linux.unit("enable; reboot", "sshd")


def test_unreachable_port_fails_after_bounded_retries(sshd_host):
    closed = sshd_host.pair.host.listen_tcp(sshd_host.address)
    port = closed.getsockname()[1]
    closed.close()  # nothing listens on it any more: connection refused
    host = LinuxHost(sshd_host.target(name="SWS-Store1", port=port),
                     retry=sshd_host.fast_retry(3), sock_factory=sshd_host.sock_factory)
    with pytest.raises(HostUnreachable) as err:
        host.connect()
    assert host.attempts == 3
    assert str(err.value) == (
        f"cannot reach SWS-Store1 at {sshd_host.address}:{port} over ssh after 3 attempts "
        "(connection refused): check the address and that sshd runs")


def test_black_holed_sshd_times_out_within_the_deadline(sshd_host):
    if shutil.which("nft") is None:
        pytest.skip("needs the Debian package nftables (nft)")
    sshd_host.pair.host.nft.black_hole("ssh-cut", port=sshd_host.port)
    try:
        host = LinuxHost(sshd_host.target(connect_timeout=1.0), retry=sshd_host.fast_retry(2),
                         sock_factory=sshd_host.sock_factory)
        with pytest.raises(HostUnreachable, match=r"after 2 attempts \(timed out\)"):
            host.connect()
        assert host.attempts == 2
    finally:
        sshd_host.pair.host.nft.remove("ssh-cut")


def test_wrong_key_is_an_authentication_error_and_not_retried(sshd_host):
    host = LinuxHost(sshd_host.target(key_filename=str(sshd_host.other_key)),
                     retry=sshd_host.fast_retry(3), sock_factory=sshd_host.sock_factory)
    with pytest.raises(AuthenticationFailed, match="refused ssh login as root"):
        host.connect()
    assert host.attempts == 1


def test_known_hosts_is_enforced_when_given(sshd_host, tmp_path):
    good = LinuxHost(sshd_host.target(known_hosts=str(sshd_host.known_hosts)),
                     retry=sshd_host.fast_retry(), sock_factory=sshd_host.sock_factory)
    with good:
        assert good.run(["true"]).ok
    other = Path(f"{sshd_host.other_key}.pub").read_text().split()
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[{sshd_host.address}]:{sshd_host.port} {other[0]} {other[1]}\n")
    bad = LinuxHost(sshd_host.target(known_hosts=str(wrong)), retry=sshd_host.fast_retry(),
                    sock_factory=sshd_host.sock_factory)
    with pytest.raises(AuthenticationFailed, match="host key"):
        bad.connect()
    assert bad.attempts == 1


def test_inline_or_unset_secrets_are_refused_before_connecting(sshd_host, monkeypatch):
    monkeypatch.delenv("SPLITBRAIN_TEST_UNSET", raising=False)
    for password, message in (("hunter2", "written inline"),
                              ("${SPLITBRAIN_TEST_UNSET}", "SPLITBRAIN_TEST_UNSET")):
        host = LinuxHost(sshd_host.target(password=password), retry=sshd_host.fast_retry(),
                         sock_factory=sshd_host.sock_factory)
        with pytest.raises(MissingSecret, match=message):
            host.connect()


def fire_now(linux: LinuxHost, tag: str) -> None:
    """Let the TTL of ``tag`` elapse now: end the sleep of its pending timer, so the host
    runs the heal exactly as it would when the time is up (no race with a short TTL)."""
    (sleeper,) = deadman.pending(linux, tag)
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(sleeper)], capture_output=True,
                              text=True).stdout.split()
    assert children, f"timer {sleeper} of {tag} has no sleep running"
    for child in children:
        os.kill(int(child), signal.SIGTERM)


def test_a_black_hole_with_a_ttl_heals_itself_on_the_host(linux, sshd_host):
    if shutil.which("nft") is None:
        pytest.skip("needs the Debian package nftables (nft)")
    rules = linux.black_hole("dead-man.1", peer=sshd_host.pair.client_address, port=9,
                             ttl_s=600)
    assert len(rules) == 4
    fire_now(linux, "dead-man.1")
    # Nobody calls heal: the host's own timer removes exactly these rules.
    for attempt in Retrying(stop=stop_after_delay(30), wait=wait_fixed(0.25), reraise=True):
        with attempt:
            assert sshd_host.pair.host.nft.rules() == []
    for attempt in Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.25), reraise=True):
        with attempt:
            assert deadman.pending(linux, "dead-man.1") == []


def test_heal_cancels_the_pending_timer(linux, sshd_host):
    if shutil.which("nft") is None:
        pytest.skip("needs the Debian package nftables (nft)")
    # (port 9: a black hole of the whole peer would cut this very ssh session)
    linux.black_hole("dead-man.2", peer=sshd_host.pair.client_address, port=9, ttl_s=600)
    assert len(deadman.pending(linux, "dead-man.2")) == 1
    assert linux.heal("dead-man.2") == 4
    for attempt in Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.1), reraise=True):
        with attempt:
            assert deadman.pending(linux, "dead-man.2") == []
    with pytest.raises(UnsafeArgument):
        linux.black_hole("dead-man.3", peer=sshd_host.pair.client_address, port=9, ttl_s=0)
    assert linux.faults() == {}


def test_an_encrypted_key_needs_its_passphrase_from_the_environment(sshd_host, tmp_path,
                                                                     monkeypatch):
    key = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "it's $(secret)", "-f", str(key)],
                   check=True, capture_output=True)
    with sshd_host.authorized_keys.open("a") as keys:
        keys.write(Path(f"{key}.pub").read_text())
    locked = LinuxHost(sshd_host.target(key_filename=str(key)), retry=sshd_host.fast_retry(),
                       sock_factory=sshd_host.sock_factory)
    with pytest.raises(AuthenticationFailed, match="is encrypted"):
        locked.connect()
    assert locked.attempts == 1
    monkeypatch.setenv("SPLITBRAIN_TEST_PASSPHRASE", "it's $(secret)")
    unlocked = LinuxHost(sshd_host.target(key_filename=str(key),
                                          passphrase="${SPLITBRAIN_TEST_PASSPHRASE}"),
                         retry=sshd_host.fast_retry(), sock_factory=sshd_host.sock_factory)
    with unlocked:
        assert unlocked.run(["id", "-u"]).stdout.strip() == "0"


def test_a_closed_connection_is_reopened_on_the_next_command(linux):
    first = linux.run(["true"])
    linux.close()
    assert linux.connection is None
    assert linux.run(["echo", "again"]).stdout == "again\n"
    assert first.ok


def test_a_link_set_down_with_a_ttl_comes_back_by_itself(linux, sshd_host):
    host_ns = sshd_host.pair.host
    name = "ttl'$(x)"
    host_ns.run_argv(["ip", "link", "add", "name", name, "type", "veth", "peer", "name", "p1"])
    host_ns.set_link(name, up=True)
    with pytest.raises(UnsafeArgument, match="needs its tag"):
        linux.set_link(name, up=False, ttl_s=1)
    assert host_ns.link_is_up(name)  # refused before anything changed
    linux.set_link(name, up=False, tag="link-1", ttl_s=600)
    assert not host_ns.link_is_up(name)
    fire_now(linux, "link-1")
    for attempt in Retrying(stop=stop_after_delay(30), wait=wait_fixed(0.25), reraise=True):
        with attempt:
            assert host_ns.link_is_up(name)


def test_a_freeze_with_a_ttl_always_thaws(linux, sshd_host):
    proc = sshd_host.pair.host.popen(["sleep", "300"])
    try:
        linux.signal(proc.pid, "STOP", tag="freeze-1", ttl_s=600)
        _reaches(proc.pid, "T")
        fire_now(linux, "freeze-1")
        for attempt in Retrying(stop=stop_after_delay(30), wait=wait_fixed(0.25), reraise=True):
            with attempt:
                assert _state(proc.pid) in {"S", "R"}
        # and a thaw by hand cancels a pending timer
        linux.signal(proc.pid, "STOP", tag="freeze-2", ttl_s=600)
        assert len(deadman.pending(linux, "freeze-2")) == 1
        linux.signal(proc.pid, "CONT", tag="freeze-2")
        for attempt in Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.1), reraise=True):
            with attempt:
                assert deadman.pending(linux, "freeze-2") == []
    finally:
        proc.kill()
        proc.wait()


SESSION = ["sh", "-c", "ps -o sid= -p $$"]  # sshd gives every session channel its own


def test_commands_share_a_kept_shell_and_cannot_disturb_it(linux):
    """Commands without stdin go through one shell kept open (one SSH session), not a new
    session each; a command cannot read the protocol's input nor change the kept shell."""
    sessions = {linux.run(SESSION).stdout.strip() for _ in range(20)}
    assert len(sessions) == 1
    assert linux.run(SESSION, stdin="").stdout.strip() not in sessions  # its own channel
    assert linux.run(["cat"]).stdout == ""  # stdin is /dev/null, not the next command line
    linux.run(["sh", "-c", "cd /tmp && export SB_LEAK=1"])
    home = linux.run(["pwd"]).stdout
    linux.run(["sh", "-c", "exit 3"], check=False)
    assert linux.run(["sh", "-c", "echo ${SB_LEAK:-none}; pwd"]).stdout == "none\n" + home
    out = linux.run(["sh", "-c", "printf 'no newline'; printf 'err' >&2"])
    assert (out.stdout, out.stderr) == ("no newline", "err")
    assert {linux.run(SESSION).stdout.strip()} == sessions
    with pytest.raises(UnsafeArgument, match="not complete shell text"):
        linux.execute("echo 'unbalanced")


def test_a_command_over_its_timeout_closes_its_kept_shell_only(linux):
    from harness.remote.errors import CommandTimedOut

    before = linux.run(SESSION).stdout.strip()
    with pytest.raises(CommandTimedOut):
        linux.run(["sleep", "30"], timeout=0.5)
    after = linux.run(SESSION).stdout.strip()
    assert after and after != before  # a new kept shell; the timed-out one was hung up


def test_threads_run_commands_at_once_through_several_kept_shells(linux):
    import threading

    results: list[str] = []
    barrier = threading.Barrier(3)

    def one(i: int) -> None:
        barrier.wait()
        results.append(linux.run(["sh", "-c", f"sleep 0.5; echo {i}"]).stdout)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["0\n", "1\n", "2\n"]
    assert linux.shells._open >= 2  # they ran side by side, not queued behind one shell
