"""Chaos scenarios: one named way to break an HA device, run and judged end to end.

A ``Scenario`` is data: a family (``sync-link``, ``primary``, ``mpio``,
``split-brain``, ``double``, ``power-loss``, ``disk``), what it proves, and
its faults as ``FaultTemplate`` s written in the site's roles rather than its
names (``primary``, ``secondary``, ``sync``, ``heartbeat``, ``path:primary:0``,
``paths:secondary``, ``witness:primary``), so the same scenario runs on the lab
and on any site whose inventory has the device it needs. ``resolve`` turns the
templates into a scripted ``Schedule`` for one device.

``run_scenario`` runs it on a system under test in phases: steady state (every
replica Synchronized, every path up), workload from every cluster node (shared
and private regions), each fault injected with *evidence that it took effect*,
heal, a bounded wait for Synchronized, then every checker. It returns one
``CheckResult`` (kind ``chaos``, category ``Chaos``, label ``family``): a fault
without evidence is a failed injection, never a pass; split brain is reported
in those words, as the documented risk (Warning) where the strategy allows it,
as a failure where it does not or where the device merged it silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.chaos.evidence import FaultEvidence, LiveProbe, judge
from harness.chaos.runner import ChaosRun, RunError, RunOutcome, RunSettings
from harness.chaos.schedule import DeviceFaults
from harness.errors import SplitbrainError
from harness.faults.nemesis import FaultSpec, Schedule, Step
from harness.lab.inventory import HaDevice, HostRole, Inventory, NetworkRole

FAMILIES = ("sync-link", "primary", "mpio", "split-brain", "double", "power-loss", "disk")
# bytes at the start of the device a scenario's workload writes: a few seconds of writes
# overlap densely there, and the paths read back only that much (the replica images are
# still checked whole)
SPAN_BYTES = 32 << 20


class ScenarioError(RunError):
    """A scenario that cannot run here (unknown name, or the inventory lacks what it needs)."""


@dataclass(frozen=True)
class FaultTemplate:
    """One fault of a scenario, in roles: ``at_s`` after the workload starts, for
    ``duration_s``; ``target`` is a role expression (see the module docstring)."""

    at_s: float
    duration_s: float
    action: str
    target: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, at_s: float, duration_s: float, action: str, target: str,
           **params: Any) -> FaultTemplate:
        return cls(at_s, duration_s, action, target, tuple(sorted(params.items())))


@dataclass(frozen=True)
class Scenario:
    name: str
    family: str
    proves: str
    faults: tuple[FaultTemplate, ...]
    duration_s: float = 0.0  # 0: until 1.5 s after the last fault heals (at least 4 s)
    strategy: str | None = None  # "heartbeat" or "node-majority" the device must use
    split_brain: str = "forbidden"  # "forbidden" | "allowed" (the strategy's documented risk)
    settle_s: float | None = None  # bounded wait for Synchronized after the run
    writers: int = 4
    queue_depth: int = 2
    # faults (indexes) during which a full outage is correct (no replica may serve, e.g.
    # the survivor killed while its partner is still Synchronizing): no failover expected
    outage: tuple[int, ...] = ()
    # bytes of the shared region both cluster nodes overlap on (0: half the device)
    shared_bytes: int = 0
    # seconds at which fresh writers join (new writes arriving while the running ones wait)
    bursts: tuple[float, ...] = ()
    span_bytes: int = SPAN_BYTES  # 0: the whole device

    @property
    def run_s(self) -> float:
        """How long the workload runs."""
        if self.duration_s > 0:
            return self.duration_s
        return max(4.0, max((f.at_s + f.duration_s for f in self.faults), default=0.0) + 1.5)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "family": self.family, "proves": self.proves,
            "duration_s": self.run_s, "strategy": self.strategy,
            "split_brain": self.split_brain, "settle_s": self.settle_s,
            "writers": self.writers, "queue_depth": self.queue_depth,
            "outage": list(self.outage), "bursts": list(self.bursts),
            "span_bytes": self.span_bytes,
            "faults": [{"at_s": f.at_s, "duration_s": f.duration_s, "action": f.action,
                        "target": f.target, "params": dict(f.params)} for f in self.faults],
        }

    @classmethod
    def from_json(cls, data: Any) -> Scenario:
        """A scenario file (``splitbrain chaos --shrink`` writes them); one line if not."""
        try:
            faults = tuple(FaultTemplate.of(float(f["at_s"]), float(f["duration_s"]),
                                            str(f["action"]), str(f["target"]),
                                            **dict(f.get("params") or {}))
                           for f in data["faults"])
            return cls(
                name=str(data["name"]), family=str(data.get("family", "nemesis")),
                proves=str(data.get("proves", "")), faults=faults,
                duration_s=float(data.get("duration_s", 8.0)),
                strategy=data.get("strategy"), split_brain=str(data.get("split_brain",
                                                                         "forbidden")),
                settle_s=None if data.get("settle_s") is None else float(data["settle_s"]),
                writers=int(data.get("writers", 4)), queue_depth=int(data.get("queue_depth", 2)),
                outage=tuple(int(i) for i in data.get("outage", ())),
                bursts=tuple(float(t) for t in data.get("bursts", ())),
                span_bytes=int(data.get("span_bytes", SPAN_BYTES)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ScenarioError(
                f"not a scenario ({type(exc).__name__}: {exc}); expected "
                '{"name", "faults": [{"at_s", "duration_s", "action", "target", "params"}]}'
            ) from None


def load_scenario(path: str | Path) -> Scenario:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"cannot read scenario file {path}: {exc}") from None
    return Scenario.from_json(data)


# -- resolving roles to one device's names ---------------------------------------------------


def device_for(inventory: Inventory, scenario: Scenario) -> HaDevice:
    """The HA pair the scenario breaks: the smallest pair with its strategy (a short
    read-back after the run); ``ScenarioError`` in one line when the inventory has none."""
    pairs = [d for d in inventory.devices.values() if len(d.replicas) == 2 and (
        scenario.strategy is None or d.strategy.value == scenario.strategy)]
    pairs.sort(key=lambda d: (d.size, d.alias))
    if not pairs:
        what = f"an HA pair with strategy = \"{scenario.strategy}\"" if scenario.strategy \
            else "an HA pair (two replicas)"
        raise ScenarioError(
            f"scenario {scenario.name} needs {what}; {inventory.path} has "
            + (", ".join(f"{d.alias} ({d.strategy.value}, {len(d.replicas)} replicas)"
                         for d in inventory.devices.values()) or "no HA device"))
    device = pairs[0]
    if any("witness" in f.target for f in scenario.faults) and device.witness is None:
        raise ScenarioError(f"scenario {scenario.name} needs a witness for {device.alias}")
    return device


def _iscsi_nets(inventory: Inventory, host: str) -> list[str]:
    return sorted(n for n in inventory.host(host).addresses
                  if inventory.network(n).has_role(NetworkRole.ISCSI))


def _link(inventory: Inventory, device: HaDevice, role: NetworkRole,
          links: list[str] | None) -> str:
    primary = device.primary.host
    nets = sorted(n for n in inventory.host(primary).addresses
                  if inventory.network(n).has_role(role))
    if not nets:
        raise ScenarioError(f"{device.alias}: {primary} has no {role.value} network")
    name = f"{nets[0]}/{primary}/{device.alias}"
    if links is None or name in links:
        return name
    short = f"{nets[0]}/{primary}"
    return short if short in links else nets[0]


def resolve_target(expr: str, inventory: Inventory, device: HaDevice,
                   links: list[str] | None = None) -> list[str]:
    """The site's selectors a role expression names (several for ``paths:...``)."""
    roles = {"primary": device.primary.host,
             "secondary": max(device.replicas, key=lambda r: r.priority).host}
    head, _, rest = expr.partition(":")
    if expr in roles:
        return [roles[expr]]
    if expr == "sync":
        return [_link(inventory, device, NetworkRole.SYNC, links)]
    if expr == "heartbeat":
        return [_link(inventory, device, NetworkRole.HEARTBEAT, links)]
    if head == "path":
        role, _, index = rest.partition(":")
        host = roles[role]
        return [f"{_iscsi_nets(inventory, host)[int(index or 0)]}/{host}"]
    if head == "paths":
        hosts = [roles[rest]] if rest in roles else list(roles.values())
        return [f"{n}/{h}" for h in hosts for n in _iscsi_nets(inventory, h)]
    if head == "witness":
        nets = [n for n in inventory.host(device.witness).addresses] if device.witness else []
        if not nets:
            raise ScenarioError(f"{device.alias} has no witness to cut off")
        return [f"{sorted(nets)[0]}/{device.witness}/{roles[rest]}"]
    if head == "client":  # a cluster node that writes (client-crash)
        nodes = cluster_nodes(inventory)
        index = int(rest or 0)
        if index >= len(nodes):
            raise ScenarioError(f"{expr}: {inventory.path} has {len(nodes)} cluster node(s)")
        return [nodes[index]]
    if expr in inventory.hosts or expr.split("/", 1)[0] in inventory.networks:
        return [expr]  # a selector in the site's own names (a shrunk nemesis schedule)
    raise ScenarioError(
        f"unknown fault target {expr!r}; use primary, secondary, sync, heartbeat, "
        "path:ROLE:N, paths:ROLE, paths:all, witness:ROLE or client:N")


