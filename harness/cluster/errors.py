"""Errors a user of the cluster layer can cause, each phrased as one actionable line."""

from __future__ import annotations

from harness.errors import SplitbrainError


class ClusterError(SplitbrainError):
    """A cluster operation that cannot be done (bad node, missing role, dead node)."""


class ClusterConfigError(ClusterError):
    """Cluster settings that make no sense (heartbeat, memory size, pass limit)."""


class MigrationFailed(ClusterError):
    """A migration that did not complete; the VM keeps running where it was."""
