"""The administrator's side of an HA replica: its status and the override.

``status`` is what ``splitbrain target ha status`` and ``GET /v1/ha`` show (states,
links, generation, resync progress, whether the device waits for an administrator,
recent events). ``mark_synchronized`` is StarWind's "mark as synchronized": this
replica's data wins and the partner resyncs from it in full (docs/ha.md). It is
refused where it would override a healthy partner or throw away writes the partner
provably acknowledged after this replica fell behind (unless forced).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.errors import SplitbrainError
from harness.target.ha.replica import ReplicaState, holds_newer_writes

if TYPE_CHECKING:
    from harness.target.ha.mirror import HaDevice


class MarkRefused(SplitbrainError):
    """Marking this replica synchronized would override a healthy, connected partner,
    or throw away writes the partner holds and this replica lacks."""

    exit_code = 2


def mark_synchronized(dev: HaDevice, *, force: bool = False) -> None:
    """Administrator override: this replica's data wins (full resync follows).

    Refused while a Synchronized partner is connected (nothing to override), and,
    unless ``force``, while the partner's last HELLO proves it holds acknowledged
    writes this replica lacks (it carried on alone past this one): the device picks
    that partner as the source by itself once it rejoins (e.g. after its disk-failure
    back-off), and marking this side would throw those writes away."""
    link = dev.session_link
    connected = link is not None and not link.lost.is_set()
    if connected and dev.partner_state is ReplicaState.SYNCHRONIZED:
        raise MarkRefused(f"HA device {dev.config.alias}: partner {dev.config.partner} "
                          "is connected and Synchronized; there is nothing to override")
    partner = dev.partner_summary
    if not force and partner is not None and holds_newer_writes(partner, dev.summary()):
        raise MarkRefused(
            f"HA device {dev.config.alias}: partner {partner.node} holds newer data "
            f"(generation {partner.generation} carried on past this replica's "
            f"{dev.meta.generation}) and becomes the source once it rejoins; mark it "
            "instead, or force this mark if its data is lost for good")
    dev.state = ReplicaState.SYNCHRONIZED
    dev.dirty_map_trusted = False
    dev.needs_administrator = False
    dev._save(dev.meta.with_event(
        "marked synchronized by an administrator", state=ReplicaState.SYNCHRONIZED,
        alone=True, forced=True, generation=dev.meta.generation + 1,
        partner_left_at=dev.meta.generation, consistent=True))
    if connected and link is not None:  # both were waiting: reconnect to re-plan
        link.fail("re-planning after mark-synchronized")


def status(dev: HaDevice) -> dict[str, Any]:
    resync = dev.resync
    return {
        "alias": dev.config.alias,
        "node": dev.config.node,
        "priority": dev.config.priority,
        "state": dev.state.value,
        "partner": dev.config.partner,
        "partner_state": dev.partner_state.value if dev.partner_state else "unknown",
        "generation": dev.meta.generation,
        "alone": dev.meta.alone,
        "sequencer": dev.is_sequencer,
        "sync_link": dev.sync.link is not None and not dev.sync.link.lost.is_set(),
        "heartbeat_link": (dev.heartbeat is not None and dev.heartbeat.link is not None
                           and not dev.heartbeat.link.lost.is_set()),
        "strategy": dev.config.strategy.value,
        "failover": dev.failover_phase,
        "dirty_regions": len(dev.dirty),
        "activity_log": {"active": len(dev.activity_log),
                         "suspect": len(dev.activity_log.suspect)},
        "resync": resync.progress() if resync is not None else None,
        "last_plan": dev.last_plan,
        "needs_administrator": dev.needs_administrator,
        "events": list(dev.meta.events[-10:]),
    }
