"""The site a validation runs against: the system under test plus what checks need of it.

``ValidationSite`` wraps the ``sut`` (``fixtures.sut.SystemUnderTest``: the same
object the suites get) and adds the choices every check makes the same way:
which hosts are cluster nodes (one initiator each), which devices a
destructive check may touch (every device of a lab; on a real site those
marked ``test = true``,
and not in use: no initiator registered on it), the latency threshold, and how to
reach a host (a lab namespace, or the remote drivers for a real host).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.lab.inventory import HostRole, Inventory

#: Validate Disk Access Latency: threshold when the inventory's budgets name none
#: (budget ``disk_latency_s``); Microsoft publishes no cut-off, so it is configurable.
DEFAULT_DISK_LATENCY_S = 0.1
#: seed's minimum configuration: a quorum device of at least 1024 MB
QUORUM_MIN_BYTES = 1024 * 1024 * 1024


@dataclass
class ValidationSite:
    """A system under test seen by the validation checks."""

    sut: Any
    remote_retry: Any = None  # harness.remote.ssh.RetryPolicy for real hosts
    #: hosts that did not answer in this run, with the driver's line: not asked again
    unreachable: dict[str, str] = field(default_factory=dict)

    @property
    def inventory(self) -> Inventory:
        return self.sut.inventory  # type: ignore[no-any-return]

    @property
    def name(self) -> str:
        return self.inventory.site.name

    @property
    def lab(self) -> Any:
        return self.sut.lab

    @property
    def is_lab(self) -> bool:
        return self.sut.lab is not None

    @property
    def backend(self) -> str:
        """"loopback", "netns", or "remote" (a real site)."""
        if self.sut.lab is None:
            return "remote"
        return self.inventory.lab.backend if self.inventory.lab else "loopback"

    @property
    def cluster_nodes(self) -> list[str]:
        return [h.name for h in self.inventory.hosts_with_role(HostRole.CLUSTER_NODE)]

    @property
    def devices(self) -> Mapping[str, Any]:
        return self.sut.devices  # type: ignore[no-any-return]

    def initiator(self, node: str) -> Any:
        return self.sut.initiator(node)

    def is_test_device(self, alias: str) -> bool:
        """May checks write or reserve ``alias``? Every device of a lab; on a real site only
        a device marked ``test = true`` (a dedicated test LUN)."""
        return self.is_lab or bool(self.inventory.device(alias).test)

    def test_devices(self) -> tuple[list[Any], list[str]]:
        """(devices a destructive check may use, why each other device is left alone)."""
        chosen, skipped = [], []
        for alias, device in self.devices.items():
            if not self.is_test_device(alias):
                skipped.append(f"{alias} is not marked test = true (a dedicated test LUN) "
                               f"in {self.inventory.path}")
            else:
                chosen.append(device)
        return chosen, skipped

    @property
    def disk_latency_s(self) -> float:
        limits = self.sut.budget.limits
        return float(limits.get("disk_latency_s", DEFAULT_DISK_LATENCY_S))

    def host_access(self, name: str) -> Any:
        """A remote driver for a real host (``open_host``), or None without ``access``."""
        host = self.inventory.host(name)
        if host.access is None:
            return None
        from harness.remote import open_host

        return open_host(host, retry=self.remote_retry)

    @contextlib.contextmanager
    def remote(self, name: str) -> Iterator[Any]:
        """A connected remote driver for ``name``; a host that did not answer earlier in
        this run fails at once with the same line instead of being retried again."""
        from harness.remote.errors import HostUnreachable

        if name in self.unreachable:
            raise HostUnreachable(self.unreachable[name])
        try:
            with self.host_access(name) as driver:
                yield driver
        except HostUnreachable as exc:
            self.unreachable.setdefault(name, " ".join(str(exc).split()))
            raise
