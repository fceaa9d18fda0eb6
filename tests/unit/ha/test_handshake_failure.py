"""Why a partner-link handshake failed: one mapping for both sides (channel.py)."""

from __future__ import annotations

import asyncio

import pytest

from harness.target.ha.channel import HANDSHAKE_FAILURES, handshake_failure
from harness.target.ha.protocol import SyncProtocolError


@pytest.mark.parametrize(("exc", "reason"), [
    (TimeoutError(), "no answer within 0.50s"),  # an OSError too: silence wins
    (asyncio.IncompleteReadError(b"", 8), "closed during the handshake (IncompleteReadError)"),
    (ConnectionResetError(), "closed during the handshake (ConnectionResetError)"),
    (OSError(), "closed during the handshake (OSError)"),
    (RuntimeError(), "closed during the handshake (RuntimeError)"),
    (SyncProtocolError("frame of 9 bytes is too short"), "frame of 9 bytes is too short"),
])
def test_each_failure_names_its_reason(exc: BaseException, reason: str) -> None:
    assert isinstance(exc, HANDSHAKE_FAILURES)
    assert handshake_failure(exc, 0.5, "no answer") == reason
