"""PowerShell over OpenSSH: quoting, the script envelope, and parsing its JSON answer.

The model: every Windows operation is one PowerShell *pipeline* (text built here
with every value as a single-quoted literal), wrapped in a fixed *envelope* that
sets ``$ErrorActionPreference = 'Stop'``, silences progress records, switches
the console to UTF-8, collects the pipeline's objects into an array and prints
them as one line of ``ConvertTo-Json -Depth N -Compress``. A terminating error
is caught and printed to stderr as one JSON object (message, error id,
category) with exit status 1. The script travels as
``powershell.exe -NoProfile -NonInteractive -EncodedCommand <base64 of UTF-16LE>``,
so neither cmd.exe (the default shell of Windows OpenSSH) nor PowerShell ever
parses a value as code: quoting happens exactly once, here.

Values are quoted with ``literal`` (single quotes, with every kind of single
quote PowerShell recognises doubled). Names that cmdlets would treat as
wildcards are matched with ``-eq`` in ``Where-Object`` instead of being passed
to ``-Name``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.remote.errors import OutputFormatError, PowerShellError, UnsafeArgument

POWERSHELL = "powershell.exe"
MAX_COMMAND_LINE = 8000  # cmd.exe refuses command lines over 8191 characters
JSON_DEPTH = 4

# PowerShell treats U+2018..U+201B as single quotes too; each must be doubled.
_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_QUOTE_RE = re.compile(f"([{_SINGLE_QUOTES}])")

ENVELOPE = """\
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
try {{
    $splitbrainResult = @(
{body}
    )
    ConvertTo-Json -InputObject $splitbrainResult -Depth {depth} -Compress
}} catch {{
    $splitbrainError = [ordered]@{{
        message = $_.Exception.Message
        errorId = [string]$_.FullyQualifiedErrorId
        category = [string]$_.CategoryInfo.Category
    }}
    [Console]::Error.WriteLine((ConvertTo-Json -InputObject $splitbrainError -Compress))
    exit 1
}}
"""


def literal(value: object) -> str:
    """``value`` as a PowerShell single-quoted string literal (no expansion at all)."""
    text = str(value)
    if "\x00" in text:
        raise UnsafeArgument(f"{text!r} contains a NUL character, which PowerShell cannot pass")
    return "'" + _QUOTE_RE.sub(r"\1\1", text) + "'"


def literal_list(values: Iterable[object]) -> str:
    """``@('a', 'b')``: an array of literals."""
    return "@(" + ", ".join(literal(v) for v in values) + ")"


def integer(value: object, *, low: int = 0, high: int = 2**31 - 1) -> str:
    """An integer argument, range-checked (never text from the caller)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UnsafeArgument(f"{value!r} is not an integer in {low}..{high}")
    return str(value)


def choice(value: str, allowed: Iterable[str]) -> str:
    """A bare enum word (e.g. ``Live``), only from ``allowed``."""
    options = tuple(allowed)
    if value not in options:
        raise UnsafeArgument(f"{value!r} is not one of {', '.join(options)}")
    return value


def wrap(body: str, *, depth: int = JSON_DEPTH) -> str:
    """The full script: ``body`` (one or more pipelines) inside the JSON envelope."""
    indented = "\n".join("        " + line for line in body.strip().splitlines())
    return ENVELOPE.format(body=indented, depth=depth)


def encode(script: str) -> str:
    """Base64 of the UTF-16LE script, as ``-EncodedCommand`` expects."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def command_line(script: str) -> str:
    """The command line sent over SSH; safe under cmd.exe and PowerShell alike."""
    line = f"{POWERSHELL} -NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass " \
           f"-EncodedCommand {encode(script)}"
    if len(line) > MAX_COMMAND_LINE:
        raise UnsafeArgument(
            f"the PowerShell script is too long for a Windows command line ({len(line)} > "
            f"{MAX_COMMAND_LINE} characters): split the operation"
        )
    return line


def decode_command_line(line: str) -> str:
    """The script inside a ``command_line`` (for transcripts and tests)."""
    match = re.search(r"-EncodedCommand\s+([A-Za-z0-9+/=]+)", line)
    if not match:
        raise OutputFormatError(f"{line[:60]!r} is not a powershell -EncodedCommand line")
    return base64.b64decode(match.group(1)).decode("utf-16-le")


_CLIXML_ERROR = re.compile(r'<S S="Error">(.*?)</S>', re.S)


def _clixml_text(stderr: str) -> str:
    """Readable text of PowerShell's ``#< CLIXML`` error stream, if that is what we got."""
    if "#< CLIXML" not in stderr:
        return stderr.strip()
    parts = [p.replace("_x000D_", "").replace("_x000A_", " ")
             for p in _CLIXML_ERROR.findall(stderr)]
    return " ".join(" ".join(parts).split()) or stderr.strip()


@dataclass(frozen=True)
class PowerShellFailure:
    message: str
    error_id: str
    category: str


def parse_error(stderr: str) -> PowerShellFailure:
    """The envelope's error object from stderr, or the best text we can find there."""
    for line in reversed(stderr.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and "message" in doc:
                return PowerShellFailure(str(doc.get("message", "")).strip(),
                                         str(doc.get("errorId", "")),
                                         str(doc.get("category", "")))
    return PowerShellFailure(_clixml_text(stderr) or "no error text", "", "")


def raise_for(stderr: str, *, operation: str, host: str, hint: str = "") -> None:
    failure = parse_error(stderr)
    first = failure.message.splitlines()[0] if failure.message else "failed"
    ident = f" [{failure.error_id}]" if failure.error_id else ""
    advice = hint or "run the cmdlet by hand in an elevated PowerShell on that host"
    raise PowerShellError(f"{operation} failed on {host}: {first}{ident}; {advice}",
                          error_id=failure.error_id, category=failure.category)


def parse_output(stdout: str, *, operation: str, host: str) -> list[Any]:
    """The envelope's JSON array (tolerating a bare object and PS 5.1's value/Count wrap)."""
    text = stdout.strip().lstrip("\ufeff")
    if not text:
        return []
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    try:
        doc = json.loads(text[start:] if start > 0 else text)
    except ValueError:
        raise OutputFormatError(
            f"{operation} on {host} did not print JSON ({text[:80]!r}): check that the login "
            "shell is cmd.exe or PowerShell and no profile prints text"
        ) from None
    if isinstance(doc, dict) and set(doc) == {"value", "Count"}:
        doc = doc["value"]
    if doc is None:
        return []
    return doc if isinstance(doc, list) else [doc]
