"""The schedule of a chaos run: which faults exercise one HA device, and when.

The model: a chaos run breaks one HA device (two replicas on two storage hosts,
mirrored over a sync channel, reached over several iSCSI paths) in the three
ways a site actually breaks it, one fault at a time, Jepsen style:

- ``path-cut``: one iSCSI path (the proxy link ``<network>/<host>`` in front of one
  replica's portal) resets its connections; MPIO must fail over to another path;
- ``sync-blackhole``: the device's sync channel (``sync/<listener>/<alias>``)
  goes silent; the lower-priority replica must stop serving and resync after;
- ``secondary-kill``: the lower-priority replica's storage node is killed with
  SIGKILL and started again at heal; its paths fail, then it must resync.

The plan is computed from the inventory alone, so a seed gives the same plan on
every machine, before any lab exists. ``chaos_schedule`` deals the kinds in a
seeded shuffled order (every kind comes up before any repeats) and picks each
fault's target, length and the quiet gap before it with ``random.Random(seed)``;
the last fault heals before the workload ends. ``draw_schedule`` is the project's
one schedule generator: ``Density`` says how often and how long (``SPARSE``:
one at a time, as ``splitbrain run``; denser ones, with overlapping compound
faults and weighted kinds, for the nightly nemesis).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from harness.errors import SplitbrainError
from harness.faults.nemesis import FaultSpec, Schedule, Step
from harness.lab.ha_wiring import link_name
from harness.lab.inventory import HaDevice, Inventory, NetworkRole

FAULT_KINDS = ("path-cut", "sync-blackhole", "secondary-kill")


class ChaosPlanError(SplitbrainError):
    """The inventory or the options give a chaos run nothing sensible to break."""


@dataclass(frozen=True)
class DeviceFaults:
    """The faults that exercise one HA device, by kind, and what each one takes away."""

    device: str
    by_kind: dict[str, tuple[FaultSpec, ...]]
    # the replica hosts whose paths a fault takes away (to relate failover to it)
    hosts_lost: dict[FaultSpec, tuple[str, ...]]
    # the single path (network, host) a path cut takes away
    path_lost: dict[FaultSpec, tuple[str, str]]

    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in FAULT_KINDS if self.by_kind.get(k))


def choose_device(inventory: Inventory, alias: str | None = None) -> HaDevice:
    """The device a run exercises: ``alias``, else the first ``vm-storage`` HA device."""
    if alias is not None:
        if alias not in inventory.devices:
            raise ChaosPlanError(
                f"no HA device {alias!r} in {inventory.path}; devices: "
                + (", ".join(inventory.devices) or "none")
            )
        device = inventory.devices[alias]
    else:
        candidates = [d for d in inventory.devices.values() if d.purpose.value == "vm-storage"]
        if not candidates:
            raise ChaosPlanError(
                f"{inventory.path} has no HA device with purpose = \"vm-storage\"; "
                "add one or name a device with --device"
            )
        device = candidates[0]
    if len(device.replicas) != 2:
        raise ChaosPlanError(
            f"device {device.alias} in {inventory.path} has {len(device.replicas)} replicas; "
            "a chaos run needs an HA pair (two replicas)"
        )
    return device


def secondary(device: HaDevice) -> str:
    """The host of the lower-priority replica (the partner that dials the sync channel)."""
    return max(device.replicas, key=lambda r: r.priority).host


def device_faults(
    inventory: Inventory,
    device: HaDevice,
    *,
    path_action: str = "cut",
    links: Collection[str] | None = None,
) -> DeviceFaults:
    """Every fault of each kind for ``device``.

    ``path_action``: ``blackhole`` in a netns lab (it cannot reset connections);
    ``links``: the running lab's link names, when known (a lab that wires the sync
    channel as ``sync/<host>`` rather than ``sync/<host>/<alias>`` gets that name).
    """
    paths: list[FaultSpec] = []
    path_lost: dict[FaultSpec, tuple[str, str]] = {}
    hosts_lost: dict[FaultSpec, tuple[str, ...]] = {}
    for replica in sorted(device.replicas, key=lambda r: r.priority):
        host = inventory.host(replica.host)
        for net in sorted(host.addresses):
            if inventory.network(net).has_role(NetworkRole.ISCSI):
                spec = FaultSpec.of(path_action, f"{net}/{host.name}")
                paths.append(spec)
                path_lost[spec] = (net, host.name)
                hosts_lost[spec] = ()
    sync_nets = [
        n for n in sorted(inventory.hosts[device.primary.host].addresses)
        if inventory.network(n).has_role(NetworkRole.SYNC)
    ]
    partner = secondary(device)
    syncs = tuple(
        FaultSpec.of("blackhole", _sync_link(n, device.primary.host, device.alias, links))
        for n in sync_nets[:1]
    )
    for spec in syncs:
        hosts_lost[spec] = (partner,)  # the partner refuses I/O without its sync channel
    kill = FaultSpec.of("kill", partner)
    hosts_lost[kill] = (partner,)
    return DeviceFaults(
        device.alias,
        {"path-cut": tuple(paths), "sync-blackhole": syncs, "secondary-kill": (kill,)},
        hosts_lost,
        path_lost,
    )


def _sync_link(network: str, host: str, alias: str, links: Collection[str] | None) -> str:
    name = link_name(network, host, alias)
    if links is None or name in links or f"{network}/{host}" not in links:
        return name
    return f"{network}/{host}"


def parse_kinds(text: str | None) -> tuple[str, ...]:
    """``--faults path-cut,secondary-kill`` (``none``: no faults; None: every kind)."""
    if text is None:
        return FAULT_KINDS
    if text.strip() == "none":
        return ()
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise ChaosPlanError(
            f"--faults {text!r}: unknown fault kind {', '.join(unknown) or '(empty)'}; "
            f"use a comma-separated list of {', '.join(FAULT_KINDS)}, or none"
        )
    return kinds


@dataclass(frozen=True)
class Density:
    """How often faults come and how long they last.

    ``fault_s`` and ``gap_s`` are (low, high) ranges drawn uniformly; with
    ``relative`` they are fractions of the run's duration (at least ``min_fault_s``
    and ``min_gap_s``). ``overlap`` is the chance that the next fault starts while
    the previous one is still active (compound faults; never on the same target).
    """

    fault_s: tuple[float, float] = (0.15, 0.25)
    gap_s: tuple[float, float] = (0.10, 0.15)
    relative: bool = True
    overlap: float = 0.0
    min_fault_s: float = 1.0
    min_gap_s: float = 0.5
    tail_s: float = 0.5  # every fault heals this long before the run ends

    def check(self) -> Density:
        lo_hi = (*self.fault_s, *self.gap_s)
        if min(lo_hi) < 0 or self.fault_s[0] > self.fault_s[1] or self.gap_s[0] > self.gap_s[1]:
            raise ChaosPlanError(
                f"bad ranges fault_s={self.fault_s} gap_s={self.gap_s}; use 0 <= low <= high"
            )
        if not 0.0 <= self.overlap <= 1.0:
            raise ChaosPlanError(f"overlap {self.overlap} is a probability; use 0..1")
        return self

    def draw_fault(self, rng: random.Random, duration_s: float) -> float:
        x = rng.uniform(*self.fault_s)
        return max(self.min_fault_s, x * duration_s) if self.relative else x

    def draw_gap(self, rng: random.Random, duration_s: float) -> float:
        x = rng.uniform(*self.gap_s)
        return max(self.min_gap_s, x * duration_s) if self.relative else x


# one fault at a time, each 15-25 % of the run after a 10-15 % quiet gap (splitbrain run)
SPARSE = Density()


def conflicts(a: FaultSpec, b: FaultSpec) -> bool:
    """Two faults that may not be active together: the same target (one heal would undo
    the other's break)."""
    return a.target == b.target


def draw_schedule(
    by_kind: Mapping[str, Sequence[FaultSpec]],
    kinds: Sequence[str],
    *,
    seed: int,
    duration_s: float,
    density: Density = SPARSE,
    weights: Mapping[str, float] | None = None,
    max_faults: int | None = None,
) -> Schedule:
    """The one schedule generator: a seeded schedule over ``duration_s``.

    Kinds are dealt in a seeded shuffled order (every kind before any repeats)
    unless ``weights`` are given (then each fault's kind is drawn by weight); the
    target, length and quiet gap come from ``random.Random(seed)`` only, so a seed
    gives the same schedule on every machine. A fault that would not heal
    ``density.tail_s`` before the run ends is not scheduled. With
    ``density.overlap`` a fault may start inside the previous one (never on a
    target that is still broken).
    """
    density.check()
    usable = [k for k in kinds if by_kind.get(k)]
    if kinds and not usable:
        raise ChaosPlanError(
            f"the device offers none of the fault kinds {', '.join(kinds)}"
        )
    if weights is not None:
        usable = [k for k in usable if weights.get(k, 0.0) > 0]
    rng = random.Random(seed)
    steps: list[Step] = []
    deck: list[str] = []
    t = density.draw_gap(rng, duration_s)
    prev: Step | None = None
    while usable and (max_faults is None or len(steps) < max_faults):
        if weights is not None:
            kind = rng.choices(usable, [weights[k] for k in usable])[0]
        else:
            if not deck:
                deck = list(usable)
                rng.shuffle(deck)
            kind = deck.pop(0)
        spec = rng.choice(list(by_kind[kind]))
        length = density.draw_fault(rng, duration_s)
        start = t
        if prev is not None and density.overlap and rng.random() < density.overlap:
            start = prev.at_s + rng.uniform(0.0, prev.duration_s)
        active = [s for s in steps if s.at_s + s.duration_s > start]
        if any(conflicts(s.spec, spec) for s in active):
            start = max(s.at_s + s.duration_s for s in active if conflicts(s.spec, spec)) + 0.1
        if start + length > duration_s - density.tail_s:
            break
        step = Step(round(start, 3), round(length, 3), spec)
        steps.append(step)
        prev = step
        t = max(t, start + length) + density.draw_gap(rng, duration_s)
    return Schedule(tuple(sorted(steps, key=lambda s: s.at_s)), seed)


def chaos_schedule(
    faults: DeviceFaults,
    kinds: Sequence[str],
    *,
    seed: int,
    duration_s: float,
    max_faults: int | None = None,
    density: Density = SPARSE,
    weights: Mapping[str, float] | None = None,
) -> Schedule:
    """``draw_schedule`` over one device's faults."""
    try:
        return draw_schedule(faults.by_kind, kinds, seed=seed, duration_s=duration_s,
                             density=density, weights=weights, max_faults=max_faults)
    except ChaosPlanError as exc:
        raise ChaosPlanError(f"device {faults.device}: {exc}") from None


def kind_of(faults: DeviceFaults, spec: FaultSpec) -> str:
    """Which kind a spec of ``faults`` is (its action, for a spec from elsewhere)."""
    return next((k for k, specs in faults.by_kind.items() if spec in specs), spec.action)
