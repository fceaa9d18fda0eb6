"""iSCSI block devices for the workload: one path (one Session LUN), or MPIO over several.

``IscsiDevice`` drives one logged-in path (a ``PathLink``: the initiator's
``Session`` addressing one LUN) with READ(16), WRITE(16) and SYNCHRONIZE CACHE;
a non-GOOD status raises ``ScsiIoError`` carrying the status, so the workload
can tell a RESERVATION CONFLICT (not executed: ``fail``) from everything else
(unknown: ``info``). ``MultipathBlockDevice`` adapts a
``harness.initiator.mpio.device.MultipathDevice`` to ``BlockDevice``;
``mirror_path_events`` copies its path state changes into a ``History`` so the
checkers and the timeline see them.

``open_iscsi_device`` turns ``--device iscsi://...`` URLs into one of these;
``open_iscsi_paths`` opens every URL as its own single-path device, which is how
the integrity checker reads the data back through every path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harness.errors import SplitbrainError
from harness.iscsi.names import WORKLOAD_PATHS, IscsiUrl
from harness.workload.device import BlockDevice, Completion
from harness.workload.errors import DeviceError
from harness.workload.history import History

WORKLOAD_INITIATOR = "iqn.2026-11.org.splitbrain:workload"


class ScsiIoError(DeviceError):
    """A READ/WRITE/SYNCHRONIZE CACHE ended with a non-GOOD SCSI status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def path_spec(url: IscsiUrl, *, initiator: str = WORKLOAD_INITIATOR,
              isid: int | None = None) -> Any:
    """The initiator's PathSpec for a URL; each gets its own ISID (a random-format one)."""
    from harness.initiator.mpio.link import Chap, PathSpec

    if isid is None:
        isid = WORKLOAD_PATHS.isid()
    if url.target is None or url.lun is None:
        raise DeviceError(f"{url}: a path to a disk needs its target and LUN "
                          "(iscsi://host:port/iqn/lun)")
    chap = Chap(url.user, url.secret) if url.user and url.secret else None
    return PathSpec(host=url.host, port=url.port, target=url.target, lun=url.lun,
                    initiator=initiator, isid=isid, chap=chap,
                    name=str(url).removeprefix("iscsi://"))


def default_connector() -> Callable[[Any], Any]:
    """The initiator's ``Session``-backed path connector."""
    try:
        from harness.initiator.mpio.session_link import session_connector
    except ImportError as exc:
        raise DeviceError(
            "this splitbrain has no iSCSI initiator session (harness.initiator.mpio.session_link); "
            "use a local device instead"
        ) from exc
    return session_connector


class IscsiDevice:
    """One path: a logged-in ``PathLink`` to one LUN."""

    def __init__(self, link: Any, name: str, block_size: int, num_blocks: int) -> None:
        self.link = link
        self.name = name
        self.block_size = block_size
        self.num_blocks = num_blocks

    @classmethod
    async def open(cls, spec: Any, connector: Callable[[Any], Any]) -> IscsiDevice:
        from harness.initiator.mpio import probe

        try:
            link = await connector(spec)
        except SplitbrainError as exc:
            raise DeviceError(f"cannot log in to {spec.label}: {exc}") from exc
        try:
            bs, n = await probe.capacity(link)
        except BaseException:
            await link.abort()
            raise
        return cls(link, spec.label, bs, n)

    async def _run(self, op: str, cdb: bytes, *, data_out: bytes = b"",
                   expected_in: int = 0) -> bytes:
        from harness.initiator.mpio.link import PathLost
        from harness.scsi.sense import SenseKey

        for _ in range(3):  # a UNIT ATTENTION reports an event; the command did not run
            try:
                outcome = await self.link.execute(cdb, data_out=data_out,
                                                  expected_in=expected_in)
            except PathLost as exc:
                raise DeviceError(f"{op} on {self.name}: path lost ({exc.reason})") from exc
            if outcome.good or outcome.sense is None or \
                    outcome.sense.key != SenseKey.UNIT_ATTENTION:
                break
        if not outcome.good:
            sense = f" ({outcome.sense})" if outcome.sense else ""
            raise ScsiIoError(f"{op} on {self.name} ended with status 0x{outcome.status:02x}"
                              f"{sense}", outcome.status)
        return bytes(outcome.data)

    async def read(self, lba: int, count: int) -> Completion:
        from harness.scsi.cdb import Read

        n = count * self.block_size
        data = await self._run("READ(16)", Read(lba=lba, blocks=count, size=16).encode(),
                               expected_in=n)
        if len(data) != n:
            raise DeviceError(f"READ(16) on {self.name} at LBA {lba} returned {len(data)} of "
                              f"{n} bytes")
        return Completion(data, self.name)

    async def write(self, lba: int, data: bytes) -> Completion:
        from harness.scsi.cdb import Write

        count = len(data) // self.block_size
        await self._run("WRITE(16)", Write(lba=lba, blocks=count, size=16).encode(),
                        data_out=data)
        return Completion(b"", self.name)

    async def flush(self) -> None:
        from harness.scsi.cdb import SynchronizeCache

        await self._run("SYNCHRONIZE CACHE", SynchronizeCache().encode())

    async def close(self) -> None:
        await self.link.close()


