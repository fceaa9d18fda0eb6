"""The lab failover cluster: nodes, membership, quorum, a CSV, VM roles that migrate.

The model is a two-node Windows Server failover cluster running Hyper-V VMs on
a Cluster Shared Volume over the HA iSCSI storage (the seed's Demo1 and Demo2):

- a *cluster node* is a process, the node's cluster service (``node``), with
  its own initiator identity and MPIO disks to the HA devices;
- *membership* is decided by heartbeats on the heartbeat network
  (``membership``: SameSubnetDelay / SameSubnetThreshold);
- *quorum* is two of three votes, the third a disk witness on the quorum
  device, arbitrated by SCSI-3 persistent reservations (``quorum``); a node
  that loses quorum stops its roles and its service;
- the *CSV* is the vm-storage device, attached by every node at once; each VM's
  virtual disk is its own region of it (``guest.VirtualDisk``);
- a *VM role* is a process (``vm``) with guest memory it keeps dirtying
  (``memory``) and a verifiable workload on its virtual disk, recorded as
  history segments joined by ``history``;
- a VM moves by *quick migration* (save, stop, start from the saved state) or
  *live migration* (``migration``: pre-copy passes over TCP, pause, last
  pages and device state, resume, announce with ``announce``); when its node
  dies, the survivor restarts it from its disk state;
- ``lab_cluster.LabCluster`` runs all of this on a lab and is what
  ``sut.cluster`` gives a suite; ``windows_cluster.WindowsCluster`` speaks the same
  verbs to a real cluster through the Windows driver.
"""
