"""Hyper-V Configuration: the wizard's Hyper-V Configuration tests, one pytest test each."""

from __future__ import annotations

from suites.validation.wizard import wizard


def test_hyper_v_role_installed(validation_site, validation_results):
    """Validate Hyper-V Role Installed."""
    wizard("Validate Hyper-V Role Installed", validation_site, validation_results)
