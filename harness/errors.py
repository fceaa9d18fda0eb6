"""Base of every error a user can cause.

A ``SplitbrainError`` carries a one-line message that says what happened, where,
and what to do. The command line prints exactly that line and exits non-zero;
pytest shows it as the failure reason. Each layer derives its own typed errors
from it (``harness.iscsi.errors``, ``harness.initiator.errors``, ...).
"""

from __future__ import annotations


class SplitbrainError(Exception):
    """An error with a one-line, actionable message."""

    exit_code = 1

    def __str__(self) -> str:  # keep it one line whatever the caller passed
        text = super().__str__()
        return " ".join(text.split())
