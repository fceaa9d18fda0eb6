"""The harness's own iSCSI initiator: sessions to a portal, discovery, recording, and MPIO.

The model. A *session* (``session.Session``) is one iSCSI session with one TCP
connection (``connection``: PDU framing, optional recording) at
ErrorRecoveryLevel 0: it logs in (``login``: the security and operational
stages, CHAP), then runs SCSI commands through a command window bounded by
the target's MaxCmdSN. Each command in flight is a *task* (``task``: its
Data-Out or R2T bursts, its Data-In, and how it ended); NOP-Out pings, task
management and text requests are ``requests``; the named SCSI commands
(``read``, ``write``, ``pr_register``, ...) are ``commands``. A session never
raises for a SCSI status from ``execute``: the status comes back in the
result, and ``errors`` names what a caller may catch.

Around sessions: ``discovery`` (SendTargets), ``recorder`` (every PDU to a
pcap file), and ``mpio``, the multipath namespace: one disk over every path
to it, failing over the way Windows MPIO and dm-multipath do, built on a small
path interface that a ``Session`` is adapted to (see ``harness.initiator.mpio``).

Sockets come from a caller's factory when given (a cluster node's network
namespace, a source address), so the same initiator runs from any host of a lab.
The initiator never imports the target: they meet only in ``harness.iscsi``
and ``harness.scsi``.
"""
