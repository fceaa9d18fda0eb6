"""A lab of the bundled inventory with chosen defect modes, as a validation site.

``validation_lab(device_defects, replica_defects=None, edit=None)`` writes
lab.toml with ``defects = [...]`` on device HA2 (every replica) and, if given,
on HA2's partner replica only, starts it in the test's own state directory and
returns a ``ValidationSite``; the lab is taken down when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fixtures.settings import LAB_INVENTORY
from fixtures.sut import SystemUnderTest
from harness.lab.backends import lab_for
from harness.lab.inventory import load
from harness.validation.site import ValidationSite

PARTNER = 'target = "iqn.2008-08.com.starwindsoftware:sws-store2-ha2partner"'


def lab_text(device_defects: list[str], replica_defects: list[str] | None = None) -> str:
    text = LAB_INVENTORY.read_text()
    if device_defects:
        text = text.replace('purpose = "vm-storage"',
                            f'purpose = "vm-storage"\ndefects = {device_defects!r}'
                            .replace("'", '"'), 1)
    if replica_defects:
        text = text.replace(PARTNER, f"{PARTNER}\ndefects = {replica_defects!r}"
                            .replace("'", '"'), 1)
    return text


@pytest.fixture
def validation_lab(tmp_path: Path) -> Iterator[Callable[..., ValidationSite]]:
    labs = []

    def start(device_defects: list[str] | None = None,
              replica_defects: list[str] | None = None,
              edit: Callable[[str], str] | None = None) -> ValidationSite:
        text = lab_text(device_defects or [], replica_defects)
        path = tmp_path / f"lab-{len(labs)}.toml"
        path.write_text(edit(text) if edit else text)
        inventory = load(path)
        lab = lab_for(inventory, tmp_path / f"state-{len(labs)}")
        labs.append(lab)
        lab.up(inventory)
        return ValidationSite(SystemUnderTest(inventory, lab))

    yield start
    for lab in labs:
        lab.down()
