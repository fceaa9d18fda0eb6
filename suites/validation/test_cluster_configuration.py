"""Cluster Configuration: the wizard's Cluster Configuration tests, one pytest test each."""

from __future__ import annotations

from suites.validation.wizard import wizard


def test_quorum_configuration(validation_site, validation_results):
    """Validate Quorum Configuration."""
    wizard("Validate Quorum Configuration", validation_site, validation_results)
