"""The scenario catalogue: every family's scenarios, as data (suites/chaos runs each one).

Times fit the lab's timers (sync loss after 1 s of silence, the fence one more
second, heartbeat 0.5 s, MPIO NOP every 2 s with a 2 s timeout); a real site's
inventory budgets judge them the same way. ``SCENARIOS`` is ordered by family, except
that the thin-pool scenario comes first.
"""

from __future__ import annotations

from harness.chaos.scenario import FAMILIES, FaultTemplate, Scenario, ScenarioError

F = FaultTemplate.of

SCENARIOS: tuple[Scenario, ...] = (
    # first: a full thin pool only refuses writes to blocks not yet allocated, and a fresh
    # lab's disks are all unallocated (on a disk that is full of data already the fault
    # changes nothing, and the scenario says so: a failed injection)
    Scenario("disk-nospace-secondary", "disk",
             "The secondary's thin pool is full: it leaves the device without diverging.",
             (F(1.0, 2.5, "disk-nospace", "secondary"),)),
    # -- sync link: writes arrive at both nodes (two cluster nodes, round robin) ------------
    Scenario("sync-reset", "sync-link",
             "The sync link resets: the lower priority stops serving, I/O carries on through "
             "the survivor, and a resync brings the partner back with identical data.",
             (F(1.0, 2.5, "cut", "sync"),)),
    Scenario("sync-blackhole", "sync-link",
             "The sync link goes silent (no reset): sync loss is detected by timeout, the "
             "fence holds, nothing acknowledged is lost, the replicas resync.",
             (F(1.0, 2.5, "blackhole", "sync"),)),
    Scenario("sync-flapping", "sync-link",
             "The sync link flaps (1.5 s down, 1.5 s up): repeated loss and resync under "
             "load never lose a write or leave the replicas different.",
             (F(1.0, 5.0, "flap", "sync", period_s=3.0),)),
    Scenario("sync-one-way", "sync-link",
             "The sync link loses one direction only (orders reach the partner, acks never "
             "come back): the unacknowledged orders take the partner out.",
             (F(1.0, 2.5, "oneway", "sync", direction="up"),)),
    Scenario("sync-delay", "sync-link",
             "The sync link is slow (30 ms each way): writes wait for the partner (synchronous "
             "mirroring) and nothing times out.",
             (F(1.0, 2.5, "delay", "sync", delay_ms=30.0),)),
    Scenario("sync-delay-hot-spot", "sync-link",
             "Both cluster nodes write the same few blocks through both storage nodes while "
             "the sync link is slow (30 ms each way): overlapping writes land in one order "
             "on every replica, which end identical.",
             (F(1.0, 2.5, "delay", "sync", delay_ms=30.0),), shared_bytes=256 * 1024),
    # -- primary / sequencer ------------------------------------------------------------------
    Scenario("primary-kill", "primary",
             "kill -9 of the primary (the sequencer) under load: the partner takes over "
             "after the fence, no acknowledged write is lost, the primary resyncs on restart.",
             (F(1.5, 2.5, "kill", "primary"),)),
    Scenario("primary-freeze", "primary",
             "The primary is frozen (SIGSTOP, sockets stay open: a gray failure) and thawed "
             "later: the partner must not wait forever, and the thawed node must not serve "
             "stale data.",
             (F(1.5, 2.5, "freeze", "primary"),)),
    Scenario("primary-restart-failback", "primary",
             "The primary restarts and fails back: the partner carried on, the primary "
             "resyncs and becomes the sequencer again with identical data.",
             (F(2.0, 2.0, "restart", "primary"),)),
    # -- MPIO paths ---------------------------------------------------------------------------
    Scenario("path-one", "mpio",
             "One iSCSI path resets: MPIO fails over to the others, and the path carries "
             "I/O again after it returns.",
             (F(1.0, 2.5, "cut", "path:primary:0"),)),
    Scenario("paths-of-one-node", "mpio",
             "Every path to one storage node is cut: I/O moves to the other node's paths.",
             (F(1.0, 2.5, "cut", "paths:secondary"),)),
    Scenario("path-flapping", "mpio",
             "One path flaps (reset, back, reset, back...): MPIO keeps taking it out and "
             "back without losing I/O, and it carries I/O again at the end.",
             (F(1.5, 0.8, "cut", "path:secondary:0"), F(3.0, 0.8, "cut", "path:secondary:0"),
              F(4.5, 0.8, "cut", "path:secondary:0"))),
    Scenario("all-paths-within-disk-timeout", "mpio",
             "Every path is down at once, and back within the disk timeout: I/O is held and "
             "completes, the caller sees no error.",
             (F(1.0, 2.5, "cut", "paths:all"),)),
    # -- split brain ---------------------------------------------------------------------------
    Scenario("split-brain-heal-late", "split-brain",
             "Sync and heartbeat partitioned together under the heartbeat strategy while both "
             "cluster nodes write: both sides carry on alone (the documented risk). The harness "
             "must report \"split brain\" and the device must keep both Not synchronized, "
             "never merge them silently.",
             (F(1.5, 4.0, "blackhole", "sync"), F(1.5, 4.0, "blackhole", "heartbeat")),
             strategy="heartbeat", split_brain="allowed", settle_s=8.0),
    Scenario("split-brain-heal-early", "split-brain",
             "The same partition healed while both sides are still inside their fence: "
             "either nothing diverged, or the split brain is reported; never merged silently.",
             (F(1.5, 2.3, "blackhole", "sync"), F(1.5, 2.3, "blackhole", "heartbeat")),
             strategy="heartbeat", split_brain="allowed", settle_s=8.0),
    Scenario("split-brain-node-majority", "split-brain",
             "Under node majority with a witness, the same partition must not split the "
             "brain: the node without the witness's vote stops, whatever the schedule.",
             (F(1.5, 4.0, "blackhole", "sync"), F(1.5, 4.0, "blackhole", "heartbeat")),
             strategy="node-majority"),
    Scenario("majority-primary-loses-witness", "split-brain",
             "Under node majority the sync link is lost while the primary is also cut off "
             "from the witness: the partner wins the vote and carries on; no write the primary "
             "acknowledged in the window before its decision may be missing there. Fresh "
             "writers join inside that window (sync loss after 1 s, the vote 1 s later).",
             (F(1.0, 3.0, "blackhole", "sync"), F(1.0, 3.0, "blackhole", "witness:primary")),
             strategy="node-majority", bursts=(2.05, 2.25, 2.45, 2.65)),
    Scenario("majority-decision-window", "split-brain",
             "As majority-primary-loses-witness, but the cluster nodes reach only the primary "
             "(the partner's paths are cut), so writes keep arriving at the primary while it "
             "decides: it may not acknowledge one alone before it has the witness's vote, or "
             "the partner, which wins, goes on without it (an outage until the heal is correct).",
             (F(1.0, 3.0, "blackhole", "sync"), F(1.0, 3.0, "blackhole", "witness:primary"),
              F(1.0, 3.0, "cut", "paths:secondary")),
             strategy="node-majority", outage=(0, 1, 2), bursts=(2.05, 2.25, 2.45)),
    # -- double failures and resync races ---------------------------------------------------
    Scenario("kill-survivor-during-resync", "double",
             "The partner falls out (sync black hole), and the survivor is killed while it "
             "resyncs the partner: the half-resynced partner must not serve stale data.",
             (F(1.0, 2.0, "blackhole", "sync"), F(3.2, 3.0, "kill", "primary")),
             settle_s=30.0, outage=(1,)),
    Scenario("kill-sequencer-mid-burst", "double",
             "The sequencer is killed in the middle of a deep write burst: orders in flight "
             "are either on both replicas or reported, never on one side only after resync.",
             (F(1.5, 2.5, "kill", "primary"),), writers=4, queue_depth=4),
    Scenario("primary-dies-while-sync-silent", "double",
             "The sync link goes silent and the primary dies before it has decided to carry "
             "on alone: the partner carries on, and no write the primary acknowledged may be "
             "missing there (it may acknowledge nothing the partner has not applied).",
             (F(1.0, 3.0, "blackhole", "sync"), F(1.2, 2.5, "kill", "primary"))),
    Scenario("sequencer-dies-with-its-writer", "double",
             "The primary's disk hangs, so its ORDERs reach the partner while its own writes "
             "never land; then the primary dies together with the first cluster node, whose "
             "writes it held (one rack losing power), so nobody re-drives them. After the "
             "restart the replicas must be identical whatever those writes left on the "
             "partner only (the primary's activity log names where they were).",
             # the disk and the client come back after the primary's restart
             (F(1.7, 3.8, "disk-slow", "primary", delay_ms=600_000.0),
              F(1.9, 3.6, "client-crash", "client:0"), F(2.0, 1.5, "kill", "primary")),
             # deep queues abandon many writes, spread over a span the rest of the run
             # seldom writes again (a rewrite of a block would hide its difference); the
             # crashed node's private part is written by nobody while the partner carries
             # on alone, so its dirty map (1 MiB regions) cannot cover the difference
             settle_s=30.0, queue_depth=4, span_bytes=0),
    Scenario("heal-other-order", "double",
             "A path cut and a sync black hole overlap and heal in the other order than they "
             "came: the device converges either way.",
             (F(1.0, 4.0, "cut", "path:secondary:0"), F(1.5, 1.5, "blackhole", "sync"))),
    Scenario("total-blackout", "double",
             "Both storage nodes die and restart together: a stale replica is not served "
             "until it is resynchronized or marked.",
             (F(2.0, 2.0, "kill", "primary"), F(2.0, 2.0, "kill", "secondary")),
             settle_s=20.0, outage=(0, 1)),
    # -- power loss: the writes a node had not made durable are gone -----------------------
    Scenario("power-loss-primary", "power-loss",
             "The primary loses power under load (its un-synced writes discarded): "
             "write-through means every acknowledged write survives on the partner and, "
             "after the resync, on both.",
             (F(1.5, 2.5, "power-loss", "primary"),)),
    Scenario("power-loss-secondary", "power-loss",
             "The secondary loses power under load: it comes back Not synchronized and "
             "resyncs; nothing acknowledged is lost.",
             (F(1.5, 2.5, "power-loss", "secondary"),)),
    Scenario("power-loss-both", "power-loss",
             "Both storage nodes lose power at once: after the restart every acknowledged "
             "write is on disk (write-through), and a stale replica is not served.",
             (F(1.5, 2.0, "power-loss", "primary"), F(1.5, 2.0, "power-loss", "secondary")),
             settle_s=20.0, outage=(0, 1)),
    # -- disk faults on one replica ----------------------------------------------------------
    Scenario("disk-eio-secondary", "disk",
             "The secondary's disk returns EIO under load: that replica leaves the device, "
             "the primary carries on, a resync repairs it.",
             (F(1.0, 2.5, "disk-eio", "secondary"),)),
    Scenario("disk-slow-secondary", "disk",
             "The secondary's disk is slow (50 ms per I/O): mirrored writes wait, nothing "
             "is lost or times out.",
             (F(1.0, 2.5, "disk-slow", "secondary", delay_ms=50.0),)),
    # a disk slower than the fault lasts is hung: it finishes its queue only at the heal
    Scenario("disk-hang-secondary", "disk",
             "The secondary's disk hangs for 6 s while its sync and heartbeat links stay "
             "healthy: it answers keepalives but acknowledges no ORDER. The ORDER timeout "
             "takes it out within the sync timeout (judged as a sync loss: path_failover_s), "
             "I/O carries on through the primary, and a resync repairs it once its disk "
             "recovers.",
             (F(1.0, 6.0, "disk-slow", "secondary", delay_ms=600_000.0),), settle_s=30.0),
)


def by_name(name: str) -> Scenario:
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise ScenarioError(f"unknown scenario {name!r}; scenarios: "
                        + ", ".join(s.name for s in SCENARIOS))


def family(name: str) -> list[Scenario]:
    if name not in FAMILIES:
        raise ScenarioError(f"unknown family {name!r}; families: {', '.join(FAMILIES)}")
    return [s for s in SCENARIOS if s.family == name]
