"""Helpers for the harness's own tests: network namespaces, sshd, HA pairs in one
process, loop devices, a namespace site, headless Chromium, example results.

Not shipped with the plugin; the fixture modules are registered by the root
``conftest.py``. Peers the shipped suites need too are ``harness.peers``.
"""
