"""Configuration of one node's side of an HA device."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.target.defects import Defect
from harness.target.ha.replica import FailoverStrategy, InitialSync

Address = tuple[str, int]


@dataclass(frozen=True)
class HaTimeouts:
    #: silence on the sync link (or an unanswered order) that counts as sync loss;
    #: a node that carries on alone also waits this long (the fence, docs/ha.md)
    sync_s: float = 1.0
    #: how long to wait for a sign of life on the heartbeat link after sync loss
    heartbeat_s: float = 0.5
    witness_s: float = 1.0


@dataclass(frozen=True)
class HaDeviceConfig:
    alias: str  # the device's name, e.g. HA1 (the partner's target is HA1Partner)
    node: str  # this node
    priority: int  # 1 is the highest; the sequencer and the survivor of sync loss
    partner: str
    partner_priority: int
    state_dir: Path
    #: the lower-priority node dials, the higher-priority node listens
    sync_listen: Address | None = None
    partner_sync: Address | None = None
    heartbeat_listen: Address | None = None
    partner_heartbeat: Address | None = None
    strategy: FailoverStrategy = FailoverStrategy.HEARTBEAT
    witness: Address | None = None
    initial_sync: InitialSync = InitialSync.NONE
    #: with initial_sync = from-partner: the node whose data is copied
    initial_source: str | None = None
    region_bytes: int = 1024 * 1024
    timeouts: HaTimeouts = field(default_factory=HaTimeouts)
    #: deliberate defect modes (harness.target.defects), for the defect zoo only
    defects: frozenset[Defect] = frozenset()

    def __post_init__(self) -> None:
        if self.priority == self.partner_priority:
            raise ValueError(f"HA device {self.alias}: {self.node} and {self.partner} "
                             f"both have priority {self.priority}; give them different ones")
        if self.strategy is FailoverStrategy.NODE_MAJORITY and self.witness is None:
            raise ValueError(f"HA device {self.alias}: strategy node-majority needs a witness")
        if self.dials:
            if self.partner_sync is None:
                raise ValueError(f"HA device {self.alias}: {self.node} has the lower priority "
                                 "and must dial: set the partner's sync address")
        elif self.sync_listen is None:
            raise ValueError(f"HA device {self.alias}: {self.node} has the higher priority "
                             "and must listen: set its sync address")

    @property
    def dials(self) -> bool:
        """Whether this node dials the links (it has the lower priority)."""
        return self.priority > self.partner_priority
