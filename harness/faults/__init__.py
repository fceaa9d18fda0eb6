"""The nemesis: faults that break a site on purpose and always heal.

A fault is a context manager with ``inject`` and ``heal``. It is written to the
fault journal before it is applied, so ``splitbrain heal`` can undo it even after
the harness itself was killed.
"""
