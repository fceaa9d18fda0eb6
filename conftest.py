"""Root pytest configuration.

The splitbrain plugin (``fixtures.plugin``) is registered through the
``pytest11`` entry point, so it also works after a plain ``pip install``; in a
checkout, ``make test`` installs the project in editable mode first.
"""
