"""Network: the wizard's Network tests, one pytest test each (harness.validation)."""

from __future__ import annotations

from suites.validation.wizard import wizard


def test_cluster_network_configuration(validation_site, validation_results):
    """Validate Cluster Network Configuration."""
    wizard("Validate Cluster Network Configuration", validation_site, validation_results)


def test_ip_configuration(validation_site, validation_results):
    """Validate IP Configuration."""
    wizard("Validate IP Configuration", validation_site, validation_results)


def test_multiple_subnet_properties(validation_site, validation_results):
    """Validate Multiple Subnet Properties."""
    wizard("Validate Multiple Subnet Properties", validation_site, validation_results)


def test_network_communication(validation_site, validation_results):
    """Validate Network Communication."""
    wizard("Validate Network Communication", validation_site, validation_results)
