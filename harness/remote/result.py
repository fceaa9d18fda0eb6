"""The outcome of one command on a host, and the runner protocol that produces it.

A ``CommandResult`` is what every driver returns, whether the command ran over
SSH on a real host (``harness.remote.ssh``) or locally inside a lab network
namespace (``harness.lab.netns``). Code that only needs "run this argv and give
me the result" (the nftables table, the Linux facts parser) takes a
``CommandRunner`` and so works against both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from harness.remote.errors import CommandFailed


@dataclass(frozen=True)
class CommandResult:
    """One finished command: where it ran, what it was and what it printed."""

    host: str
    command: str
    exit_status: int
    stdout: str
    stderr: str
    duration_ns: int

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def check(self) -> CommandResult:
        """Return self if the command succeeded, else raise ``CommandFailed``."""
        if self.exit_status != 0:
            detail = (self.stderr.strip() or self.stdout.strip() or "no output").splitlines()
            if self.exit_status == -1:  # ssh reports no status for a command killed by a signal
                detail = ["killed by a signal or cut off before it reported an exit status"]
            raise CommandFailed(
                f"{self.command!r} failed on {self.host} with exit status {self.exit_status}: "
                f"{detail[-1][:300]}; run it by hand on {self.host} to see why",
                exit_status=self.exit_status,
                stderr=self.stderr,
            )
        return self


class CommandRunner(Protocol):
    """Runs one argument vector (no shell) and returns its result."""

    name: str

    def run_argv(
        self, argv: Sequence[str], *, check: bool = True, timeout: float | None = None
    ) -> CommandResult: ...
