"""Typed errors of the real-host drivers.

Every message is one line: what happened, on which host, and what to do. The
drivers never let a paramiko, socket or JSON exception escape bare.
"""

from __future__ import annotations

from harness.errors import SplitbrainError


class RemoteError(SplitbrainError):
    """Base of every error raised while driving a real host."""


class MissingSecret(RemoteError):
    """A ``${ENV}`` reference names an environment variable that is not set."""


class HostUnreachable(RemoteError):
    """The SSH connection could not be opened within the retry budget."""


class AuthenticationFailed(RemoteError):
    """The host answered but refused our credentials (not retried)."""


class CommandFailed(RemoteError):
    """A command ran and exited non-zero while the caller required success."""

    def __init__(self, message: str, *, exit_status: int, stderr: str) -> None:
        super().__init__(message)
        self.exit_status = exit_status
        self.stderr = stderr


class CommandTimedOut(RemoteError):
    """A command did not finish within its timeout."""


class UnsafeArgument(RemoteError):
    """A name or value cannot be expressed safely in the target syntax."""


class ForeignState(RemoteError):
    """State we were asked to remove is not (only) ours, so it is left alone."""


class OutputFormatError(RemoteError):
    """A command's output did not have the shape the driver expects."""


class PowerShellError(RemoteError):
    """A PowerShell cmdlet raised a terminating error on a Windows host."""

    def __init__(self, message: str, *, error_id: str = "", category: str = "") -> None:
        super().__init__(message)
        self.error_id = error_id
        self.category = category
