"""The chaos run: a workload and a nemesis against a system under test, then every checker.

The model (DESIGN.md, "data flow of a chaos test"): a caller hands the runner a
*system under test* (the bundled lab or a real site, the same ``sut`` the suites
use) that is already up; the runner never brings a site up or down. A run is a
seeded ``Schedule`` of faults (``schedule``: the one generator, from the
inventory alone) played by the nemesis while the stamped workload writes over
MPIO; ``observers`` record replica states and each fault's lost paths into the
same history; ``phases`` are the timed parts (chaos, then checks); ``runner``
ties them together and heals every fault on every way out. ``signals`` turns
SIGINT/SIGTERM into a clean stop. The command line adopts a running lab or
starts one with the lab layer's lifecycle (``harness.lab.lifecycle.LabSite``).
"""
