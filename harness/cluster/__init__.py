"""Failover-cluster operations: membership, quorum, CSV, VM roles and migration."""
