"""Hand-made histories: a Scenario writes history records at chosen times and
stamps (or does not stamp) an in-memory image, so each test states exactly
what the device acknowledged and what it holds."""

from __future__ import annotations

from pathlib import Path

from harness.checks.integrity import IntegrityCheck
from harness.checks.verdict import Verdict
from harness.workload.history import History, HistoryHeader, RecordedHistory, load_history
from harness.workload.stamp import WriteId, encode_write
from harness.workload.writers import observe

GEN = 0x5EED


class Scenario:
    def __init__(self, tmp_path: Path, *, blocks: int = 16, block_size: int = 4096,
                 logical_block_size: int = 512, initial: str = "zero") -> None:
        self.block_size = block_size
        self.lbs = logical_block_size
        self.path = tmp_path / "history.jsonl"
        self.header = HistoryHeader(seed=7, generation=GEN, block_size=block_size,
                                    logical_block_size=logical_block_size,
                                    num_blocks=blocks * block_size // logical_block_size,
                                    device="image", initial=initial, start_ns=0)
        self.history = History(self.path, self.header)
        self.image = bytearray(blocks * block_size)
        self.stamps: dict[tuple[int, int], bytes] = {}

    def stamp(self, writer: int, seq: int, block: int, nblocks: int = 1,
              generation: int = GEN) -> bytes:
        off = block * self.block_size
        data = encode_write(off, nblocks * self.block_size, WriteId(generation, writer, seq),
                            seed=7, timestamp=seq)
        self.stamps[(writer, seq)] = data
        return data

    def put(self, block: int, data: bytes) -> None:
        off = block * self.block_size
        self.image[off:off + len(data)] = data

    def write(self, writer: int, seq: int, block: int, nblocks: int = 1, *, invoke: int,
              complete: int | None, outcome: str | None = "ok", apply: bool = True,
              path: str = "p0") -> None:
        """Record a write (outcome None: invoked, never completed) and maybe apply it."""
        data = self.stamp(writer, seq, block, nblocks)
        lpb = self.block_size // self.lbs
        op = self.history.invoke(writer, "write", block * lpb, nblocks * lpb, writer=writer,
                                 seq=seq, time_ns=invoke)
        if outcome is not None:
            assert complete is not None
            self.history.complete(op, outcome, invoke_ns=invoke, time_ns=complete, path=path)
        if apply:
            self.put(block, data)

    def read(self, block: int, nblocks: int = 1, *, invoke: int, complete: int,
             path: str = "p0", data: bytes | None = None) -> None:
        """Record an ok read of what the image holds now (or of ``data``)."""
        off = block * self.block_size
        if data is None:
            data = bytes(self.image[off:off + nblocks * self.block_size])
        lpb = self.block_size // self.lbs
        op = self.history.invoke(100, "read", block * lpb, nblocks * lpb, time_ns=invoke)
        self.history.complete(op, "ok", invoke_ns=invoke, time_ns=complete, path=path,
                              value=observe(data, off, self.block_size, GEN))

    def fault(self, name: str, start: int, stop: int | None) -> None:
        self.history.fault_start(name, time_ns=start)
        if stop is not None:
            self.history.fault_stop(name, time_ns=stop)

    def load(self) -> RecordedHistory:
        return load_history(self.path)

    def integrity(self, image: bytes | None = None, device: str = "image") -> Verdict:
        check = IntegrityCheck(self.load())
        problems = check.check_buffer(0, bytes(self.image if image is None else image), device)
        return check.verdict(problems)
