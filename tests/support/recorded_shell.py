"""A stand-in for ``RemoteHost.execute`` in unit tests: no SSH, no host.

``Recorder`` keeps every command line it is given and answers each from a table
(the first key found in the line: exit status and stdout; no match: 0 and "").
"""

from __future__ import annotations

from harness.remote.result import CommandResult


class Recorder:
    """Stands in for ``execute``: records command lines, answers from a table."""

    def __init__(self, answers: dict[str, tuple[int, str]] | None = None) -> None:
        self.lines: list[str] = []
        self.answers = answers or {}

    def __call__(self, command: str, *, check: bool = True, timeout: float | None = None,
                 stdin: str | None = None) -> CommandResult:
        self.lines.append(command)
        status, out = next((v for k, v in self.answers.items() if k in command), (0, ""))
        result = CommandResult("h", command, status, out, "", 1)
        return result.check() if check else result
