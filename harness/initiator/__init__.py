"""The harness's iSCSI initiator: sessions, discovery, PDU recording and MPIO."""
