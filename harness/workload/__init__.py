"""Verifiable block workload: stamped blocks, seeded writers, recorded history."""
