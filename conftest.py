"""Root pytest configuration.

The splitbrain plugin (``fixtures.plugin``) is registered through the
``pytest11`` entry point, so it also works after a plain ``pip install``; in a
checkout, ``make test`` installs the project in editable mode first.

The harness's own test helpers that provide fixtures (``tests/support``) are
registered here, for this checkout's tests only: they are not part of the
plugin users get.
"""

pytest_plugins = [
    "tests.support.chromium",
    "tests.support.example_results",
    "tests.support.netns",
    "tests.support.sshd",
]
