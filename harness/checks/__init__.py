"""Checkers: turn a recorded history and the devices' contents into verdicts."""
