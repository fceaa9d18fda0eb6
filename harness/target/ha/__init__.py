"""HA devices: one disk synchronously mirrored over two or more reference target nodes.

The model (the StarWind "HA device", docs/ha.md). An *HA device* has one
*replica* per node, each a LUN on that node with the same identity (VPD 0x83
designator and serial) under the node's own target name, so MPIO sees one disk
over every node's paths. A replica is Synchronized, Synchronizing or Not
synchronized (``replica``: the states, the metadata each persists, and the pure
decisions), and a write is acknowledged only when every synchronized replica
has it on disk (``mirror.HaDevice``, a ``BlockStore`` over the local image; the
writes are ordered by range locks, ``ordering``).

Partners talk over two links of their own: *sync* (mirrored writes, PR and
state changes) and *heartbeat* (liveness), each a ``channel`` carrying
``protocol`` frames. When the sync link is lost, ``failover`` decides which
replica keeps serving: by heartbeat, or by node majority with a third vote
(``witness``); node priorities break ties. A replica that comes back is
resynchronized while client I/O goes on (``resync``), fast from the regions a
survivor marked dirty (``dirtymap``, ``activity_log``) or fully.

``unit.HaLogicalUnit`` is the SCSI side of a replica (PR replication, resets,
ALUA states); ``config`` and ``node_config`` read a node's ``[[ha_device]]``
tables; ``service`` is the HA part of the node's management API, and
``administration`` the status it shows and the administrator's override.
"""
