"""The faults' integration tests reuse the lab tests' loopback echo server."""

from tests.integration.lab.conftest import echo

__all__ = ["echo"]
