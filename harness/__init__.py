"""splitbrain: validation and chaos-testing harness for highly available iSCSI storage.

The import package is ``harness``; layers import only downward:

    iscsi, scsi  ->  initiator, target  ->  lab, faults, remote, workload, checks, cluster
                 ->  report, cli

See docs/architecture.md.
"""

__version__ = "0.1.0"
