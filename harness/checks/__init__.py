"""Checkers: turn a recorded history and the devices' contents into verdicts.

Every checker block is a register (``model``); ``integrity`` judges the data read
back after the run, ``register`` the reads made during it, ``monotonic`` those
reads against each other (no going back to an older value), ``divergence`` the
replicas against each other (split brain), ``timing`` the whole run's pauses and
errors, ``faults_report`` each fault window's honest numbers against the
inventory's budgets, and ``packet_timing`` the same times from a capture.
Each returns a ``verdict.Verdict`` of ``Problem``s that name the history records
behind them (``verdict`` is the one place problems become a verdict);
``compose.check_run`` runs them all.

The API the chaos runner uses:

- ``faults_report.per_fault_report(history_path, fault_windows=None, budgets=None)
  -> list[FaultReport]``: per fault (default: the history's own ``fault``
  records; or ``harness.workload.history.FaultWindow``s from a journal or
  schedule) the longest gap with no completion overlapping the window, the
  longest operation, stalled operations, caller errors, time until every path
  carries I/O again and until Synchronized, each judged by a named budget
  (``path_failover_s``, ``op_latency_s``, ``stalled_ops_max``,
  ``caller_errors_max``, ``heal_to_all_paths_s``, ``resync_s`` ...; see its
  docstring). ``FaultReport.problems`` lists what is over budget;
  ``faults_verdict(reports)`` is the ``faults`` ``Verdict``;
  ``table_lines(reports)`` prints them.
- ``monotonic.check_read_monotonicity(history_path) -> Verdict``: reads across
  each other (also across initiators), streamed.
- ``packet_timing.check_scenario_capture(pcap, history_path, reports) -> Verdict``
  (``packet_faults``): the capture's longest gap, longest command and heal time
  beside each ``FaultReport``'s; ``beside_lines(verdict)`` prints them.
- ``compose.check_run(history, ..., history_path=PATH)`` adds these verdicts to
  the others (the capture's when ``pcap`` is given).

The history is read as a stream (``harness.workload.history_stream``) by the
checkers that scale with the run's length, so memory grows with the device and
the number of faults, not with the number of operations.
"""
