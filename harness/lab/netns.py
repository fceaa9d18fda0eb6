"""Network-namespace primitives for the netns lab backend (root, Linux).

The model: a lab run owns every namespace whose name starts with its prefix,
``sb-<run>-`` (``namespace_name(run, host)``). Each host is one namespace; each
network is a Linux bridge inside a dedicated *switch* namespace, and a host joins
a network through a veth pair whose host end lives in the host namespace and
whose other end is a port of that bridge. Nothing here creates an interface,
address, route or nftables rule in the root namespace, so the machine's own
networking is never touched. Every link we create carries the alias
``splitbrain:<owner namespace>``, and every nftables rule lives in
``table inet splitbrain`` with a ``splitbrain:<tag>`` comment, so both can be
found again and removed by ``sweep`` after a crashed run.

Every operation is idempotent: adding what exists or deleting what is gone is a
no-op, so setup can heal a previous run's leftovers and teardown can run twice.
Without root (or without ``ip``/``nft``) the functions raise ``NotRoot`` /
``ToolMissing`` with a one-line reason, never a bare ``PermissionError``.

A ``Namespace`` is also a ``CommandRunner``: ``ns.run_argv([...])`` runs a
command inside it, ``ns.nft`` is its ``NftTable``, and ``ns.socket()`` makes a
socket that lives in it, so tests can prove reachability with real TCP connects
from inside the lab without any process of their own in the root namespace.
"""

from __future__ import annotations

import ctypes
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.errors import SplitbrainError
from harness.remote.errors import CommandTimedOut
from harness.remote.nftables import NftTable, check_interface
from harness.remote.result import CommandResult

PREFIX = "sb-"
ALIAS_PREFIX = "splitbrain:"
NETNS_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class NetnsError(SplitbrainError):
    """Base of the netns backend's errors."""


class NotRoot(NetnsError):
    """Network namespaces need root."""


class ToolMissing(NetnsError):
    """A required program (ip, nft) is not installed."""


class BadName(NetnsError):
    """A namespace, bridge or interface name cannot be used."""


class NamespaceMissing(NetnsError):
    """The namespace is gone (swept, or its lab torn down); so is everything in it."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotRoot(
            "network namespaces need root: run as root (e.g. sudo), or use the loopback lab "
            "backend, which needs no privileges"
        )


def require_tools(*, nft: bool = False) -> None:
    needs = [("ip", "iproute2")] + ([("nft", "nftables")] if nft else [])
    for program, package in needs:
        if shutil.which(program) is None:
            raise ToolMissing(
                f"'{program}' is not installed on this machine: install the Debian package "
                f"{package} (apt-get install {package})"
            )


def new_run_id() -> str:
    """A short random run id for ``namespace_name`` (6 hex digits)."""
    return secrets.token_hex(3)


def namespace_name(run: str, host: str) -> str:
    """``sb-<run>-<host>``: the name of ``host``'s namespace in lab run ``run``."""
    name = f"{PREFIX}{run}-{host}"
    if not _NAME.fullmatch(run) or not _NAME.fullmatch(host) or len(name) > 64:
        raise BadName(
            f"cannot name a namespace for run {run!r} and host {host!r}: use letters, digits, "
            "'_', '.' and '-' only, at most 64 characters in all"
        )
    return name


def _check_prefix(prefix: str) -> str:
    if not prefix.startswith(PREFIX) or not re.fullmatch(r"[A-Za-z0-9_.-]+", prefix):
        raise BadName(
            f"namespace prefix {prefix!r} must start with {PREFIX!r} and use letters, digits, "
            "'_', '.' and '-': only names splitbrain made can be swept"
        )
    return prefix


def _run(
    argv: Sequence[str],
    *,
    host: str = "localhost",
    check: bool = True,
    timeout: float | None = 30.0,
    stdin: str | None = None,
) -> CommandResult:
    started = time.monotonic_ns()
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise CommandTimedOut(
            f"{shlex.join(argv)!r} did not finish within {timeout} s in {host}: "
            "check what it waits for"
        ) from None
    except FileNotFoundError:
        raise ToolMissing(
            f"'{argv[0]}' is not installed: install the package that provides it"
        ) from None
    result = CommandResult(
        host=host,
        command=shlex.join(argv),
        exit_status=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        duration_ns=time.monotonic_ns() - started,
    )
    return result.check() if check else result


