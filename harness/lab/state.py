"""The lab's state directory: what is running, so any process can act on it.

Layout of ``<state_dir>/`` (created 0700; secrets 0600)::

    lab.json          the lab record: inventory, backend, nodes, links (``LabRecord``)
    lab.lock          flock taken by every change of lab.json
    proxy.json        the fault proxy's control endpoint (host, port, token, pid, link ports)
    proxy-links.json  the link specs the proxy was started with
    token             the storage nodes' management token
    faults.jsonl      the fault journal of this lab (``harness.faults.journal``)
    nodes/<host>/     each storage node's config, data (image files) and ready file
    logs/             node and proxy logs

``lab down`` removes the whole directory once every process it names is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SplitbrainError
from harness.lab.node_process import NodeProcess
from harness.lab.proxy_daemon import write_private_json


class LabStateError(SplitbrainError):
    """No lab, or a lab state directory that cannot be used."""


def default_state_dir(site: str) -> Path:
    """``$SPLITBRAIN_LAB_DIR``, else ``$XDG_RUNTIME_DIR`` or /tmp: ``splitbrain-<uid>/<site>``."""
    if os.environ.get("SPLITBRAIN_LAB_DIR"):
        return Path(os.environ["SPLITBRAIN_LAB_DIR"])
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return Path(base) / f"splitbrain-{os.getuid()}" / site


@dataclass(frozen=True)
class LinkRecord:
    """One proxied link: the network and host it leads to, and both of its ends."""

    name: str
    network: str
    host: str
    roles: tuple[str, ...]
    listen: tuple[str, int]
    upstream: tuple[str, int]
    purpose: str  # "portal", "sync", "heartbeat"

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LinkRecord:
        return cls(
            d["name"],
            d["network"],
            d["host"],
            tuple(d["roles"]),
            tuple(d["listen"]),
            tuple(d["upstream"]),
            d["purpose"],
        )  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "network": self.network,
            "host": self.host,
            "roles": list(self.roles),
            "listen": list(self.listen),
            "upstream": list(self.upstream),
            "purpose": self.purpose,
        }


@dataclass
class LabRecord:
    inventory: str
    backend: str
    site: str
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    links: dict[str, LinkRecord] = field(default_factory=dict)
    proxy: NodeProcess | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "inventory": self.inventory,
            "backend": self.backend,
            "site": self.site,
            "nodes": {h: n.to_json() for h, n in self.nodes.items()},
            "links": {n: link.to_json() for n, link in self.links.items()},
            "proxy": self.proxy.to_json() if self.proxy else None,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LabRecord:
        return cls(
            d["inventory"],
            d["backend"],
            d["site"],
            {h: NodeProcess.from_json(n) for h, n in d.get("nodes", {}).items()},
            {n: LinkRecord.from_json(link) for n, link in d.get("links", {}).items()},
            NodeProcess.from_json(d["proxy"]) if d.get("proxy") else None,
            d.get("extra", {}),
        )


class LabState:
    """Reads and changes one lab's state directory under a lock."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def record_file(self) -> Path:
        return self.root / "lab.json"

    @property
    def endpoint_file(self) -> Path:
        return self.root / "proxy.json"

    @property
    def journal_file(self) -> Path:
        return self.root / "faults.jsonl"

    def node_dir(self, host: str) -> Path:
        return self.root / "nodes" / host

    def exists(self) -> bool:
        return self.record_file.exists()

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        (self.root / "logs").mkdir(exist_ok=True)
        (self.root / "nodes").mkdir(exist_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        if not self.root.is_dir():
            raise LabStateError(f"no lab state at {self.root}; start one with `splitbrain lab up`")
        fd = os.open(self.root / "lab.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def load(self) -> LabRecord:
        try:
            return LabRecord.from_json(json.loads(self.record_file.read_text()))
        except FileNotFoundError:
            raise LabStateError(
                f"no lab is up at {self.root} (no lab.json); start one with `splitbrain lab up`"
            ) from None
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise LabStateError(
                f"{self.record_file} is damaged ({exc}); "
                "run `splitbrain lab down --force` to clean up"
            ) from None

    def save(self, record: LabRecord) -> None:
        write_private_json(self.record_file, record.to_json())

    def update_node(self, host: str, node: NodeProcess) -> None:
        with self.locked():
            record = self.load()
            record.nodes[host] = node
            self.save(record)

    def endpoint(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.endpoint_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
