"""System Configuration: the wizard's System Configuration tests, one pytest test each."""

from __future__ import annotations

from suites.validation.wizard import wizard


def test_operating_system_edition(validation_site, validation_results):
    """Validate Operating System Edition."""
    wizard("Validate Operating System Edition", validation_site, validation_results)


def test_operating_system_version(validation_site, validation_results):
    """Validate Operating System Version."""
    wizard("Validate Operating System Version", validation_site, validation_results)


def test_required_services(validation_site, validation_results):
    """Validate Required Services."""
    wizard("Validate Required Services", validation_site, validation_results)


def test_same_processor_architecture(validation_site, validation_results):
    """Validate Same Processor Architecture."""
    wizard("Validate Same Processor Architecture", validation_site, validation_results)


def test_software_update_levels(validation_site, validation_results):
    """Validate Software Update Levels."""
    wizard("Validate Software Update Levels", validation_site, validation_results)