def list_namespaces(prefix: str = PREFIX) -> list[str]:
    """Names of the namespaces that start with ``prefix``."""
    require_tools()
    out = _run(["ip", "netns", "list"]).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return sorted(n for n in names if n.startswith(prefix))


@dataclass(frozen=True)
class Namespace:
    """One network namespace we created, usable as a ``CommandRunner``."""

    name: str

    def run_argv(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float | None = 30.0,
        stdin: str | None = None,
    ) -> CommandResult:
        """Run ``argv`` inside this namespace (``ip netns exec``); no shell is involved."""
        self.require()
        return _run(
            ["ip", "netns", "exec", self.name, *argv],
            host=self.name,
            check=check,
            timeout=timeout,
            stdin=stdin,
        )

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen:
        """Start a long-running process inside this namespace (caller owns it)."""
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)  # type: ignore[call-overload]

    @property
    def nft(self) -> NftTable:
        """``table inet splitbrain`` of this namespace."""
        return NftTable(self)

    def exists(self) -> bool:
        return os.path.exists(os.path.join(NETNS_DIR, self.name))

    def require(self) -> None:
        """Raise ``NamespaceMissing`` unless this namespace exists.

        Heal code can catch it: a fault inside a namespace that is gone is gone too.
        """
        if not self.exists():
            raise NamespaceMissing(
                f"network namespace {self.name} does not exist (swept or torn down): "
                "recreate the lab with 'splitbrain lab up'"
            )

    def pids(self) -> list[int]:
        out = _run(["ip", "netns", "pids", self.name], check=False).stdout
        return [int(p) for p in out.split() if p.isdigit()]

    def has_link(self, ifname: str) -> bool:
        return _run(["ip", "-n", self.name, "link", "show", "dev", ifname], check=False).ok

    def set_link(self, ifname: str, *, up: bool) -> None:
        """``ip link set dev <ifname> up|down`` in this namespace (idempotent by nature)."""
        check_interface(ifname)
        self.require()
        _run(["ip", "-n", self.name, "link", "set", "dev", ifname, "up" if up else "down"])

    def link_is_up(self, ifname: str) -> bool:
        self.require()
        out = _run(["ip", "-n", self.name, "-o", "link", "show", "dev", ifname]).stdout
        flags = out.split("<", 1)[1].split(">", 1)[0].split(",") if "<" in out else []
        return "UP" in flags

    def add_address(self, ifname: str, cidr: str) -> None:
        """Give ``ifname`` the address ``cidr`` (``ip addr replace``: idempotent)."""
        check_interface(ifname)
        self.require()
        _run(["ip", "-n", self.name, "addr", "replace", cidr, "dev", ifname])

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket that belongs to this namespace (created by a thread that entered it)."""
        return socket_in(self.name, family, kind)

    def connect_tcp(self, address: str, port: int, timeout: float) -> socket.socket:
        """A TCP connection from inside this namespace; raises ``OSError`` on failure."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = self.socket(family)
        try:
            sock.settimeout(timeout)
            sock.connect((address, port))
        except BaseException:
            sock.close()
            raise
        return sock

    def listen_tcp(self, address: str, port: int = 0) -> socket.socket:
        """A listening TCP socket inside this namespace (port 0: a free port)."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = self.socket(family)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(16)
        return sock


def socket_in(
    namespace: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM
) -> socket.socket:
    """Create a socket in ``namespace`` without moving this process.

    A helper thread enters the namespace with setns(2) (network namespaces are
    per thread), creates the socket and exits; the socket keeps its namespace for
    its whole life, whichever thread uses it afterwards.
    """
    require_root()
    libc = ctypes.CDLL(None, use_errno=True)
    outcome: dict[str, object] = {}

    def enter_and_create() -> None:
        try:
            fd = os.open(os.path.join(NETNS_DIR, namespace), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            outcome["error"] = BadName(
                f"network namespace {namespace!r} does not exist: create it first (add_namespace)"
            )
            return
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                outcome["error"] = NetnsError(
                    f"cannot enter network namespace {namespace!r}: {os.strerror(err)}"
                )
                return
            outcome["socket"] = socket.socket(family, kind)
        finally:
            os.close(fd)

    worker = threading.Thread(target=enter_and_create, name=f"setns-{namespace}")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["socket"]  # type: ignore[return-value]


def add_namespace(name: str) -> Namespace:
    """Create namespace ``name`` (with its loopback up); return it if it exists already."""
    require_root()
    require_tools()
    if not name.startswith(PREFIX) or not _NAME.fullmatch(name):
        raise BadName(f"namespace name {name!r} must come from namespace_name(run, host)")
    ns = Namespace(name)
    if not ns.exists():
        result = _run(["ip", "netns", "add", name], check=False)
        if not result.ok and "File exists" not in result.stderr:
            result.check()
    ns.set_link("lo", up=True)
    return ns


def _stop_processes(ns: Namespace) -> list[int]:
    """SIGKILL every process still running in ``ns`` (all of them are ours)."""
    killed = []
    for pid in ns.pids():
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    return killed


def delete_namespace(name: str) -> list[int]:
    """Kill what runs in namespace ``name`` and delete it; returns the pids killed."""
    require_root()
    require_tools()
    ns = Namespace(name)
    if not ns.exists():
        return []
    killed = _stop_processes(ns)
    result = _run(["ip", "netns", "delete", name], check=False)
    if not result.ok and ns.exists():
        result.check()
    return killed


def _mark(ns: Namespace, ifname: str) -> None:
    _run(["ip", "-n", ns.name, "link", "set", "dev", ifname, "alias", ALIAS_PREFIX + ns.name])


def add_bridge(ns: Namespace, bridge: str) -> None:
    """Create bridge ``bridge`` in ``ns`` (the switch namespace) and bring it up."""
    check_interface(bridge)
    if not ns.has_link(bridge):
        _run(["ip", "-n", ns.name, "link", "add", "name", bridge, "type", "bridge"])
        _mark(ns, bridge)
    ns.set_link(bridge, up=True)


def add_veth(a: Namespace, a_if: str, b: Namespace, b_if: str) -> None:
    """Create the veth pair ``a:a_if`` <-> ``b:b_if`` directly in both namespaces, both up."""
    check_interface(a_if)
    check_interface(b_if)
    if not a.has_link(a_if):
        _run(
            [
                "ip",
                "-n",
                a.name,
                "link",
                "add",
                "name",
                a_if,
                "type",
                "veth",
                "peer",
                "name",
                b_if,
                "netns",
                b.name,
            ]
        )
        _mark(a, a_if)
        _mark(b, b_if)
    a.set_link(a_if, up=True)
    b.set_link(b_if, up=True)


def attach(
    host: Namespace,
    host_if: str,
    switch: Namespace,
    bridge: str,
    port_if: str,
    cidr: str | None = None,
) -> None:
    """Plug ``host`` into ``bridge``: a veth whose ``port_if`` end is a bridge port."""
    add_bridge(switch, bridge)
    add_veth(host, host_if, switch, port_if)
    _run(["ip", "-n", switch.name, "link", "set", "dev", port_if, "master", bridge])
    if cidr is not None:
        host.add_address(host_if, cidr)


@dataclass
class SweepReport:
    """What ``sweep`` removed."""

    namespaces: list[str] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.namespaces or self.processes or self.links)


def _root_links_marked(prefix: str) -> list[str]:
    out = _run(["ip", "-o", "link", "show"]).stdout
    names = []
    for line in out.splitlines():
        if f"alias {ALIAS_PREFIX}{prefix}" in line:
            names.append(line.split(":", 2)[1].strip().split("@", 1)[0])
    return names


def sweep(prefix: str) -> SweepReport:
    """Remove everything splitbrain made under ``prefix``: namespaces (with their links,
    bridges, addresses, nftables tables and processes) and any marked root-namespace link.

    Used at lab setup and after a crashed run. ``prefix`` must start with ``sb-``;
    pass a run's own prefix (``sb-<run>-``) so concurrent runs are left alone.
    """
    _check_prefix(prefix)
    require_root()
    require_tools()
    report = SweepReport()
    for name in list_namespaces(prefix):
        report.processes += delete_namespace(name)
        report.namespaces.append(name)
    for link in _root_links_marked(prefix):
        if _run(["ip", "link", "delete", "dev", link], check=False).ok:
            report.links.append(link)
    left = list_namespaces(prefix)
    if left:
        raise NetnsError(
            f"sweep of {prefix!r} left namespaces {', '.join(left)}: see 'ip netns pids <name>' "
            "for processes that would not die"
        )
    return report
