"""SCSI command set shared by initiator and target (SPC-4 / SBC-3 subset).

Every structure has both an encoder and a decoder in one module, so the target
builds what the initiator parses with the same code:

- ``cdb`` (with ``block_cdbs`` and ``command``): one dataclass per command, ``encode()``
  to build a CDB, ``parse_cdb()`` to read one, with direction and transfer length;
- ``status``, ``sense``: the status byte, sense keys, named ASC/ASCQ, fixed and
  descriptor sense data;
- ``inquiry``, ``vpd``: standard INQUIRY data and VPD pages 00h/80h/83h/B0h/B1h/B2h;
- ``capacity``, ``report_luns``, ``mode``, ``unmap``, ``provisioning``: block-device data;
- ``reservations``: PERSISTENT RESERVE IN data and OUT parameter lists, TransportIDs;
- ``alua``: REPORT/SET TARGET PORT GROUPS data; ``supported_opcodes``: RSOC data;
- ``errors``: typed errors for malformed CDBs, parameter lists and pages.
"""
