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
  docstring). Overlapping faults are judged together as one episode, and the
  errors and pauses while every replica was impaired by injected faults (beyond
  the device's redundancy) are expected, counted apart (``episodes``);
  ``FaultReport.problems`` lists what is over budget (an episode's on its first
  fault's report); ``fault_judgement(...)`` adds the episodes and the windows;
  ``faults_verdict(reports, judgement)`` is the ``faults`` ``Verdict``;
  ``table_lines(reports)`` prints them.
- ``monotonic.check_read_monotonicity(history_path) -> Verdict``: reads across
  each other (also across initiators), streamed.
- ``packet_timing.check_scenario_capture(pcap, history_path, reports) -> Verdict``
  (``packet_faults``): the capture's longest gap, longest command and heal time
  beside each ``FaultReport``'s; ``beside_lines(verdict)`` prints them.
- ``stream_check.check_run_file(history_path, devices=..., replicas=...,
  budget=..., pcap=...) -> (RunVerdict, list[FaultReport])``: every checker for
  a history of any length (what the chaos run and ``splitbrain check`` use):
  one streamed pass (``register_stream``, ``monotonic``, whole-run timing,
  ``faults_report``), then the device and the replicas with a ``WriteIndex``
  built from the pass's ``write_table``.
- ``compose.check_run(history, ..., history_path=PATH)``: the same over a loaded
  history (small runs and tests; the per-fault and monotonicity verdicts when
  ``history_path`` is given).
- ``timeline_stream.timeline_data(history_path)``: what the timeline plot draws.

The history is read as a stream (``harness.workload.history_stream``), so memory
grows with the device (per-block arrays), the run's length in 5 ms buckets and
the writes (57 bytes each in the write table), never with one Python object per
operation (``bench/check_scale.py``).
"""
