"""MPIO: one disk over every path to it, failing over the way Windows MPIO and dm-multipath do.

The model, bottom up (each module imports only those listed before it):

- :mod:`.link` — the path interface: a :class:`~.link.PathSpec` says how to
  reach one I_T_L nexus, a :class:`~.link.PathLink` runs one SCSI command on
  it and returns a :class:`~.link.ScsiOutcome` (a status is never an
  exception), and :class:`~.link.PathLost` means the path no longer carries
  commands. Nothing here knows of sessions or devices.
- :mod:`.status` (path states, ALUA states, events, statistics),
  :mod:`.timers` (the Windows MPIO and open-iscsi timers), :mod:`.errors`,
  :mod:`.policies` (the MSDSM load-balance policies) and :mod:`.redrive`
  (what a command's outcome means: done, retry, re-drive, fail the path).
- :mod:`.probe` — what the device asks a new path: its identity (VPD 0x83),
  capacity, readiness and ALUA port-group states.
- :mod:`.reservations` — persistent reservations over every path; it drives
  the device through the small :class:`~.reservations.ReservationPaths`
  protocol, so it never imports the device.
- :mod:`.device` — :class:`~.device.MultipathDevice`, which owns one path per
  spec with its watcher, checker and recovery tasks.
- :mod:`.session_link` — the adapter above the device: the harness's own
  iSCSI ``Session`` as a ``PathLink`` (``session_connector``), and
  ``multipath_from_sessions``.

The package re-exports nothing: import from the module that defines a name.
"""
