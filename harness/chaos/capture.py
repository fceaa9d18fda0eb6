"""A packet capture of a chaos run's iSCSI traffic, for the packet-timing checker.

On the lab every path is a proxy listener on loopback, so the initiators' iSCSI
traffic can be captured on ``lo`` (scapy's ``AsyncSniffer`` with a BPF filter on
the device's portal ports; root only) and written as ``capture.pcap`` beside the
history. The checker (``harness.checks.packet_timing.check_scenario_capture``)
then prints the wire's numbers beside the history's for every fault. Off the lab,
or without root, there is no capture and the run says why.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any


class LoopbackCapture:
    """Captures TCP traffic to ``ports`` on ``lo`` into ``path`` while active."""

    def __init__(self, path: Path, ports: list[int]) -> None:
        self.path, self.ports = path, sorted(set(ports))
        self._sniffer: Any = None
        self._writer: Any = None
        self.packets = 0
        self.why_not = ""

    @classmethod
    def for_run(cls, sut: Any, device: str, path: Path) -> LoopbackCapture:
        lab = getattr(sut, "lab", None)
        capture = cls(path, [p.port for _, p in sut.device(device).paths] if lab else [])
        if lab is None:
            capture.why_not = "not a lab: paths cross real networks"
        elif os.geteuid() != 0:
            capture.why_not = "capturing loopback needs root"
        return capture

    def __enter__(self) -> LoopbackCapture:
        if self.why_not or not self.ports:
            return self
        try:
            from scapy.sendrecv import AsyncSniffer
            from scapy.utils import PcapWriter

            self._writer = PcapWriter(str(self.path), sync=False, nano=True)

            def keep(packet: Any) -> None:
                self._writer.write(packet)
                self.packets += 1

            self._sniffer = AsyncSniffer(
                iface="lo", filter=" or ".join(f"tcp port {p}" for p in self.ports),
                store=False, prn=keep)
            self._sniffer.start()
        except (OSError, ImportError, RuntimeError) as exc:
            self.why_not = f"capture could not start: {exc}"
            self._sniffer = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sniffer is not None:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self._sniffer.stop()
        if self._writer is not None:
            self._writer.close()

    @property
    def file(self) -> Path | None:
        """The pcap, when something was captured."""
        return self.path if self.packets and self.path.exists() else None
