"""Which lab backend runs a lab: by its inventory (to start one) or its state (to act on one).

``lab_for(inventory, dir)`` gives the backend the inventory asks for (``[lab]
backend``); ``open_lab(dir)`` the backend that brought up the lab recorded in
``dir`` (both give a :class:`harness.lab.backend.Lab`); ``reap_orphan_labs()``
takes down labs whose owning test session was killed before its teardown, so a
crashed run's lab does not outlive it.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from harness.errors import SplitbrainError
from harness.lab.backend import Lab
from harness.lab.inventory import Inventory
from harness.lab.loopback import LoopbackLab
from harness.lab.netns_lab import NetnsLab
from harness.lab.node_process import process_start_ticks
from harness.lab.state import LabState, default_state_dir


def lab_for(inventory: Inventory, state_dir: str | os.PathLike[str]) -> Lab:
    """A lab of the inventory's backend at ``state_dir`` (not started)."""
    backend = inventory.lab.backend if inventory.lab else "loopback"
    return NetnsLab(state_dir) if backend == "netns" else LoopbackLab(state_dir)


def open_lab(state_dir: str | os.PathLike[str]) -> Lab:
    """The lab recorded at ``state_dir``, with the backend that brought it up."""
    state = LabState(state_dir)
    backend = state.load().backend if state.exists() else "loopback"
    return NetnsLab(state_dir) if backend == "netns" else LoopbackLab(state_dir)


def reap_orphan_labs(base: Path | None = None) -> list[Path]:
    """Take down labs whose owning process (a killed test session) is gone; return them."""
    base = base or default_state_dir("_").parent
    reaped = []
    for record_file in sorted(base.glob("*/lab.json")) if base.is_dir() else []:
        try:
            owner = json.loads(record_file.read_text()).get("extra", {}).get("owner")
        except (OSError, json.JSONDecodeError):
            continue
        if owner and process_start_ticks(int(owner["pid"])) != owner.get("start_ticks"):
            with contextlib.suppress(SplitbrainError, OSError):
                open_lab(record_file.parent).down()
                reaped.append(record_file.parent)
    return reaped
