"""The inventory model and the bundled lab: topology, node processes, loopback and
network-namespace backends, and the fault proxy every lab link passes through."""