def resolve(scenario: Scenario, inventory: Inventory, device: HaDevice,
            links: list[str] | None = None) -> tuple[DeviceFaults, Schedule]:
    """The scenario's faults on ``device`` as a scripted schedule, and what each takes away."""
    steps: list[Step] = []
    by_kind: dict[str, list[FaultSpec]] = {}
    hosts_lost: dict[FaultSpec, tuple[str, ...]] = {}
    path_lost: dict[FaultSpec, tuple[str, str]] = {}
    replica = {r.host: r for r in device.replicas}
    for index, t in enumerate(scenario.faults):
        for target in resolve_target(t.target, inventory, device, links):
            params = dict(t.params)
            if t.action.startswith("disk-"):
                params.setdefault("iqn", replica[target].target)
                params.setdefault("lun", device.lun)
                if t.action != "disk-slow":
                    params.setdefault("count", device.size // 512)
            spec = FaultSpec.of(t.action, target, **params)
            steps.append(Step(t.at_s, t.duration_s, spec))
            kind = f"{scenario.family}:{t.action}"
            by_kind.setdefault(kind, []).append(spec)
            if index in scenario.outage:
                hosts_lost[spec] = ()  # nothing is expected to serve: no failover to judge
            elif target in inventory.hosts:
                hosts_lost[spec] = (target,)
            elif target.count("/") == 1:
                net, host = target.split("/")
                path_lost[spec] = (net, host)
    return (DeviceFaults(device.alias, {k: tuple(v) for k, v in by_kind.items()}, hosts_lost,
                         path_lost),
            Schedule.scripted(steps))


def not_injectable(scenario: Scenario, faults: Any) -> str | None:
    """Why the site's injector ``faults`` cannot play ``scenario`` (one line naming the
    fault kinds its drivers do not inject), or None. A real site's injector says which
    actions it has (``RemoteFaults.ACTIONS``); the lab's injects every kind."""
    actions = getattr(faults, "ACTIONS", None)
    if actions is None:
        return None
    missing = sorted({t.action for t in scenario.faults} - set(actions))
    if not missing:
        return None
    return (f"this site's drivers cannot inject {', '.join(missing)} (only the lab can); "
            f"they inject {', '.join(actions)}")


def real_site_cannot_play(scenario: Scenario, sut: Any) -> str | None:
    """Why a real site cannot play ``scenario`` (None: it can): a fault kind its drivers do
    not inject, or a split brain the scenario allows that nobody could undo afterwards
    (its storage reader cannot mark a replica Synchronized, so the device would stay
    Not synchronized for every later scenario)."""
    reason = not_injectable(scenario, sut.faults)
    if reason is None and scenario.split_brain == "allowed" and not can_mark(sut):
        reason = (f"this site's storage ({sut.inventory.storage.kind}) cannot be marked "
                  "synchronized by the harness: the split brain this scenario allows would "
                  "stay until an administrator marks one side")
    return reason


# -- running one ---------------------------------------------------------------------------


@dataclass
class ScenarioRun:
    """What ``run_scenario`` found: the run's outcome, each fault's evidence, the verdict."""

    scenario: Scenario
    outcome: RunOutcome
    evidence: list[FaultEvidence]
    result: Any  # harness.checks.results.CheckResult
    recovery: list[str] = field(default_factory=list)


def cluster_nodes(inventory: Inventory) -> tuple[str, ...]:
    """Every cluster node writes (Demo1 and Demo2 on the lab): at most two."""
    return tuple(h.name for h in inventory.hosts_with_role(HostRole.CLUSTER_NODE))[:2]


def _node_state(sut: Any) -> Callable[[str], str | None] | None:
    lab = getattr(sut, "lab", None)
    if lab is None:
        return None

    def state(host: str) -> str | None:
        node = lab.record().nodes.get(host)
        if node is None:
            return None
        if not node.alive:
            return "gone"
        return "frozen" if node.frozen else "running"

    return state


def _ha_status(sut: Any, alias: str) -> Callable[[str], Mapping[str, Any] | None] | None:
    lab = getattr(sut, "lab", None)
    if lab is None or not hasattr(lab, "management_url"):
        return None
    from harness.target.management import ManagementClient

    def status(host: str) -> Mapping[str, Any] | None:
        node = lab.record().nodes.get(host)
        if node is None or not node.alive or node.frozen:
            return None
        client = ManagementClient(lab.management_url(host), lab.token(), timeout=2.0)
        rows = client.request("GET", "/v1/ha")
        return next((r for r in rows or [] if r.get("alias") == alias), None)

    return status


def holds_split_brain(rows: list[Mapping[str, Any] | None]) -> bool:
    """Every replica's status says the device keeps it Not synchronized until an
    administrator marks one (the bundled HA device's reconnect plan, ``last_plan``)."""
    return bool(rows) and all(
        row is not None and str(row.get("state", "")).lower() == "not synchronized"
        and "mark" in str(row.get("last_plan", "")) for row in rows)


def _held(sut: Any, device: HaDevice) -> Callable[[], bool] | None:
    """The lab's reader of a split brain its device holds (None off the lab)."""
    status = _ha_status(sut, device.alias)
    if status is None:
        return None
    hosts = [r.host for r in device.replicas]
    return lambda: holds_split_brain([status(h) for h in hosts])


def run_scenario(
    sut: Any,
    scenario: Scenario,
    *,
    seed: int,
    output: Path,
    fresh: bool = False,
    budget_profile: str = "default",
    out: Any = None,
    capture: bool = False,
) -> ScenarioRun:
    """Run one scenario on a running site; the verdict is in ``.result``. ``capture``:
    record the iSCSI traffic (lab, root) for the packet-timing checker."""
    device = device_for(sut.inventory, scenario)
    faults, schedule = resolve(scenario, sut.inventory, device, site_links(sut))
    return run_schedule(sut, scenario, device, faults, Schedule(schedule.steps, seed),
                        output=output, fresh=fresh, budget_profile=budget_profile, out=out,
                        capture=capture)


def site_links(sut: Any) -> list[str] | None:
    """The lab's link names (None on a real site: selectors are the inventory's)."""
    lab = getattr(sut, "lab", None)
    return list(lab.state.load().links) if lab is not None else None


def run_schedule(
    sut: Any,
    scenario: Scenario,
    device: HaDevice,
    faults: DeviceFaults,
    schedule: Schedule,
    *,
    output: Path,
    fresh: bool = False,
    budget_profile: str = "default",
    out: Any = None,
    capture: bool = False,
    administrator: bool = False,
) -> ScenarioRun:
    """Play ``schedule`` (faults described by ``faults``) on ``device`` as ``scenario``
    says (writers, how long, split-brain policy), and judge it."""
    from harness.chaos.verdict import scenario_result

    inventory = sut.inventory
    seed = schedule.seed if schedule.seed is not None else 0
    settings = RunSettings(
        seed=seed, duration_s=scenario.run_s, output=output, device=device.alias,
        fault_kinds=tuple(faults.by_kind), writers=scenario.writers,
        queue_depth=scenario.queue_depth, budget_profile=budget_profile, schedule=schedule,
        initiators=cluster_nodes(inventory), fresh=fresh, settle_s=scenario.settle_s,
        catalogue=faults, read_back_every_path=False, until_paths_back=True,
        bursts=scenario.bursts, capture=capture, shared_bytes=scenario.shared_bytes,
        span_bytes=scenario.span_bytes, held=_held(sut, device),
        administrator=mark_newest(sut, device) if administrator else None,
    )
    run = ChaosRun(sut, settings, out=out)
    probe = LiveProbe(inventory, device, node_state=_node_state(sut),
                      ha_status=_ha_status(sut, device.alias))
    run.injected_hooks.append(probe.hook)
    outcome = run.execute()
    with run.phase("evidence"):
        probe.join()
        history = _history(outcome)
        evidence = _evidence(history, schedule, probe, inventory, device)
    with run.phase("recover"):
        recovery = recover_split_brain(sut, device, outcome)
    with run.phase("verdict"):
        result = scenario_result(scenario, outcome, evidence, recovery, device, sut, history)
    (output / "scenario.json").write_text(json.dumps(scenario.to_json(), indent=1) + "\n",
                                          encoding="utf-8")
    verdict = outcome.verdict.to_json()
    verdict["run"] = {**outcome.meta, "schedule": schedule.to_json(), "heals": outcome.heals,
                      "evidence": [{"fault": e.name, "proved": e.proved, "text": e.text}
                                   for e in evidence], "recovery": recovery,
                      "result": str(result.result), "reason": result.reason}
    (output / "verdict.json").write_text(json.dumps(verdict, indent=1, default=str) + "\n",
                                         encoding="utf-8")
    return ScenarioRun(scenario, outcome, evidence, result, recovery)


def _history(outcome: RunOutcome) -> Any:
    """The run's history as an outline plus a stream of operations (a nightly's history
    is far too long to hold as one object per operation)."""
    from harness.workload.history import HistoryError
    from harness.workload.history_stream import StreamedHistory

    try:
        return StreamedHistory(outcome.output / "history.jsonl")
    except (HistoryError, OSError):
        return None


def _evidence(history: Any, schedule: Schedule, probe: LiveProbe,
              inventory: Inventory, device: HaDevice) -> list[FaultEvidence]:
    if history is None:
        return []
    named = [(f"{s.spec.action} {s.spec.target} [{i}]", s) for i, s in enumerate(schedule.steps)]
    return judge(named, history, probe.seen, inventory, device)


def newest_replica(device: HaDevice, rows: Mapping[str, Mapping[str, Any] | None]
                   ) -> tuple[str, str]:
    """The replica an administrator marks after a split brain, and why: the one with the
    most recent data (StarWind's instruction), i.e. the highest ``generation`` in its
    node's ``/v1/ha`` status (a node grows it whenever it carries on alone); a tie, or no
    status to compare, goes to the primary. ``rows``: host -> that status (None:
    unreadable)."""
    primary = device.primary.host
    known = {h: r for h, r in rows.items() if r is not None
             and isinstance(r.get("generation"), int)}
    alone = {h: " (carried on alone)" if r.get("alone") else "" for h, r in known.items()}
    shown = ", ".join(f"{h} generation {r['generation']}{alone[h]}"
                      for h, r in sorted(known.items()))
    unread = sorted(h for h in rows if h not in known)
    if not known:
        return primary, (f"no replica's generation could be read ({', '.join(unread)}): "
                         "the primary")
    top = max(int(r["generation"]) for r in known.values())
    newest = sorted(h for h, r in known.items() if int(r["generation"]) == top)
    why = shown + (f"; unreadable: {', '.join(unread)}" if unread else "")
    if primary in newest or len(newest) > 1:
        host = primary if primary in newest else newest[0]
        tie = "tie, the primary" if len(newest) > 1 else "the newest"
        return host, f"{why}: {tie}"
    return newest[0], f"{why}: the newest"


def replica_rows(sut: Any, device: HaDevice) -> dict[str, Mapping[str, Any] | None]:
    """Each replica's ``/v1/ha`` status on the lab (None: its node is down, frozen or
    does not answer)."""
    status = _ha_status(sut, device.alias)
    rows: dict[str, Mapping[str, Any] | None] = {}
    for r in device.replicas:
        try:
            rows[r.host] = status(r.host) if status is not None else None
        except SplitbrainError:
            rows[r.host] = None
    return rows


def administrator_asked(rows: Mapping[str, Mapping[str, Any] | None]) -> bool:
    """Whether the device asks for an administrator: a readable status saying
    ``needs_administrator`` (the device keeps both replicas Not synchronized because it
    cannot tell which holds every acknowledged write). A device whose status has no such
    field, or none readable, is taken to ask (the administrator acts as before)."""
    known = [r for r in rows.values() if r is not None and "needs_administrator" in r]
    return not known or any(bool(r["needs_administrator"]) for r in known)


def mark_newest(sut: Any, device: HaDevice) -> Any:
    """The administrator's override on the lab: mark synchronized the replica with the
    most recent data (``newest_replica``, read from every node's management API; its
    partner then resyncs from it), only when the device asks for one
    (``administrator_asked``; the mark then returns None); None off the lab (nobody to
    ask)."""
    lab = getattr(sut, "lab", None)
    if lab is None or not hasattr(lab, "management_url"):
        return None

    def mark() -> str | None:
        from harness.target.management import ManagementClient

        rows = replica_rows(sut, device)
        if not administrator_asked(rows):
            return None  # the device resolves it itself (or has not decided yet)
        host, why = newest_replica(device, rows)
        try:
            client = ManagementClient(lab.management_url(host), lab.token(), timeout=5.0)
            client.request("POST", f"/v1/ha/{device.alias}/mark-synchronized")
        except SplitbrainError as exc:
            return f"could not mark {device.alias}@{host} synchronized ({why}): {exc}"
        return (f"marked {device.alias}@{host} synchronized (split brain: both sides stopped; "
                f"{why})")

    return mark


def can_mark(sut: Any) -> bool:
    """Whether the harness can act as the administrator after a split brain on this site:
    the lab, or a real site whose storage reader marks a replica (``mark_synchronized``)."""
    if getattr(sut, "lab", None) is not None:
        return True
    try:
        return hasattr(sut.replicas, "mark_synchronized")
    except SplitbrainError:
        return False


def _recover_real_site(sut: Any, device: HaDevice, after: Mapping[str, str]) -> list[str]:
    """As on the lab, through the site's storage reader (over SSH): mark the primary."""
    if not can_mark(sut):
        return [f"replicas left {after}; mark one side synchronized on the site, then resync"]
    host = device.primary.host
    try:
        line = sut.replicas.mark_synchronized(device.alias, host)
        lines = [f"replicas left {after}: {line} (administrator override), partner resyncs "
                 "from it"]
        sut.wait_synchronized([device.alias], deadline_s=60.0)
        return [*lines, f"{device.alias}: both replicas Synchronized again after the mark"]
    except SplitbrainError as exc:
        return [f"FAILED to recover {device.alias}: {exc}"]


def recover_split_brain(sut: Any, device: HaDevice, outcome: RunOutcome) -> list[str]:
    """After a split brain the device keeps both replicas Not synchronized until an
    administrator marks one side: do that on the lab, on the replica with the most recent
    data (``newest_replica``; a tie goes to the primary), so the site is whole again for
    the next scenario, and say so."""
    after = outcome.meta.get("replicas_after") or {}
    if not after or all(s == "synchronized" for s in after.values()):
        return []
    lab = getattr(sut, "lab", None)
    if lab is None:
        return _recover_real_site(sut, device, after)
    if not hasattr(lab, "management_url"):
        return [f"replicas left {after}; mark one side synchronized on the site, then resync"]
    from harness.target.management import ManagementClient

    host, why = newest_replica(device, replica_rows(sut, device))
    lines = [f"replicas left {after}: marked {device.alias}@{host} synchronized "
             f"(administrator override; {why}), partner resyncs from it"]
    try:
        client = ManagementClient(lab.management_url(host), lab.token(), timeout=5.0)
        client.request("POST", f"/v1/ha/{device.alias}/mark-synchronized")
        lab.wait_synchronized([device.alias], 60.0)
        lines.append(f"{device.alias}: both replicas Synchronized again after the mark")
    except SplitbrainError as exc:
        lines.append(f"FAILED to recover {device.alias}: {exc}")
    return lines
