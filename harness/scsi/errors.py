"""Errors raised when SCSI data (a CDB, a page, a parameter list) cannot be parsed.

``ScsiDataError`` is what the initiator sees when a target returns a malformed
page. The target maps ``CdbError`` and ``ParameterListError`` to CHECK CONDITION
with the right sense (INVALID FIELD IN CDB / PARAMETER LIST, with a field pointer).
"""

from __future__ import annotations

from harness.errors import SplitbrainError


class ScsiDataError(SplitbrainError):
    """SCSI data (page, parameter list, sense) is malformed or truncated."""


class CdbError(ScsiDataError):
    """A CDB is malformed: carries the byte (and bit) of the offending field."""

    def __init__(self, message: str, *, byte: int = 0, bit: int | None = None) -> None:
        super().__init__(message)
        self.byte = byte
        self.bit = bit


class UnsupportedOpcode(CdbError):
    """The operation code (or service action) is not one this command set knows."""


class ParameterListError(ScsiDataError):
    """A parameter list (Data-Out) is malformed: carries the offending byte/bit."""

    def __init__(
        self, message: str, *, byte: int = 0, bit: int | None = None, length_error: bool = False
    ) -> None:
        super().__init__(message)
        self.byte = byte
        self.bit = bit
        self.length_error = length_error
