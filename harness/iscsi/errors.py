"""Typed errors of the iSCSI wire layer.

Everything a peer (or a user crafting PDUs) can get wrong on the wire ends in one
of these, never in a bare ``struct.error`` or ``IncompleteReadError``: the
initiator turns them into a failed session, the target answers with a Reject or
drops the connection. All derive from :class:`harness.errors.SplitbrainError`
and carry a one-line message (what happened, where, what to do).
"""

from __future__ import annotations

from harness.errors import SplitbrainError


class ProtocolError(SplitbrainError):
    """A PDU or a byte stream that breaks RFC 7143.

    ``bhs`` holds the 48-byte Basic Header Segment of the offending PDU when it was
    read, so a target can quote it in a Reject PDU.
    """

    def __init__(self, message: str, *, bhs: bytes | None = None) -> None:
        super().__init__(message)
        self.bhs = bhs


class ConnectionClosed(ProtocolError):
    """The peer closed the connection cleanly between two PDUs."""


class TruncatedPdu(ProtocolError):
    """The stream or buffer ended inside a PDU."""


class UnknownOpcode(ProtocolError):
    """A BHS with an opcode that RFC 7143 does not define (answer: Reject, reason 0x04)."""

    def __init__(self, opcode: int, *, bhs: bytes) -> None:
        super().__init__(
            f"unknown iSCSI opcode 0x{opcode:02x} in a received PDU header; "
            "the peer is not speaking RFC 7143 (reject it or close the connection)",
            bhs=bhs,
        )
        self.opcode = opcode


class DigestError(ProtocolError):
    """A CRC32C header or data digest that does not match the bytes it covers."""

    def __init__(self, message: str, *, bhs: bytes | None = None, header: bool) -> None:
        super().__init__(message, bhs=bhs)
        self.header = header


class PduTooLarge(ProtocolError):
    """A DataSegmentLength above the negotiated MaxRecvDataSegmentLength."""

    def __init__(self, length: int, limit: int, *, bhs: bytes | None = None) -> None:
        super().__init__(
            f"iSCSI PDU announces a {length}-byte data segment, above the negotiated "
            f"MaxRecvDataSegmentLength of {limit}; the peer ignores negotiation "
            "(reject the PDU or raise the limit)",
            bhs=bhs,
        )
        self.length = length
        self.limit = limit


class NegotiationError(SplitbrainError):
    """Login or text negotiation that cannot reach an agreement (RFC 7143 section 13)."""


class AuthenticationError(NegotiationError):
    """CHAP failed: a wrong response, a reflected challenge or a malformed CHAP key."""
