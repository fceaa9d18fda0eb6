"""The fault catalogue on real hosts: storage service, process, adapter, path, host pair.

Each fault acts on one host of the inventory through its remote driver
(``LinuxHost`` or ``WindowsHost``), is journaled before it is applied, arms the
host's own dead-man heal (``ttl_s``) before it breaks anything, and is healed on
scope exit, at session end and by ``splitbrain heal`` (``heal_from`` needs only
the journal record and the inventory file).

After applying, each fault **verifies that it took effect** and raises
``FaultNotEffective`` (a ``FaultError``; the base class then heals it) when the
host shows no change, so a fault that changed nothing is reported as a failed
injection and never counts as a pass:

| action | Linux | Windows | verified by |
|---|---|---|---|
| ``stop`` | ``systemctl stop`` the storage unit | ``Stop-Service`` | unit / service state |
| ``kill`` | ``kill -s KILL`` the storage process | ``Stop-Process -Force`` | the pids are gone |
| ``freeze`` | ``kill -s STOP`` | ``NtSuspendProcess`` | process state ``T`` / threads suspended |
| ``adapter-down`` | ``ip link set down`` | ``Disable-NetAdapter`` | link / adapter state |
| ``path-drop`` | nft drop, portal pair | firewall block | packets dropped / connection gone |
| ``pair-blackhole`` | nft drop, host pair (+port) | firewall block | the tagged rules in place |

Heal undoes the fault and verifies the host is back (unit active, process
running and not stopped, link up, rules gone), or raises ``HealError``.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from harness.errors import SplitbrainError
from harness.faults.fault import Fault, FaultError, HealError
from harness.faults.journal import FaultJournal
from harness.lab.inventory import load

DEFAULT_TTL_S = 600.0
VERIFY_S = 10.0
POLL_S = 0.05  # a verification poll is one round trip through a kept shell (harness.remote.shell)


class FaultNotEffective(FaultError):
    """A fault was applied but the host shows no change: a failed injection."""


def open_inventory_host(inventory: str, host: str) -> Any:
    """The remote driver of ``host`` in inventory file ``inventory``, its SSH connection
    kept for this process (``harness.remote.kept``)."""
    from harness.remote.kept import kept_host

    return kept_host(str(inventory), host, lambda: load(inventory).host(host))


def _is_linux(driver: Any) -> bool:
    return hasattr(driver, "black_hole")


def _poll(check: Any, within_s: float, step_s: float = 0.25) -> bool:
    """Whether ``check()`` becomes true within ``within_s`` (bounded; no endless loop)."""
    deadline = time.monotonic() + within_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step_s)


class RemoteHostFault(Fault):
    """A fault on one real host; subclasses implement ``_apply`` and ``_heal``."""

    #: how a host is reached from a journal record; tests point it at a test sshd
    opener: ClassVar[Any] = staticmethod(open_inventory_host)

    def __init__(self, inventory: Any, host: str, *, label: str, ttl_s: float = DEFAULT_TTL_S,
                 journal: FaultJournal | None = None, **details: Any) -> None:
        super().__init__(label, {"action": self.action, "host": host, "ttl_s": ttl_s,
                                 **details}, journal=journal)
        self.inventory, self.host, self.ttl_s, self.details = (
            str(inventory), host, ttl_s, details)

    action: ClassVar[str] = "?"
    #: what the verification after applying saw on the host, when that is the effect the
    #: chaos evidence asks for (a process gone or stopped, a path's connections reset);
    #: chaos takes it as the fault's live evidence (``harness.chaos.evidence``)
    proof: str | None = None

    def effect(self) -> str | None:
        """What shows on the host that the fault took effect (None: nothing yet)."""
        return self.proof

    def apply(self) -> None:
        try:
            with type(self).opener(self.inventory, self.host) as driver:
                self._apply(driver, self.undo_record())
        except FaultError:
            raise
        except SplitbrainError as exc:
            raise FaultError(f"cannot {self.action} on {self.host}: {exc}") from None

    def undo_record(self) -> dict[str, Any]:
        return {"inventory": self.inventory, "host": self.host, "tag": self.id,
                "ttl_s": self.ttl_s, **self.details}

    @classmethod
    def heal_from(cls, undo: dict[str, Any]) -> None:
        try:
            with cls.opener(undo["inventory"], undo["host"]) as driver:
                cls._heal(driver, undo)
        except HealError:
            raise
        except SplitbrainError as exc:
            raise HealError(f"cannot heal {cls.action} on {undo['host']}: {exc}") from None

    def _apply(self, driver: Any, undo: dict[str, Any]) -> None:
        raise NotImplementedError

    @classmethod
    def _heal(cls, driver: Any, undo: dict[str, Any]) -> None:
        raise NotImplementedError

    def not_effective(self, what: str) -> FaultNotEffective:
        return FaultNotEffective(f"failed injection: {self.action} {self.target} on {self.host} "
                                 f"changed nothing ({what})")


class RemoteServiceStop(RemoteHostFault):
    """Stop the storage service (systemd unit or Windows service); heal starts it."""

    kind = "remote-service-stop"
    action = "stop"

    def _apply(self, driver: Any, undo: dict[str, Any]) -> None:
        service = undo["service"]
        if _is_linux(driver):
            driver.unit("stop", service, tag=self.id, ttl_s=self.ttl_s)
            state = driver.unit_state(service)
            if state == "active":
                raise self.not_effective(f"unit {service} is still active")
        else:
            state = driver.stop_service(service, tag=self.id, ttl_s=self.ttl_s).status
            if state == "Running":
                raise self.not_effective(f"service {service} is still Running")

    @classmethod
    def _heal(cls, driver: Any, undo: dict[str, Any]) -> None:
        service = undo["service"]
        if _is_linux(driver):
            driver.unit("start", service, tag=undo["tag"])
            if driver.unit_state(service) != "active":
                raise HealError(f"unit {service} on {undo['host']} is not active after start")
        elif driver.start_service(service, tag=undo["tag"]).status != "Running":
            raise HealError(f"service {service} on {undo['host']} is not Running after start")


def _running(driver: Any, undo: dict[str, Any]) -> list[int]:
    if _is_linux(driver):
        return driver.processes(undo["process"])
    from harness.remote import powershell as ps

    rows = driver.powershell(
        "Get-Process -ErrorAction SilentlyContinue | Where-Object { $_.ProcessName -eq "
        + ps.literal(undo["process"]) + " } | Select-Object Id",
        operation=f"Get-Process {undo['process']!r}")
    return [int(r["Id"]) for r in rows]


class RemoteProcessKill(RemoteHostFault):
    """Kill the storage process (SIGKILL / Stop-Process); heal restarts its service and
    waits until the process runs again."""

    kind = "remote-process-kill"
    action = "kill"

    def _apply(self, driver: Any, undo: dict[str, Any]) -> None:
        if _is_linux(driver):
            pids = driver.signal(undo["process"], "KILL")
        else:
            from harness.remote import windows_process

            pids = windows_process.kill(driver, undo["process"])
        t0 = time.monotonic()
        if not _poll(lambda: not set(pids) & set(_running(driver, undo)), VERIFY_S, POLL_S):
            raise self.not_effective(f"pids {pids} of {undo['process']} still run")
        self.proof = (f"process of {self.host} is gone: pids {', '.join(map(str, pids))} of "
                      f"{undo['process']} no longer run {time.monotonic() - t0:.2f} s after "
                      "the kill (read on the host)")

    @classmethod
    def _heal(cls, driver: Any, undo: dict[str, Any]) -> None:
        service = undo.get("service")
        if service:
            if _is_linux(driver):
                if driver.unit_state(service) != "active":
                    driver.unit("start", service)
            else:
                driver.start_service(service)
        if not _poll(lambda: bool(_running(driver, undo)), VERIFY_S):
            raise HealError(f"{undo['process']} does not run again on {undo['host']}"
                            + ("" if service else " (no [storage] service to start it)"))


def _stopped_states(driver: Any, pids: list[int]) -> list[str]:
    out = driver.run_argv(["ps", "-o", "stat=", "-p", ",".join(map(str, pids))],
                          check=False).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


class RemoteFreeze(RemoteHostFault):
    """Freeze the storage process (SIGSTOP / NtSuspendProcess); heal continues it."""

    kind = "remote-freeze"
    action = "freeze"

    def _apply(self, driver: Any, undo: dict[str, Any]) -> None:
        if _is_linux(driver):
            pids = driver.signal(undo["process"], "STOP", tag=self.id, ttl_s=self.ttl_s)
            # kill(2) only queues the signal: a busy host shows T when the target next runs
            states: list[str] = []

            def stopped() -> bool:
                states[:] = [s for s in _stopped_states(driver, pids) if not s.startswith("Z")]
                return bool(states) and all(s.startswith("T") for s in states)

            if not _poll(stopped, VERIFY_S, POLL_S):
                raise self.not_effective(f"{undo['process']} states {states}, not stopped "
                                         "(zombies left out)")
            self.proof = (f"process of {self.host} is stopped (SIGSTOP), sockets open: pids "
                          f"{', '.join(map(str, pids))} of {undo['process']} in state "
                          f"{', '.join(states)} (ps on the host)")
        else:
            from harness.remote import windows_process

            pids = windows_process.suspend(driver, undo["process"], tag=self.id,
                                           ttl_s=self.ttl_s)
            if not windows_process.threads_suspended(driver, pids):
                raise self.not_effective(f"threads of {pids} are not all suspended")
            self.proof = (f"process of {self.host} is stopped (suspended), sockets open: every "
                          f"thread of pids {', '.join(map(str, pids))} of {undo['process']} "
                          "is suspended")

    @classmethod
    def _heal(cls, driver: Any, undo: dict[str, Any]) -> None:
        pids = _running(driver, undo)
        if _is_linux(driver):
            if pids:
                driver.run_argv(["kill", "-s", "CONT", "--", *map(str, pids)], check=False)
            from harness.remote import deadman

            deadman.disarm(driver, undo["tag"])
            if pids and not _poll(lambda: not any(s.startswith("T") for s in
                                                  _stopped_states(driver, pids)),
                                  VERIFY_S, POLL_S):
                raise HealError(f"{undo['process']} on {undo['host']} is still stopped")
        else:
            from harness.remote import windows_process

            if pids:
                windows_process.resume(driver, pids, tag=undo["tag"])


class RemoteAdapterDown(RemoteHostFault):
    """Take a host's adapter on one network down (the sync adapter, typically)."""

    kind = "remote-adapter-down"
    action = "adapter-down"

    def _apply(self, driver: Any, undo: dict[str, Any]) -> None:
        name = undo["interface"]
        if _is_linux(driver):
            driver.set_link(name, up=False, tag=self.id, ttl_s=self.ttl_s)
            if driver.link_is_up(name):
                raise self.not_effective(f"link {name} is still up")
            self.proof = f"{self.host}'s {undo['network']} link {name} is down (ip link)"
        else:
            driver.disable_adapter(name, tag=self.id, ttl_s=self.ttl_s)
            status = {a.name: a.status for a in driver.net_adapters()}.get(name)
            if status != "Disabled":
                raise self.not_effective(f"adapter {name} is {status}")
            self.proof = f"{self.host}'s {undo['network']} adapter {name} is Disabled"

    @classmethod
    def _heal(cls, driver: Any, undo: dict[str, Any]) -> None:
        name = undo["interface"]
        if _is_linux(driver):
            driver.set_link(name, up=True, tag=undo["tag"])
            if not driver.link_is_up(name):
                raise HealError(f"link {name} on {undo['host']} is still down")
        else:
            driver.enable_adapter(name, tag=undo["tag"])
            status = {a.name: a.status for a in driver.net_adapters()}.get(name)
            if status == "Disabled":
                raise HealError(f"adapter {name} on {undo['host']} is still disabled")


