"""Inventory: the wizard's Inventory tests, one pytest test each (harness.validation)."""

from __future__ import annotations

from suites.validation.wizard import wizard


def test_list_operating_system_information(validation_site, validation_results):
    """List Operating System Information."""
    wizard("List Operating System Information", validation_site, validation_results)


def test_list_software_updates(validation_site, validation_results):
    """List Software Updates."""
    wizard("List Software Updates", validation_site, validation_results)