class MultipathBlockDevice:
    """A ``MultipathDevice`` as a ``BlockDevice`` (completions name the serving path)."""

    def __init__(self, mpio: Any) -> None:
        self.mpio = mpio
        self.name = mpio.name
        self.events = mpio.events

    @property
    def block_size(self) -> int:
        return int(self.mpio.block_size)

    @property
    def num_blocks(self) -> int:
        return int(self.mpio.num_blocks)

    async def read(self, lba: int, count: int) -> Completion:
        done = await self.mpio.read(lba, count)
        return Completion(done.data, done.path)

    async def write(self, lba: int, data: bytes) -> Completion:
        done = await self.mpio.write(lba, data)
        return Completion(b"", done.path)

    async def flush(self) -> None:
        await self.mpio.flush()

    async def close(self) -> None:
        await self.mpio.close()


def mirror_path_events(device: BlockDevice, history: History) -> Callable[[], None]:
    """Record the device's path state changes in the history; returns the unsubscribe."""
    events = getattr(device, "events", None)
    if events is None or not hasattr(events, "subscribe"):
        return lambda: None

    def record(event: Any) -> None:
        history.path_event(event.path, event.new.value, time_ns=event.ns,
                           old=event.old.value, reason=event.reason)

    return events.subscribe(record)  # type: ignore[no-any-return]


async def open_iscsi_device(urls: Sequence[IscsiUrl], *,
                            connector: Callable[[Any], Any] | None = None,
                            **mpio_options: Any) -> BlockDevice:
    """One URL: a single-path device. Several: one MPIO device with a path per URL."""
    if connector is None:
        connector = default_connector()
        if mpio_options.get("timers") is not None:  # session deadlines follow the MPIO timers
            from harness.initiator.mpio.session_link import SessionConnector

            connector = SessionConnector.for_timers(mpio_options["timers"])
    specs = [path_spec(u) for u in urls]
    if len(specs) == 1:
        return await IscsiDevice.open(specs[0], connector)
    from harness.initiator.mpio.device import MultipathDevice

    mpio = MultipathDevice(specs, connector=connector, **mpio_options)
    try:
        await mpio.open()
    except SplitbrainError as exc:
        raise DeviceError(f"cannot open multipath device over {len(specs)} paths: {exc}") \
            from exc
    return MultipathBlockDevice(mpio)


async def open_iscsi_paths(urls: Sequence[IscsiUrl], *,
                           connector: Callable[[Any], Any] | None = None
                           ) -> dict[str, BlockDevice]:
    """Every URL as its own single-path device (to read back through every path)."""
    connector = connector or default_connector()
    out: dict[str, BlockDevice] = {}
    try:
        for u in urls:
            dev = await IscsiDevice.open(path_spec(u), connector)
            out[dev.name] = dev
    except BaseException:
        for dev in out.values():
            await dev.close()
        raise
    return out
