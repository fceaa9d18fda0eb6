"""The bundled reference iSCSI target: a real RFC 7143 / SPC-4 / SBC-3 target in asyncio.

The model. A *node* (``node``) is one storage server process: it listens on one
*portal* per iSCSI address (``portal``; several portals give MPIO several
paths), exports *targets* (``targets``), each holding *logical units*, and
serves a management API (``management``). A TCP connection (``connection``)
logs in (``login``, ``authentication``: CHAP, initiator ACLs) and then belongs
to a *session* (``session``: command window, task management, logout) whose
commands become *tasks* (``task``: Data-Out, R2T, the answer). Each complete
command reaches its logical unit through an I_T nexus (``nexus``,
``lu_binding``).

A *logical unit* (``device``) is pure of networking: ``execute(ScsiTask) ->
TaskResult`` over a ``BlockStore`` (``blockstore``: a sparse image file), with
its identity (``identity``: INQUIRY, VPD), mode pages, ALUA port groups
(``alua``), and persistent reservations as a replaceable state machine
(``reservations``, ``pr_state``). ``ha`` turns several nodes' units into one
synchronously mirrored HA device by plugging in a mirrored store and unit.

What a site's storage does wrong on purpose lives beside it, never inside the
paths that are right: ``defects`` (deliberate defect modes, for the defect
zoo), ``disk_faults`` (a block store that can be made slow, failing or full)
and ``power_loss`` (writes not yet durable are lost when the node dies). A node
is configured by one TOML file (``config``, read by ``config_reader``) and
runs as a process (``node_process``; ``python -m harness.target serve``).

The target never imports the initiator: they meet only in ``harness.iscsi``
and ``harness.scsi``.
"""
