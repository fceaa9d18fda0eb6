"""Checkers: turn a recorded history and the devices' contents into verdicts.

Every checker block is a register (``model``); ``integrity`` judges the data read
back after the run, ``register`` the reads made during it, ``divergence`` the
replicas against each other (split brain), ``timing`` the caller's view of
failover against a budget and ``packet_timing`` the same times from a capture.
Each returns a ``verdict.Verdict`` of ``Problem``s that name the history records
behind them; ``compose.check_run`` runs them all.
"""