class RemotePeerBlock(RemoteHostFault):
    """Drop traffic between a host and one peer address (and port): a host pair, or one
    MPIO path (``require_drops``: the rule counters must show dropped packets, or, on
    Windows, the iSCSI connection to the peer must be gone)."""

    kind = "remote-peer-block"
    action = "pair-blackhole"

    def _apply(self, driver: Any, undo: dict[str, Any]) -> None:
        peer, port = undo["peer"], undo.get("port")
        if _is_linux(driver):
            added = driver.black_hole(self.id, peer=peer, port=port, ttl_s=self.ttl_s,
                                      reset=bool(undo.get("reset")))
            if not added or driver.faults().get(self.id, 0) != len(added):
                raise self.not_effective("its nft rules are not in place")
            if undo.get("require_drops"):
                self._require_drops(driver, peer, port, reset=bool(undo.get("reset")))
        else:
            if not driver.block(self.id, peer=peer, port=port, ttl_s=self.ttl_s):
                raise self.not_effective("its firewall rules are not in place")
            if undo.get("require_drops"):
                if not _poll(lambda: not [c for c in driver.iscsi_connections()
                                          if c.target_address == peer], VERIFY_S):
                    raise self.not_effective(
                        f"the iSCSI connection to {peer} is still up ({VERIFY_S:g} s): Windows "
                        "Firewall does not cut established connections")
                self.proof = (f"MPIO path {self.host}->{peer} is down: {self.host} has no "
                              f"iSCSI connection to {peer} left (Get-IscsiConnection)")

    def _require_drops(self, driver: Any, peer: str, port: int | None, *, reset: bool) -> None:
        """The rules must have dropped (or, cutting, reset) packets of that path, and, when
        cutting, the node's TCP connections to the portal must be gone: the initiator's
        session went down, as the node itself shows it (``ss``)."""
        counted: list[int] = []

        def dropped() -> bool:
            counted[:] = [sum(r.packets for r in driver.nft.rules(self.id))]
            return counted[0] > 0

        if not _poll(dropped, VERIFY_S, POLL_S):
            raise self.not_effective(f"no packet to or from {peer}:{port} was dropped in "
                                     f"{VERIFY_S:g} s; is that path in use?")
        if not reset:
            return
        left: list[str] = []

        def reset_gone() -> bool:
            left[:] = driver.established(peer, port)
            return not left

        if not _poll(reset_gone, VERIFY_S, POLL_S):
            raise self.not_effective(f"{len(left)} TCP connection(s) to {peer}:{port} still "
                                     f"established {VERIFY_S:g} s after the reset rules")
        self.proof = (f"MPIO path {self.host}->{peer}:{port} is down: its TCP connections "
                      f"were reset ({counted[0]} packet(s) rejected by the fault's rules) and "
                      f"{self.host} has none established to {peer}:{port} (ss)")

    @classmethod
    def _heal(cls, driver: Any, undo: dict[str, Any]) -> None:
        driver.heal(undo["tag"])
        left = (undo["tag"] in driver.faults()) if _is_linux(driver) else bool(
            driver.firewall_rules(undo["tag"]))
        if left:
            raise HealError(f"rules of fault {undo['tag']} are still on {undo['host']}")

    def dropped(self) -> int | None:
        """Packets the fault's rules dropped so far (Linux; None on Windows)."""
        with type(self).opener(self.inventory, self.host) as driver:
            if not _is_linux(driver):
                return None
            return sum(r.packets for r in driver.nft.rules(self.id))

    def effect(self) -> str | None:
        if self.proof is not None or not self.active:
            return self.proof
        try:
            n = self.dropped()
        except SplitbrainError:
            return None
        port = self.details.get("port")
        return (f"{n} packet(s) between {self.host} and {self.details['peer']}"
                + (f":{port}" if port else "") + " dropped by the fault's rules") if n else None


class RemotePathDrop(RemotePeerBlock):
    """One MPIO path down: a cluster node's traffic to one portal, which must stop."""

    kind = "remote-path-drop"
    action = "path-drop"
