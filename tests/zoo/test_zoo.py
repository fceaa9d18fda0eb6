"""Every defect of the zoo is caught: its suite fails, with the expected diagnosis, on a
lab with the defect switched on, and the same suite on the correct lab does not show that
diagnosis (tests/zoo/zoo.py; docs/defect-zoo.md is the same as a matrix).

Each run brings up its own loopback lab in a pytest subprocess (about a minute, so
the whole zoo takes half an hour): the per-defect tests run with ``make zoo``
(``SPLITBRAIN_ZOO=1``) and are skipped otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.zoo.zoo import ENTRIES, Entry, Outcome, inventory_text, run_suite

pytestmark = pytest.mark.slow

_baselines: dict[tuple[str, str], Outcome] = {}


def baseline(entry: Entry, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    key = (entry.suite, entry.site)
    if key not in _baselines:
        _baselines[key] = run_suite(entry.suite, tmp_path_factory.mktemp("baseline"),
                                    site=entry.site)
    return _baselines[key]


@pytest.mark.timeout(1800)
@pytest.mark.skipif(os.environ.get("SPLITBRAIN_ZOO") != "1",
                    reason="the defect zoo runs with make zoo (SPLITBRAIN_ZOO=1)")
@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.suite],
                         ids=[e.id for e in ENTRIES if e.suite])
def test_the_suite_catches_the_defect(entry: Entry, tmp_path: Path,
                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    broken = run_suite(entry.suite, tmp_path, defect=entry.defect, where=entry.where,
                       site=entry.site)
    assert broken.failed, f"{entry.suite} passed with {entry.defect}:\n{broken.output[-3000:]}"
    assert broken.shows(entry.diagnosis), \
        f"{entry.suite} failed without the diagnosis {entry.diagnosis!r}:\n{broken.output[-3000:]}"
    correct = baseline(entry, tmp_path_factory)
    assert not correct.shows(entry.diagnosis), \
        f"the correct lab shows {entry.diagnosis!r} too:\n{correct.output[-3000:]}"


def test_defects_are_switched_on_per_device_or_per_partner_replica() -> None:
    from harness.lab.inventory import loads

    device = loads(inventory_text("no-fencing"), "lab.toml")
    assert all(d.defects == ("no-fencing",) for d in device.devices.values())
    partner = loads(inventory_text("write-not-mirrored", "partner"), "lab.toml")
    for d in partner.devices.values():
        assert d.defects_of("SWS-Store2") == ("write-not-mirrored",)
        assert d.defects_of("SWS-Store1") == ()
    assert loads(inventory_text(None), "lab.toml").device("HA1").defects == ()


def test_every_defect_mode_has_a_catcher() -> None:
    from harness.target.defects import Defect

    assert {d.value for d in Defect} == {e.defect for e in ENTRIES}
