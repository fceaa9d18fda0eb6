"""Who a logical unit says it is: standard INQUIRY and the VPD pages built from its identity.

Model: a ``LuIdentity`` is configuration (vendor, product, revision, unit serial,
NAA designator). HA replicas of one device are given the same identity so every
node and path reports identical LU designators (VPD 80h and the LU-associated
83h designators); the target-port designators (relative port, port group,
target port and target device names) come from the I_T nexus the request
arrived on and differ per path, as SPC-4 requires.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from harness.scsi.errors import ScsiDataError
from harness.scsi.inquiry import StandardInquiry
from harness.scsi.vpd import (
    Association,
    BlockDeviceCharacteristics,
    BlockLimits,
    Designator,
    DeviceIdentification,
    LogicalBlockProvisioning,
    SupportedPages,
    UnitSerialNumber,
    VpdPage,
)
from harness.target.nexus import ItNexus

#: IEEE 802 example OUI (AC-DE-48, reserved for private use), for derived NAA 6 ids
PRIVATE_COMPANY_ID = 0xACDE48


@dataclass(frozen=True, slots=True)
class LuIdentity:
    serial: str
    naa: str                       # hex: NAA 6 (32 digits) or NAA 2/3/5 (16 digits)
    vendor: str = "SPLITBRN"
    product: str = "SPLITBRAIN-LU"
    revision: str = "0001"

    def __post_init__(self) -> None:
        if not self.serial or not self.serial.isascii() or not self.serial.isprintable():
            raise ScsiDataError(f"unit serial {self.serial!r} must be printable ASCII, non-empty")
        Designator.naa_from_hex(self.naa)  # validates

    @classmethod
    def derive(cls, name: str, **overrides: str) -> LuIdentity:
        """A stable identity from a device name (the same name gives the same identity)."""
        digest = hashlib.sha256(name.encode()).digest()
        vendor_id = int.from_bytes(digest[:5], "big") & 0xFFFFFFFFF
        extension = int.from_bytes(digest[5:13], "big")
        naa = Designator.naa_registered_extended(PRIVATE_COMPANY_ID, vendor_id,
                                                 extension).value.hex()
        kwargs = {"serial": digest[13:21].hex(), "naa": naa} | overrides
        return cls(**kwargs)

    @property
    def naa_designator(self) -> Designator:
        return Designator.naa_from_hex(self.naa)


MAX_TRANSFER_BYTES = 32 << 20   # one command's data; the iSCSI layer should refuse beyond it too


@dataclass(frozen=True, slots=True)
class BlockLimitsConfig:
    """What the Block Limits VPD page promises and the logical unit enforces (in blocks)."""

    max_transfer_blocks: int = MAX_TRANSFER_BYTES // 512
    optimal_transfer_blocks: int = 128
    max_compare_and_write_blocks: int = 64
    max_unmap_blocks: int = 1 << 20
    max_unmap_descriptors: int = 256
    max_write_same_blocks: int = 1 << 22
    blocks_per_physical_block: int = 1   # a power of two (READ CAPACITY(16) exponent)

    @classmethod
    def for_block_size(cls, block_size: int,
                       physical_block_size: int | None = None) -> BlockLimitsConfig:
        """Limits whose transfers stay within ``MAX_TRANSFER_BYTES`` whatever the block size."""
        per_physical = max(1, (physical_block_size or block_size) // block_size)
        return cls(max_transfer_blocks=MAX_TRANSFER_BYTES // block_size,
                   optimal_transfer_blocks=max(per_physical, 65536 // block_size),
                   blocks_per_physical_block=per_physical)

    @property
    def physical_exponent(self) -> int:
        return self.blocks_per_physical_block.bit_length() - 1


SUPPORTED_VPD = (VpdPage.SUPPORTED_PAGES, VpdPage.UNIT_SERIAL_NUMBER,
                 VpdPage.DEVICE_IDENTIFICATION, VpdPage.BLOCK_LIMITS,
                 VpdPage.BLOCK_DEVICE_CHARACTERISTICS, VpdPage.LOGICAL_BLOCK_PROVISIONING)


def standard_inquiry(identity: LuIdentity, *, tpgs: int, multiport: bool = False) -> bytes:
    """Standard INQUIRY data; ``multiport`` sets MULTIP (the LU is reachable by several ports)."""
    return StandardInquiry(vendor=identity.vendor, product=identity.product,
                           revision=identity.revision, tpgs=tpgs, multip=multiport).encode()


def vpd_page(page: int, identity: LuIdentity, nexus: ItNexus,
             limits: BlockLimitsConfig) -> bytes | None:
    """The VPD page's bytes for a request through ``nexus``, or None if unsupported."""
    if page == VpdPage.SUPPORTED_PAGES:
        return SupportedPages(SUPPORTED_VPD).encode()
    if page == VpdPage.UNIT_SERIAL_NUMBER:
        return UnitSerialNumber(identity.serial).encode()
    if page == VpdPage.DEVICE_IDENTIFICATION:
        return DeviceIdentification((
            identity.naa_designator,
            Designator.t10_vendor_id(identity.vendor, identity.serial),
            Designator.relative_target_port(nexus.relative_target_port_id),
            Designator.target_port_group(nexus.target_port_group),
            Designator.scsi_name_string(nexus.target_port, Association.TARGET_PORT),
            Designator.scsi_name_string(nexus.target_name, Association.TARGET_DEVICE),
        )).encode()
    if page == VpdPage.BLOCK_LIMITS:
        return BlockLimits(
            wsnz=True, max_compare_and_write_length=limits.max_compare_and_write_blocks,
            optimal_transfer_length_granularity=limits.blocks_per_physical_block,
            max_transfer_length=limits.max_transfer_blocks,
            optimal_transfer_length=limits.optimal_transfer_blocks,
            max_unmap_lba_count=limits.max_unmap_blocks,
            max_unmap_block_descriptor_count=limits.max_unmap_descriptors,
            optimal_unmap_granularity=limits.blocks_per_physical_block,
            unmap_granularity_alignment=0,
            max_write_same_length=limits.max_write_same_blocks,
        ).encode()
    if page == VpdPage.BLOCK_DEVICE_CHARACTERISTICS:
        return BlockDeviceCharacteristics().encode()
    if page == VpdPage.LOGICAL_BLOCK_PROVISIONING:
        return LogicalBlockProvisioning().encode()
    return None
