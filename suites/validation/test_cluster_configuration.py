"""Cluster Configuration: the wizard's Cluster Configuration tests, one pytest test each."""

from __future__ import annotations

from suites.validation.wizard import wizard


def test_quorum_configuration(validation_site, validation_results):
    """Validate Quorum Configuration."""
    wizard("Validate Quorum Configuration", validation_site, validation_results)


def test_list_clustered_roles(validation_site, validation_results):
    """List Clustered Roles."""
    wizard("List Clustered Roles", validation_site, validation_results)


def test_resource_status(validation_site, validation_results):
    """Validate Resource Status."""
    wizard("Validate Resource Status", validation_site, validation_results)
