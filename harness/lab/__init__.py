"""The lab: a site described by an inventory, run on this machine with real processes.

The model. An *inventory* (``inventory``; the model in ``inventory_model``,
its checks in ``inventory_schema`` and ``inventory_real_site``, TOML lines in
``toml_source``) describes a site: networks with roles, hosts with roles and
addresses, HA devices with their replicas, budgets, MPIO settings. The same
inventory describes a real site (reached by ``harness.remote``) or a *lab*.

A *lab* is that site run here: each storage host is a reference target node
process (``node_process``), each node-majority device's witness a witness
process (``witness_daemon``), the HA devices wired between the nodes
(``ha_wiring``), and every link between them breakable. Two backends build it
and implement one ``Lab`` protocol (``backend``, which also holds what they
share: node configs, link purposes, ``LabError``):

- ``loopback.LoopbackLab``: hosts on 127.x addresses, every link a listener
  of the fault proxy (``proxy``, run by ``proxy_daemon``), no root;
- ``netns_lab.NetnsLab``: a network namespace per host and a bridge per network
  (``netns``), link faults in the kernel (root).

A lab's state lives in its state directory (``state``: processes, links,
owner, the fault journal), so another process can act on it. ``backends``
picks the backend for an inventory or a state directory; ``lifecycle.LabSite``
is the one way to use a lab: adopt the inventory's running lab or start one,
and take down only what it started.
"""
