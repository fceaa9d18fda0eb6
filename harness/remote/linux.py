"""``LinuxHost``: the fault and fact driver for a real Linux host over SSH.

What it runs (and so what the host needs): ``nft`` (nftables, for black holes in
``table inet splitbrain``), ``ip`` (iproute2, link down/up), ``systemctl``
(systemd units), ``ps`` and ``kill`` (procps, process faults), and
``/etc/os-release``, ``uname``, ``dpkg-query`` or ``rpm`` for facts. The login
user must be root, or a user with password-less sudo (``SshTarget.sudo``), for
everything but facts.

Every command is an argument vector joined with ``shlex.join``, so a unit,
interface, file or process name is always one literal argument to the remote
shell, whatever quotes, ``$()``, ``;`` or spaces it holds. The only shell text
this module sends is fixed (the facts script).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fabric import Connection

from harness.remote import deadman
from harness.remote.errors import OutputFormatError, RemoteError, UnsafeArgument
from harness.remote.nftables import (
    NftTable,
    TaggedRule,
    check_interface,
    check_tag,
    parse_address,
)
from harness.remote.result import CommandResult
from harness.remote.shell import Output, ShellPool, stream
from harness.remote.ssh import RemoteHost

Signal = Literal["KILL", "STOP", "CONT", "TERM", "INT", "HUP"]
SIGNALS: tuple[str, ...] = ("KILL", "STOP", "CONT", "TERM", "INT", "HUP")
UNIT_ACTIONS = ("start", "stop", "restart")
_COMM_LEN = 15  # the kernel keeps 15 bytes of a process name (TASK_COMM_LEN - 1)

_FACTS_SCRIPT = (
    "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release; "
    "echo '--splitbrain--'; uname -r; uname -m; uname -n"
)


class NoSuchProcess(RemoteError):
    """No process with the given pid or name runs on the host."""


@dataclass(frozen=True)
class LinuxFacts:
    """What a Linux host is: distribution, kernel, architecture, host name."""

    hostname: str
    os_id: str
    os_name: str
    os_version: str
    kernel: str
    architecture: str
    os_release: dict[str, str] = field(default_factory=dict, compare=False)


def parse_os_release(text: str) -> dict[str, str]:
    """``/etc/os-release`` as a dict (values unquoted the way a shell would)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key.strip()] = parts[0] if parts else ""
    return values


def parse_facts(stdout: str, *, host: str) -> LinuxFacts:
    release_text, sep, rest = stdout.partition("--splitbrain--")
    lines = rest.split()
    if not sep or len(lines) < 3:
        raise OutputFormatError(
            f"facts from {host} are incomplete (no /etc/os-release or uname output): check that "
            "the login shell is a POSIX shell"
        )
    release = parse_os_release(release_text)
    return LinuxFacts(
        hostname=lines[2], os_id=release.get("ID", "linux"),
        os_name=release.get("PRETTY_NAME", release.get("NAME", "Linux")),
        os_version=release.get("VERSION_ID", ""), kernel=lines[0], architecture=lines[1],
        os_release=release,
    )


def parse_dpkg(stdout: str) -> dict[str, str]:
    """``dpkg-query -W -f '${Package}\\t${Version}\\t${db:Status-Abbrev}\\n'`` -> installed."""
    found = {}
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].startswith("ii"):
            found[parts[0].split(":", 1)[0]] = parts[1]
    return found


def parse_rpm(stdout: str) -> dict[str, str]:
    """``rpm -q --qf '%{NAME}\\t%{VERSION}-%{RELEASE}\\n'`` -> installed."""
    found = {}
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and " " not in parts[0]:
            found[parts[0]] = parts[1]
    return found


def parse_ps(stdout: str) -> list[tuple[int, str]]:
    """``ps -e -o pid=,comm=`` -> (pid, name); names may contain spaces."""
    procs = []
    for line in stdout.splitlines():
        pid, _, comm = line.strip().partition(" ")
        if pid.isdigit():
            procs.append((int(pid), comm.strip()))
    return procs


