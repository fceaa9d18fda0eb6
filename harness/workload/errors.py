"""Errors a user can cause in the workload layer (bad device, bad history, bad options)."""

from __future__ import annotations

from harness.errors import SplitbrainError


class WorkloadError(SplitbrainError):
    """Base of the workload layer's errors."""


class DeviceError(WorkloadError):
    """A block device cannot be opened, or an I/O on it failed."""


class DeviceUrlError(DeviceError):
    """A ``--device`` value is neither a path nor a valid ``iscsi://`` URL."""


class HistoryError(WorkloadError):
    """A history file is missing, unreadable or not a splitbrain history."""


class WorkloadConfigError(WorkloadError):
    """Workload options that contradict each other or the device."""
