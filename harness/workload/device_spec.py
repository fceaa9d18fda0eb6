"""What ``--device`` names: a local file or block device, or ``iscsi://`` URLs (one per path).

A local device has one path; several ``iscsi://`` URLs are the paths of one
MPIO device (:mod:`harness.workload.iscsi_device`). The URL syntax is
:mod:`harness.iscsi.names`'s, the one every command accepts.
"""

from __future__ import annotations

from harness.iscsi.names import is_iscsi_url, parse_iscsi_url
from harness.workload.device import BlockDevice, FileDevice
from harness.workload.errors import DeviceUrlError
from harness.workload.iscsi_device import open_iscsi_device


async def open_device(specs: list[str], *, size: int | None = None,
                      block_size: int | None = None, direct: bool = True) -> BlockDevice:
    """Open what ``--device`` names: one path, or one or more iSCSI URLs (one per path)."""
    if not specs:
        raise DeviceUrlError("no --device given; pass a file, a block device or an iscsi:// URL")
    urls = [s for s in specs if is_iscsi_url(s)]
    if urls and len(urls) != len(specs):
        raise DeviceUrlError("cannot mix iscsi:// URLs and local paths in one --device list")
    if urls:
        return await open_iscsi_device([parse_iscsi_url(u) for u in urls])
    if len(specs) > 1:
        raise DeviceUrlError(
            f"{len(specs)} local devices given; a local device has one path (use the "
            "multipath device node, or iscsi:// URLs for several paths)"
        )
    return FileDevice(specs[0], size=size, block_size=block_size, direct=direct)