class LinuxHost(RemoteHost):
    """A Linux host over SSH: facts, nft black holes, links, units and processes."""

    def command_line(self, argv: Sequence[str]) -> str:
        """The remote shell line for ``argv`` (with ``sudo -n --`` when configured)."""
        if not argv:
            raise UnsafeArgument("an empty command cannot be run")
        words = [str(a) for a in argv]
        if self.target.sudo:
            words = ["sudo", "-n", "--", *words]
        return shlex.join(words)

    def run_argv(self, argv: Sequence[str], *, check: bool = True,
                 timeout: float | None = None, stdin: str | None = None) -> CommandResult:
        """Run ``argv`` with every word quoted; the ``CommandRunner`` entry point."""
        return self.execute(self.command_line(argv), check=check, timeout=timeout, stdin=stdin)

    def execute(self, command: str, *, check: bool = True, timeout: float | None = None,
                stdin: str | None = None) -> CommandResult:
        """Without ``stdin``, through a shell kept open on the host (``harness.remote.shell``:
        no new session per command); with ``stdin``, through a session channel of its own."""
        if stdin is not None:
            return super().execute(command, check=check, timeout=timeout, stdin=stdin)
        return self.execute_kept(command, check=check, timeout=timeout)

    @property
    def shells(self) -> ShellPool:
        pool = self.__dict__.get("_shells")
        if pool is None:
            pool = self.__dict__.setdefault("_shells", ShellPool(self.target.where))
        return pool

    def execute_kept(self, line: str, *, check: bool = True,
                     timeout: float | None = None) -> CommandResult:
        """Run a complete command line through one of the host's kept shells."""
        return self._over_ssh(line, lambda transport: self.shells.run(transport, line, timeout),
                              check)

    def stream_argv(self, argv: Sequence[str], on_line: Callable[[str], None], *,
                    check: bool = True, timeout: float | None = None) -> CommandResult:
        """Run ``argv`` in a session channel of its own, handing each line it prints to
        ``on_line`` as it arrives (``harness.remote.shell.stream``)."""
        line = self.command_line(argv)
        return self._over_ssh(line, lambda transport: stream(
            transport, line, on_line, timeout=timeout, where=self.target.where), check)

    def _over_ssh(self, line: str, run: Callable[[Any], Output], check: bool) -> CommandResult:
        def on_transport(connection: Connection) -> tuple[int, str, str]:
            out = run(connection.client.get_transport())
            return out.exit_status, out.stdout, out.stderr
        return self.over_connection(line, on_transport, check)

    def close(self) -> None:
        self.shells.close()
        super().close()

    run = run_argv

    def run_script(self, script: str, *, check: bool = True,
                   timeout: float | None = None) -> CommandResult:
        """Run a fixed shell script with ``sh -c`` (never interpolate values into it)."""
        return self.run_argv(["sh", "-c", script], check=check, timeout=timeout)

    # -- facts ---------------------------------------------------------------------------

    def facts(self) -> LinuxFacts:
        return parse_facts(self.run_script(_FACTS_SCRIPT).stdout, host=self.name)

    def packages(self, names: Sequence[str] = ()) -> dict[str, str]:
        """Installed packages (all, or those of ``names``) -> version, via dpkg or rpm."""
        have = self.run_script("command -v dpkg-query || command -v rpm", check=False).stdout
        if "dpkg-query" in have:
            fmt = "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"
            out = self.run_argv(["dpkg-query", "-W", "-f", fmt, *names], check=False)
            return parse_dpkg(out.stdout)
        if "rpm" in have:
            args = ["-q", *names] if names else ["-qa"]
            out = self.run_argv(["rpm", *args, "--qf", "%{NAME}\\t%{VERSION}-%{RELEASE}\\n"],
                                check=False)
            return parse_rpm(out.stdout)
        raise OutputFormatError(
            f"{self.name} has neither dpkg-query nor rpm: package facts are unavailable there"
        )

    # -- network faults ------------------------------------------------------------------

    @property
    def nft(self) -> NftTable:
        """``table inet splitbrain`` on this host."""
        return NftTable(self)

    def _arm(self, tag: str | None, ttl_s: float | None, script: str | None) -> None:
        """Arm the node-side heal timer *before* a fault is applied (when a TTL is asked)."""
        if ttl_s is None:
            return
        if tag is None:
            raise UnsafeArgument("a fault with a TTL needs its tag (the fault id) to name the "
                                 "heal timer")
        deadman.arm(self, check_tag(tag), ttl_s, script)

    def _disarm(self, tag: str | None) -> None:
        if tag is not None:
            deadman.disarm(self, check_tag(tag))

    def black_hole(self, tag: str, *, peer: str | None = None, port: int | None = None,
                   protocol: str = "tcp", interface: str | None = None,
                   ttl_s: float | None = None, reset: bool = False) -> list[TaggedRule]:
        """Silently drop traffic to/from ``peer`` (and/or ``port``, ``interface``), tagged;
        with ``reset``, answer its TCP with resets instead (a cut, not a silence).

        With ``ttl_s``, the host first arms its own timer that removes these rules
        after that long, even if the harness dies (``harness.remote.deadman``).
        """
        self._arm(tag, ttl_s, None)
        return self.nft.black_hole(tag, peer=peer, port=port, protocol=protocol,
                                   interface=interface, reset=reset)

    def heal(self, tag: str) -> int:
        """Remove the rules of fault ``tag`` and cancel its timer; returns how many rules."""
        removed = self.nft.remove(check_tag(tag))
        deadman.disarm(self, tag)
        return removed

    def faults(self) -> dict[str, int]:
        """Tags of our rules in place -> how many rules each."""
        counts: dict[str, int] = {}
        for rule in self.nft.rules():
            if rule.tag is not None:
                counts[rule.tag] = counts.get(rule.tag, 0) + 1
        return counts

    def established(self, peer: str, port: int | None = None) -> list[str]:
        """This host's established TCP connections to ``peer`` (and ``port``), as ``ss``
        prints them (iproute2): how the host itself sees whether a session is up."""
        address = str(parse_address(peer).network_address)
        argv = ["ss", "-H", "-t", "-n", "state", "established", "dst", address]
        if port is not None:
            argv += ["dport", "=", f":{int(port)}"]
        return [line for line in self.run_argv(argv).stdout.splitlines() if line.strip()]

    def set_link(self, interface: str, *, up: bool, tag: str | None = None,
                 ttl_s: float | None = None) -> None:
        """``ip link set dev <interface> up|down``.

        Setting it down with ``tag`` and ``ttl_s`` arms the host to set it up again
        by itself; setting it up with ``tag`` cancels that timer.
        """
        check_interface(interface)
        if not up:
            self._arm(tag, ttl_s, deadman.link_up_script(interface))
        self.run_argv(["ip", "link", "set", "dev", interface, "up" if up else "down"])
        if up:
            self._disarm(tag)

    def link_is_up(self, interface: str) -> bool:
        out = self.run_argv(["ip", "-o", "link", "show", "dev", check_interface(interface)])
        if "<" not in out.stdout or ">" not in out.stdout:
            raise OutputFormatError(
                f"'ip -o link show dev {interface}' on {self.name} printed no flags: "
                f"{out.stdout.strip()[:80]!r}")
        flags = out.stdout.split("<", 1)[1].split(">", 1)[0].split(",")
        return "UP" in flags

    # -- services and processes ----------------------------------------------------------

    def unit(self, action: str, unit: str, *, tag: str | None = None,
             ttl_s: float | None = None) -> CommandResult:
        """``systemctl start|stop|restart -- <unit>``.

        ``stop`` with ``tag`` and ``ttl_s`` arms the host to start it again by itself;
        ``start`` with ``tag`` cancels that timer.
        """
        if action not in UNIT_ACTIONS:
            raise UnsafeArgument(f"systemctl action {action!r} is not one of {UNIT_ACTIONS}")
        if action == "stop":
            self._arm(tag, ttl_s, deadman.unit_start_script(unit))
        result = self.run_argv(["systemctl", action, "--", unit])
        if action == "start":
            self._disarm(tag)
        return result

    def unit_state(self, unit: str) -> str:
        """``systemctl is-active -- <unit>``: active, inactive, failed, activating, ..."""
        out = self.run_argv(["systemctl", "is-active", "--", unit], check=False)
        state = out.stdout.strip()
        if not state:
            out.check()
            raise OutputFormatError(f"systemctl printed no state for {unit!r} on {self.name}")
        return state

    def runs_systemd(self) -> bool:
        """Whether systemd is the host's init: ``/run/systemd/system`` exists (sd_booted)."""
        return self.run_argv(["test", "-d", "/run/systemd/system"], check=False).ok

    def service_state(self, service: str) -> tuple[str, str]:
        """(state, how it was read) of a daemon: ``systemctl is-active`` under systemd;
        on a host whose init is not systemd, whether a process named ``service`` runs
        ("running (pid ...)" or "not running")."""
        if self.runs_systemd():
            return self.unit_state(service), f"systemctl is-active -- {service}"
        pids = self.processes(service)
        how = (f"no systemd (/run/systemd/system absent): process named {service} "
               "(ps -e -o pid=,comm=)")
        if pids:
            return f"running (pid {', '.join(map(str, pids))})", how
        return "not running", how

    def processes(self, name: str) -> list[int]:
        """Pids of processes whose name (as the kernel keeps it) is exactly ``name``."""
        if not name or "\n" in name or "/" in name:
            raise UnsafeArgument(f"process name {name!r} must be a single name without '/'")
        wanted = name.encode()[:_COMM_LEN].decode(errors="ignore")
        out = self.run_argv(["ps", "-e", "-o", "pid=,comm="])
        return [pid for pid, comm in parse_ps(out.stdout) if comm == wanted]

    def signal(self, process: int | str, sig: Signal, *, tag: str | None = None,
               ttl_s: float | None = None) -> list[int]:
        """Send ``sig`` to a pid or to every process named ``process``; returns the pids.

        ``STOP`` with ``tag`` and ``ttl_s`` arms the host to ``CONT`` the same pids by
        itself (a freeze that always thaws); ``CONT`` with ``tag`` cancels that timer.
        """
        if sig not in SIGNALS:
            raise UnsafeArgument(f"signal {sig!r} is not one of {', '.join(SIGNALS)}")
        if isinstance(process, int):
            pids = [process]
        else:
            pids = self.processes(process)
            if not pids:
                raise NoSuchProcess(
                    f"no process named {process!r} runs on {self.name}: check the name with "
                    "'ps -e -o comm='"
                )
        if sig == "STOP":
            self._arm(tag, ttl_s, deadman.continue_script(pids))
        result = self.run_argv(["kill", "-s", sig, "--", *map(str, pids)], check=False)
        if not result.ok:
            raise NoSuchProcess(
                f"kill -s {sig} {' '.join(map(str, pids))} failed on {self.name}: "
                f"{result.stderr.strip()[:200] or 'no such process'}"
            )
        if sig == "CONT":
            self._disarm(tag)
        return pids
