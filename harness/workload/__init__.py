"""Verifiable block workload: stamped blocks, seeded writers, recorded history.

- ``stamp``: every 512-byte sector of every write says which write put it there
  (run generation, writer, sequence, its own address) under a CRC32C, so a read
  alone tells intact, never written, torn, misplaced and corrupt blocks apart.
- ``generator``: the seeded plan of each writer (same seed, same operations).
- ``writers``: N writers x queue depth driving a ``BlockDevice`` and recording
  every operation (invoke, then ok / fail / info) in a ``History``.
- ``history``: the Jepsen-style JSON-lines history, faults and path changes included.
- ``device`` / ``iscsi_device``: the ``BlockDevice`` contract and its local file,
  single iSCSI path and MPIO implementations.

The checkers that judge a history live in ``harness.checks``.
"""
