"""iSCSI wire protocol (RFC 7143): PDUs as scapy layers, a fast codec for hot paths,
login/text key negotiation, CHAP and CRC32C digests.

Nothing here does I/O: the initiator and the target both build on it.
"""
