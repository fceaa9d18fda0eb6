"""Real peers to test against: Debian's tgtd and the bundled reference target, as processes.

The model. A *peer* is an independent iSCSI implementation (tgtd) or the
harness's own target run the way a site runs it (a reference target node
process), started on loopback with everything private to the caller: its own
ports, control socket, image files and management token, and stopped (SIGTERM,
then SIGKILL) when the caller is done, also after a failure. The protocol
suites compare both peers' answers; the harness's own tests and benchmarks use
them as the other end of a wire.

- :mod:`.tgtd`: ``start_tgtd()`` gives a ``TgtdDaemon`` (one ``tgtd -f`` on a free
  port with its own control port), whose ``new_target`` makes ``TgtdTarget`` s;
  ``tgtd_missing()`` says why it cannot run here.
- :mod:`.reference_target`: ``ReferenceTargetFactory`` starts ``ReferenceTarget``
  nodes from a ``NodeSpec`` (portals, targets and LUNs, CHAP, ACL, limits).

The pytest fixtures over them are ``fixtures.peers``'s. Peers live at the lab's
layer: they start processes of the layers below and know nothing above.
"""
