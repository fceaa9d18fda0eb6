"""The bundled reference iSCSI target: node process, portals, LUNs on image files,
persistent reservations, ALUA, CHAP and ACLs, and a management API."""
