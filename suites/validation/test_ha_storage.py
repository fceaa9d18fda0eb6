"""HA Storage: what an HA iSCSI SAN needs that the wizard does not check."""

from __future__ import annotations

from suites.validation.wizard import wizard


def test_ha_devices_synchronized(validation_site, validation_results):
    """Validate HA Devices Synchronized."""
    wizard("Validate HA Devices Synchronized", validation_site, validation_results)


def test_ha_mpio_policy(validation_site, validation_results):
    """Validate HA MPIO Policy."""
    wizard("Validate HA MPIO Policy", validation_site, validation_results)


def test_ha_partner_naming(validation_site, validation_results):
    """Validate HA Partner Naming."""
    wizard("Validate HA Partner Naming", validation_site, validation_results)


def test_ha_portal_discovery(validation_site, validation_results):
    """Validate HA Portal Discovery."""
    wizard("Validate HA Portal Discovery", validation_site, validation_results)


def test_ha_quorum_and_vm_storage_devices(validation_site, validation_results):
    """Validate HA Quorum and VM Storage Devices."""
    wizard("Validate HA Quorum and VM Storage Devices", validation_site, validation_results)


def test_ha_replica_data(validation_site, validation_results):
    """Validate HA Replica Data."""
    wizard("Validate HA Replica Data", validation_site, validation_results)


def test_ha_replica_placement(validation_site, validation_results):
    """Validate HA Replica Placement."""
    wizard("Validate HA Replica Placement", validation_site, validation_results)


def test_ha_sync_and_heartbeat_networks(validation_site, validation_results):
    """Validate HA Sync and Heartbeat Networks."""
    wizard("Validate HA Sync and Heartbeat Networks", validation_site, validation_results)
