"""SCSI command set shared by initiator and target (SPC-4 / SBC-3 subset).

CDB builders and parsers, sense data, VPD pages, persistent reservation data,
ALUA target port groups and mode pages. Every structure has both an encoder and
a decoder, so the target builds what the initiator parses with the same code.
"""
