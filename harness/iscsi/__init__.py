"""iSCSI wire protocol (RFC 7143): PDUs as scapy layers, a fast codec for hot paths,
login/text key negotiation, CHAP and CRC32C digests.

Nothing here does I/O except reading PDUs off a stream the caller owns: the
initiator and the target both build on it.

- ``codec``: ``encode``/``decode``/``pdu_length``/``read_pdu`` over one ``__slots__``
  class per PDU (``initiator_pdus``, ``target_pdus``, base in ``pdu``); the hot path.
- ``layers``: the same PDUs as scapy layers for captures and crafted probes
  (``bind_port``, ``iter_pdus``, ``ISCSI.tcp_reassemble`` for ``TCPSession``).
- ``codes``: every code point (opcodes, stages, login status, TMF, reject reasons).
- ``keys`` and ``negotiation``: text keys, ``SessionParameters`` and RFC 7143
  section 6/13 negotiation for either side.
- ``chap``: CHAP for the initiator and the target, one-way and mutual.
- ``digest``: CRC32C header and data digests.
- ``errors``: typed wire errors, all ``SplitbrainError``.
"""
