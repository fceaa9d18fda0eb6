"""The Failover Cluster "Validate a Configuration" wizard, and the HA-storage checks it lacks.

The model: a *check* is one test of the wizard's catalogue (or one HA-storage
check the wizard does not know), named as the wizard names it, in one of its
categories ("Inventory", "Network", "Storage", "System Configuration",
"Hyper-V Configuration", "Cluster Configuration") or in "HA Storage". A check
runs against a *site* (``ValidationSite``: the system under test of an
inventory, lab or real) and ends in one of the wizard's result words with a
one-line reason and its evidence: the CDBs sent and what came back, the
commands run on hosts, the numbers measured. That is a ``CheckResult``
(``harness.checks.results``), the record the report layer renders.

Storage checks talk SCSI through the harness's own initiators, one per cluster
node with that node's IQN, logged in on every path of a disk and registering
on every path as a cluster does. Checks that write or reserve (``destructive``)
touch only devices the inventory marks ``test = true`` and that no
initiator has registered on (a disk in use is never touched). Network checks
ping between the lab's namespaces, connect over TCP on the loopback lab, and
run ``ping`` on real hosts through the remote drivers. A check that cannot
apply says Not Applicable with the reason, never Success.

Modules: ``model`` (registry, the run of one check, summary words), ``site``
(the system under test as the checks see it: cluster nodes, test devices,
thresholds, remote drivers), ``paths`` (SCSI over every path with evidence),
one module per category (``storage``, ``arbitration`` for the
reserve-and-failover half of Storage, ``network``, ``ha_storage``, ``system``),
and ``runner`` (select by name or category, run, write results).
"""
