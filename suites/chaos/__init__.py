"""Chaos suites: one module per fault family, each scenario a test on the ``sut``."""
