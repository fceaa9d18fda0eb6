"""Messages of the HA sync and heartbeat channels, and their framing.

Every message is one frame: a fixed 32-byte header followed by a payload.

    magic  u16  0x5342 ("SB")
    kind   u8   MessageKind
    flags  u8   reserved, 0
    seq    u64  sequence number assigned by the sequencer (0 when none)
    rid    u64  request id chosen by the sender of a request (0 when none)
    lba    u64  first logical block (0 when none)
    length u32  payload length in bytes

Control payloads (HELLO, PR requests and results, state) are UTF-8 JSON; data
payloads (ORDER of a write or a resync copy, WRITE_REQ) are raw block data.
The framing is deliberately not iSCSI: the sync channel is the storage
servers' private link, and a tiny fixed header keeps the mirror path cheap.
"""

from __future__ import annotations

import asyncio
import enum
import json
import struct
from dataclasses import dataclass
from typing import Any

from harness.errors import SplitbrainError

MAGIC = 0x5342
HEADER = struct.Struct("!HBBQQQI")
HEADER_SIZE = HEADER.size
#: A frame larger than this is a protocol violation (largest write plus margin).
MAX_PAYLOAD = 64 * 1024 * 1024


class SyncProtocolError(SplitbrainError):
    """The partner sent something that is not a valid sync-channel frame."""


class MessageKind(enum.IntEnum):
    HELLO = 1  # JSON: who I am, my generation and state
    ORDER = 2  # sequencer -> partner: apply this, in this order
    ACK = 3  # partner -> sequencer: order `seq` applied (and persisted)
    WRITE_REQ = 4  # partner -> sequencer: please sequence this write (data)
    APPLIED = 5  # sequencer -> partner: sequencer applied order `seq`
    REFUSED = 6  # sequencer -> partner: request `rid` refused (JSON reason)
    PR_REQ = 7  # partner -> sequencer: run this PR OUT (JSON)
    PR_RESULT = 8  # sequencer -> partner: result of PR request `rid` (JSON)
    PING = 9  # keepalive on sync and heartbeat channels
    PONG = 10
    RESYNC_DONE = 11  # source -> target: every region copied (JSON generation)
    GOODBYE = 12  # orderly shutdown of the channel (JSON reason)
    FENCE = 13  # heartbeat, survivor -> partner: I carry on alone, stop serving (JSON)
    FENCED = 14  # heartbeat, partner -> survivor: stopped, and persisted that it did


class OrderKind(enum.IntEnum):
    """What an ORDER asks the partner to apply (carried in the frame flags)."""

    WRITE = 0  # write carrying its data
    FORWARDED = 1  # write whose data the partner already holds (rid names it)
    RESYNC = 2  # copy of a region during resynchronization
    UNMAP = 3  # deallocate `count` blocks (count in the JSON payload)
    PR = 4  # persistent reservation state after a PR OUT (JSON)


@dataclass(slots=True)
class Message:
    kind: MessageKind
    seq: int = 0
    rid: int = 0
    lba: int = 0
    payload: bytes | memoryview = b""
    flags: int = 0

    @property
    def order_kind(self) -> OrderKind:
        return OrderKind(self.flags)

    def json(self) -> Any:
        try:
            return json.loads(bytes(self.payload).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SyncProtocolError(
                f"{self.kind.name} frame carries invalid JSON ({exc}); partner is "
                "not a compatible splitbrain node"
            ) from None


def control(kind: MessageKind, body: Any, *, seq: int = 0, rid: int = 0, flags: int = 0) -> Message:
    """A message whose payload is ``body`` as JSON."""
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return Message(kind, seq=seq, rid=rid, payload=payload, flags=flags)


def encode(msg: Message) -> bytes:
    header = HEADER.pack(MAGIC, msg.kind, msg.flags, msg.seq, msg.rid, msg.lba, len(msg.payload))
    return header + bytes(msg.payload)


def decode_header(header: bytes) -> tuple[MessageKind, int, int, int, int, int]:
    magic, kind, flags, seq, rid, lba, length = HEADER.unpack(header)
    if magic != MAGIC:
        raise SyncProtocolError(
            f"bad frame magic 0x{magic:04x} on sync channel: the peer is not a splitbrain node"
        )
    try:
        kind = MessageKind(kind)
    except ValueError:
        raise SyncProtocolError(f"unknown sync message kind {kind}") from None
    if length > MAX_PAYLOAD:
        raise SyncProtocolError(f"sync frame of {length} bytes exceeds {MAX_PAYLOAD}")
    return kind, flags, seq, rid, lba, length


def decode(frame: bytes) -> Message:
    kind, flags, seq, rid, lba, length = decode_header(frame[:HEADER_SIZE])
    payload = frame[HEADER_SIZE:]
    if len(payload) != length:
        raise SyncProtocolError(f"{kind.name} frame truncated: {len(payload)} of {length} bytes")
    return Message(kind, seq=seq, rid=rid, lba=lba, payload=payload, flags=flags)


async def read_message(reader: asyncio.StreamReader) -> Message:
    """Read one frame; EOF raises ``asyncio.IncompleteReadError``."""
    header = await reader.readexactly(HEADER_SIZE)
    kind, flags, seq, rid, lba, length = decode_header(header)
    payload = await reader.readexactly(length) if length else b""
    return Message(kind, seq=seq, rid=rid, lba=lba, payload=payload, flags=flags)
