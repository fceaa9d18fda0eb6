"""The nemesis: faults that break a site on purpose and always heal.

The model, after Jepsen's nemesis and the lessons of the chaos tools that
leaked faults (see docs): a *fault* is one deliberate break of one target (a
link, a process, a disk, a whole node). It is a context manager with
``inject`` and ``heal``; ``heal`` is idempotent and verifies what it restored.

Nothing is applied before it is written down: every fault appends an
``inject`` record, with everything another process needs to undo it, to a
durable fault journal (JSON lines, fsync) *before* it changes anything, and a
``healed`` record after. So a fault is healed on scope exit, at pytest session
end (and session start, for a previous run's leftovers), on SIGINT/SIGTERM
(``heal_on_signals``), and by ``splitbrain heal`` after the harness itself was
killed (``heal_journal``): the journal is the truth, not the process.

The *nemesis* (``Nemesis``) plays a ``Schedule`` of ``FaultSpec`` s (scripted,
or drawn from a seed: the same seed gives the same schedule) and records every
fault's start and stop in the run's history, so checkers can relate each
anomaly to the fault that was active.

Modules: ``journal`` (the ledger), ``fault`` (base class, live registry),
``link`` / ``netns_link`` / ``process`` / ``disk`` / ``node`` (the fault kinds), ``lab_faults``
(the lab's injector, ``sut.faults``), ``remote_faults`` (a real site's) with
``remote_catalogue`` (its faults on real hosts), ``guard`` (signals and the
journal sweep), ``nemesis`` (schedules).
"""

from harness.faults.disk import DiskFault
from harness.faults.fault import (
    FAULT_KINDS,
    CompositeFault,
    Fault,
    FaultError,
    HealError,
    heal_live,
    live_faults,
)
from harness.faults.guard import HealOutcome, heal_journal, heal_on_signals
from harness.faults.journal import FaultJournal, JournalError, OpenFault, default_journal_path
from harness.faults.link import LinkFault, SlowLinkFault
from harness.faults.nemesis import FaultRecorder, FaultSpec, Nemesis, Schedule, Step
from harness.faults.netns_link import NetnsLinkFault
from harness.faults.node import NodeCrash
from harness.faults.process import ProcessFault
from harness.faults.remote_catalogue import (
    FaultNotEffective,
    RemoteAdapterDown,
    RemoteFreeze,
    RemotePathDrop,
    RemotePeerBlock,
    RemoteProcessKill,
    RemoteServiceStop,
)
from harness.faults.remote_faults import RemoteBlackHole, RemoteFaults

__all__ = [
    "FAULT_KINDS",
    "CompositeFault",
    "DiskFault",
    "Fault",
    "FaultError",
    "FaultJournal",
    "FaultNotEffective",
    "FaultRecorder",
    "FaultSpec",
    "HealError",
    "HealOutcome",
    "JournalError",
    "LinkFault",
    "Nemesis",
    "NetnsLinkFault",
    "NodeCrash",
    "OpenFault",
    "ProcessFault",
    "RemoteAdapterDown",
    "RemoteBlackHole",
    "RemoteFaults",
    "RemoteFreeze",
    "RemotePathDrop",
    "RemotePeerBlock",
    "RemoteProcessKill",
    "RemoteServiceStop",
    "Schedule",
    "SlowLinkFault",
    "Step",
    "default_journal_path",
    "heal_journal",
    "heal_live",
    "heal_on_signals",
    "live_faults",
]
