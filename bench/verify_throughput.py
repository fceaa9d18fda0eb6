"""How fast the integrity checker verifies stamped data (goal: >= 1 GB/s).

Builds a fully written device image (64 KiB stamped writes, 4 KiB checker
blocks) and its history, then times ``IntegrityCheck.check_buffer`` over the
image in 4 MiB chunks from memory (the memory path: decode, CRC32C, model),
and ``check_image`` reading the same image from a file (page cache). A second
pass checks a never-written (all-zero) image, which takes the zero-scan path.

    .venv/bin/python bench/verify_throughput.py [--size 1G] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from harness.checks.integrity import CHUNK, IntegrityCheck, check_image
from harness.workload.generator import parse_size
from harness.workload.history import History, HistoryHeader, load_history
from harness.workload.stamp import WriteId, encode_write

WRITE = 64 << 10
BLOCK = 4096


def build(tmp: Path, size: int) -> tuple[Path, Path]:
    header = HistoryHeader(seed=1, generation=0xBE7C, block_size=BLOCK, logical_block_size=512,
                           num_blocks=size // 512, device="bench", initial="zero")
    hist_path, image_path = tmp / "bench.jsonl", tmp / "bench.img"
    with History(hist_path, header) as history, open(image_path, "wb") as image:
        for i in range(size // WRITE):
            off = i * WRITE
            op = history.invoke(0, "write", off // 512, WRITE // 512, writer=i % 8,
                                seq=i // 8, time_ns=10 * i)
            history.complete(op, "ok", invoke_ns=10 * i, time_ns=10 * i + 5, path="bench")
            image.write(encode_write(off, WRITE, WriteId(0xBE7C, i % 8, i // 8), seed=1,
                                     timestamp=i))
    return hist_path, image_path


def memory_pass(history, data: bytes) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    check = IntegrityCheck(history)
    view = memoryview(data)
    t = time.perf_counter()
    problems = 0
    for off in range(0, len(data), CHUNK):
        problems += len(check.check_buffer(off, view[off:off + CHUNK], "mem"))
    return time.perf_counter() - t, problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1G")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        t = time.perf_counter()
        hist_path, image_path = build(tmp, size)
        print(f"built {size >> 20} MiB image + history in {time.perf_counter() - t:.1f} s")
        history = load_history(hist_path)
        data = image_path.read_bytes()
        zeros = bytes(size)
        best_mem = best_zero = best_file = float("inf")
        for _ in range(args.repeat):
            secs, problems = memory_pass(history, data)
            assert problems == 0, problems
            best_mem = min(best_mem, secs)
            secs, problems = memory_pass(history, zeros)
            assert problems == size // WRITE, problems  # every acknowledged write is lost
            best_zero = min(best_zero, secs)
            t = time.perf_counter()
            verdict = check_image(history, image_path)
            best_file = min(best_file, time.perf_counter() - t)
            assert verdict.valid
        os.sync()
    print(f"python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} cpus")
    for name, secs in (("stamped, from memory", best_mem),
                       ("never written (all lost), from memory", best_zero),
                       ("stamped, image file (page cache)", best_file)):
        print(f"{name:40s} {size / secs / 1e9:6.2f} GB/s  ({secs:.3f} s for "
              f"{size >> 20} MiB)")


if __name__ == "__main__":
    main()
