"""Presentation only: what a person or a CI system reads of recorded results.

The model. Validation and chaos runs write *results* (``harness.checks.results``:
one ``CheckResult`` per check or scenario, with evidence and attachments, in a
results directory); nothing here decides a verdict. This package turns those
records into what people read, and never re-runs anything:

- while a command runs: ``console`` (progress on a terminal, plain timestamped
  lines in a CI log);
- from a results directory (``records`` reads what can be read and says what
  could not; ``build`` is ``splitbrain report``): the audit report (``audit``,
  one printable HTML page in the validation wizard's style, with ``templates``),
  Allure results and the Allure HTML report (``allure_results``,
  ``allure_html``), JUnit XML (``junit``), and a SHA-256 manifest of every file
  shipped (``manifest``);
- for chaos runs: ``scenario_record`` (a scenario's record with its evidence
  files), ``run_summary`` (what ``splitbrain run`` leaves: verdict.json,
  summary.txt) and ``timeline`` (latency, throughput, fault windows and path
  changes over the run).
"""
