"""Storage: the wizard's Storage tests, one pytest test each (harness.validation)."""

from __future__ import annotations

from suites.validation.wizard import wizard


def test_list_disks(validation_site, validation_results):
    """List Disks."""
    wizard("List Disks", validation_site, validation_results)


def test_list_potential_cluster_disks(validation_site, validation_results):
    """List Potential Cluster Disks."""
    wizard("List Potential Cluster Disks", validation_site, validation_results)


def test_disk_access_latency(validation_site, validation_results):
    """Validate Disk Access Latency."""
    wizard("Validate Disk Access Latency", validation_site, validation_results)


def test_disk_arbitration(validation_site, validation_results):
    """Validate Disk Arbitration."""
    wizard("Validate Disk Arbitration", validation_site, validation_results)


def test_disk_failover(validation_site, validation_results):
    """Validate Disk Failover."""
    wizard("Validate Disk Failover", validation_site, validation_results)


def test_microsoft_mpio_based_disks(validation_site, validation_results):
    """Validate Microsoft MPIO-based disks."""
    wizard("Validate Microsoft MPIO-based disks", validation_site, validation_results)


def test_multiple_arbitration(validation_site, validation_results):
    """Validate Multiple Arbitration."""
    wizard("Validate Multiple Arbitration", validation_site, validation_results)


def test_scsi_device_vital_product_data_vpd(validation_site, validation_results):
    """Validate SCSI device Vital Product Data (VPD)."""
    wizard("Validate SCSI device Vital Product Data (VPD)", validation_site, validation_results)


def test_scsi_3_persistent_reservation(validation_site, validation_results):
    """Validate SCSI-3 Persistent Reservation."""
    wizard("Validate SCSI-3 Persistent Reservation", validation_site, validation_results)


def test_simultaneous_failover(validation_site, validation_results):
    """Validate Simultaneous Failover."""
    wizard("Validate Simultaneous Failover", validation_site, validation_results)
