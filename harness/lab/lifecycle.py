"""The lab's lifecycle: adopt the inventory's running lab, or start one; take down only that.

The model. A lab lives in a state directory; whoever uses it (a pytest
session, ``splitbrain chaos``/``run``) either *adopts* a lab already up there
or *starts* one, and on leaving takes down only a lab it started.
``LabSite`` is that context manager, the one way every caller does it:

- a lab running at the state directory with this inventory is *reused* after
  the faults its journal still holds open are healed and its replicas are
  Synchronized again (a lab of another inventory, or one with a dead node, is
  refused in one line);
- a lab whose owning process was killed (its recorded owner pid is gone, or is
  another process now) is *taken over*: healed and reused like the above, and
  taken down on exit as if this run had started it;
- otherwise a fresh lab is *started* (its disks hold zeros; ``fresh``), owned
  by this process, and taken down on exit unless ``keep``.

Teardown ignores SIGINT and SIGTERM so a second Ctrl-C cannot leave the lab
half down; a failed teardown is recorded in ``problems``, not raised over the
caller's own result. Neither the chaos runner nor a suite brings a site up or
down itself; this is the caller's side.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import SplitbrainError
from harness.faults.guard import heal_journal, signals_ignored
from harness.faults.journal import FaultJournal
from harness.lab.backend import Lab
from harness.lab.backends import lab_for, open_lab
from harness.lab.inventory import Inventory
from harness.lab.node_process import process_start_ticks
from harness.lab.state import default_state_dir


class LabSiteError(SplitbrainError):
    """The lab at the state directory cannot be used for this run."""


class LabSite:
    """The lab of ``inventory`` at ``state_dir``, up for the duration of a ``with``."""

    def __init__(
        self,
        inventory: Inventory,
        state_dir: Path | None = None,
        *,
        keep: bool = False,
        resync_s: float = 120.0,
        aliases: list[str] | None = None,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        if inventory.lab is None:
            raise LabSiteError(f"{inventory.path} has no [lab] table; it is not a lab inventory")
        self.inventory = inventory
        self.state_dir = Path(
            state_dir or inventory.lab.state_dir or default_state_dir(inventory.site.name)
        )
        self.keep, self.resync_s, self.say = keep, resync_s, say
        self.aliases = aliases if aliases is not None else list(inventory.devices)
        self.lab: Lab | None = None
        self.started = False  # taken down on exit (unless keep)
        self.fresh = False  # this run brought the lab up: its disks hold zeros
        self.how = ""
        self.problems: list[str] = []

    def __enter__(self) -> LabSite:
        try:
            self.lab = self._adopt() or self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        with signals_ignored():  # a second Ctrl-C must not leave the lab half down
            self._down()

    def _down(self) -> None:
        lab = self.lab
        if lab is None or not self.started:
            if lab is not None:
                self.say(f"lab: left up at {self.state_dir} (it was up before the run)")
            return
        if self.keep:
            self.say(f"lab: kept up at {self.state_dir} (--keep-lab); "
                     "`splitbrain lab down` stops it")
            return
        try:
            stopped = lab.down()
            self.say(f"lab: taken down ({len(stopped)} processes stopped)")
        except SplitbrainError as exc:
            self.problems.append(f"could not take the lab down: {exc}")

    def _adopt(self) -> Lab | None:
        existing = open_lab(self.state_dir)
        if not (existing.state.exists() and existing.running()):
            return None
        record = existing.state.load()
        if Path(record.inventory).resolve() != Path(self.inventory.path).resolve():
            raise LabSiteError(
                f"the lab up at {self.state_dir} runs {record.inventory}, not "
                f"{self.inventory.path}; take it down (`splitbrain lab down`) or pass its inventory"
            )
        dead = [h for h, n in record.nodes.items() if not n.alive]
        if dead:
            raise LabSiteError(
                f"the lab at {self.state_dir} is up but node(s) {', '.join(dead)} are not "
                "running; run `splitbrain heal` or `splitbrain lab down` first"
            )
        self.lab = existing
        owner = record.extra.get("owner")
        # a lab whose owning run was killed: this run takes it over (and down after)
        self.started = bool(owner) and process_start_ticks(int(owner["pid"])) != owner.get(
            "start_ticks"
        )
        self.how = "taken over from a killed run" if self.started else "reused"
        leftovers = heal_journal(FaultJournal(existing.state.journal_file))
        self.say(
            (f"lab: taking over the lab at {self.state_dir} left by a killed run "
             f"(pid {owner['pid']})" if self.started and owner
             else f"lab: reusing the lab already up at {self.state_dir}")
            + (f"; healed {len(leftovers)} fault(s) left open" if leftovers else "")
        )
        for o in leftovers:
            if not o.healed:
                raise LabSiteError(
                    f"a leftover fault of the lab at {self.state_dir} cannot be healed "
                    f"({o.kind} {o.target}: {o.error}); fix it, then run again"
                )
        existing.wait_synchronized(self.aliases, self.resync_s)
        return existing

    def _start(self) -> Lab:
        lab = lab_for(self.inventory, self.state_dir)
        # down() on exit even if up() is interrupted
        self.lab, self.started, self.fresh = lab, True, True
        self.how = "started by this run"
        t0 = time.monotonic_ns()
        # a line ending in "..." is a wait: a terminal shows a spinner until the next line
        self.say(f"lab: starting {self.inventory.site.name!r} at {self.state_dir} and waiting "
                 "until every replica is Synchronized ...")
        lab.up(self.inventory, owner_pid=os.getpid())
        self.say(
            f"lab: started {self.inventory.site.name!r} at {self.state_dir} "
            f"in {(time.monotonic_ns() - t0) / 1e9:.1f} s (every replica Synchronized)"
        )
        return lab
