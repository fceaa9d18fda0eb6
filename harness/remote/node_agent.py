"""splitbrain node agent: the stamped workload on a cluster node's own disk (stdlib only).

This file is shipped over SSH and run by the host's own ``python3`` (3.8 or
later, nothing else installed): ``python3 -c <this text> <command> ...``.
It never imports splitbrain. Commands:

- ``check DEVICE``: is the device safe to write? Prints one JSON object: its
  real path, size, logical block size, mounts, holders (``/sys/block/*/holders``,
  of it and of its partitions), swap use, and whether the kernel grants an
  exclusive open (``O_EXCL``: refused while mounted or held by dm/md/LVM);
- ``run DEVICE --seed --generation --writers --block-size --ops|--duration
  --region-offset --region-length --node``: writes stamped blocks with
  ``O_DIRECT`` from page-aligned buffers and prints the history as JSON lines,
  one flushed line per record (the format of ``harness.workload.history``:
  a header, then ``invoke`` before each write and ``ok``/``info`` after it).
  It first runs ``check`` and refuses a device in use (exit status 3);
- ``read DEVICE OFFSET LENGTH``: prints the bytes (base64), read with O_DIRECT;
- ``clock``: prints ``time.monotonic_ns()`` (the controller relates the node's
  clock to its own by round trips).

Every sector carries the stamp of ``harness.workload.stamp`` (magic, version,
index, LBA, writer, generation, seq, timestamp, payload, CRC32C), computed here
in pure Python; the payload is seeded pseudo-random bytes (the checkers read
only the header and the CRC). Times are this host's ``monotonic_ns``.
"""

import argparse
import base64
import contextlib
import errno
import fcntl
import json
import mmap
import os
import random
import stat
import struct
import sys
import threading
import time

SECTOR = 512
MAGIC = 0x4B4C4253
HEADER = struct.Struct("<IBBHQIIQQ")  # magic version flags index lba writer generation seq ts
PAYLOAD = SECTOR - HEADER.size - 4
BLKGETSIZE64 = 0x80081272
BLKSSZGET = 0x1268
EXIT_IN_USE = 3


def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    table = _TABLE
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def stamp(offset, length, writer, generation, seq, timestamp, seed):
    """The stamped bytes of one write (every 512-byte sector self-describing)."""
    rng = random.Random((seed << 64) ^ (writer << 40) ^ seq)
    out = bytearray()
    first = offset // SECTOR
    for i in range(length // SECTOR):
        head = HEADER.pack(MAGIC, 1, 0, i & 0xFFFF, first + i, writer, generation, seq,
                           timestamp)
        body = head + rng.getrandbits(PAYLOAD * 8).to_bytes(PAYLOAD, "little")
        out += body + struct.pack("<I", crc32c(body))
    return bytes(out)


def geometry(fd):
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        size = struct.unpack("Q", fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8))[0]
        lbs = struct.unpack("i", fcntl.ioctl(fd, BLKSSZGET, b"\0" * 4))[0]
        return size, lbs
    return st.st_size, SECTOR


def _block_name(real):
    """The sysfs name of a block device (dm-3, sdb, loop0), or None."""
    try:
        st = os.stat(real)
    except OSError:
        return None
    if not stat.S_ISBLK(st.st_mode):
        return None
    path = f"/sys/dev/block/{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    try:
        return os.path.basename(os.path.realpath(path))
    except OSError:
        return None


def usage(device):
    """What uses ``device``: mounts, holders, swap; and whether O_EXCL is granted."""
    real = os.path.realpath(device)
    report = {"device": device, "real": real, "mounts": [], "holders": [], "swaps": [],
              "exclusive": False, "error": None, "size": 0, "logical_block_size": SECTOR}
    name = _block_name(real)
    names = [name] if name else []
    if name:
        base = "/sys/class/block/" + name
        for entry in sorted(os.listdir(base)):
            if entry.startswith(name) and os.path.exists(base + "/" + entry + "/partition"):
                names.append(entry)
        for n in names:
            with contextlib.suppress(OSError):
                report["holders"] += [n + "->" + h
                                      for h in sorted(os.listdir(f"/sys/class/block/{n}/holders"))]
    devs = {"/dev/" + n for n in names} | {real}
    for table, key in (("/proc/mounts", "mounts"), ("/proc/swaps", "swaps")):
        try:
            with open(table) as fh:
                for line in fh:
                    fields = line.split()
                    if fields and os.path.realpath(fields[0]) in devs:
                        report[key].append(" ".join(fields[:2]))
        except OSError:
            pass
    flags = os.O_RDONLY | (os.O_EXCL if name else 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        report["error"] = f"{real}: {exc.strerror}"
        report["exclusive"] = False
        return report
    try:
        report["exclusive"] = True
        report["size"], report["logical_block_size"] = geometry(fd)
    finally:
        os.close(fd)
    return report


def in_use_reason(report):
    if report["mounts"]:
        return "mounted ({})".format("; ".join(report["mounts"]))
    if report["holders"]:
        return "held by {}".format(", ".join(report["holders"]))
    if report["swaps"]:
        return "used as swap"
    if report["error"]:
        return report["error"]
    if not report["exclusive"]:
        return "the kernel refuses an exclusive open (in use)"
    return None


def _open_direct(path, write):
    mode = os.O_RDWR if write else os.O_RDONLY
    try:
        return os.open(path, mode | os.O_DIRECT), True
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return os.open(path, mode), False  # a filesystem without O_DIRECT (tmpfs)


class Out:
    """History records as flushed JSON lines on stdout (one write per line)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.index = 0

    def emit(self, rec):
        with self.lock:
            rec["index"] = self.index
            self.index += 1
            sys.stdout.write(json.dumps(rec, separators=(",", ":")) + "\n")
            sys.stdout.flush()


def run(args):
    report = usage(args.device)
    reason = in_use_reason(report)
    if reason:
        sys.stderr.write(f"refused: {args.device} is in use: {reason}\n")
        return EXIT_IN_USE
    fd, direct = _open_direct(report["real"], True)
    size, lbs = geometry(fd)
    bs = args.block_size
    if bs % lbs or bs % SECTOR:
        sys.stderr.write(f"block size {bs} is not a multiple of {lbs}\n")
        return 2
    region_len = args.region_length or (size - args.region_offset)
    share = region_len // args.writers // bs * bs
    if share < bs:
        sys.stderr.write(f"region too small for {args.writers} writers of {bs} bytes\n")
        return 2
    out = Out()
    start = time.monotonic_ns()
    out.emit({"type": "header", "version": 1, "seed": args.seed, "generation": args.generation,
              "block_size": bs, "logical_block_size": lbs, "num_blocks": size // lbs,
              "device": f"{args.node}:{args.device}", "initial": "unknown",
              "start_ns": start, "wall_clock": time.time(),
              "options": {"agent": "node_agent.py", "node": args.node, "o_direct": direct,
                          "writers": args.writers, "region_offset": args.region_offset,
                          "region_length": region_len}})
    deadline = start + int(args.duration * 1e9) if args.duration else None
    ops = [0]
    ops_lock = threading.Lock()

    def writer(w):
        rng = random.Random((args.seed * 0x9E3779B1 + w * 0x85EBCA77) & 0xFFFFFFFFFFFF)
        base = args.region_offset + w * share
        buf = mmap.mmap(-1, max(bs, mmap.PAGESIZE))
        view = memoryview(buf)
        process, seq = w, 0
        while True:
            if args.ops is not None and seq >= args.ops:
                break
            if deadline is not None and time.monotonic_ns() >= deadline:
                break
            off = base + rng.randrange(share // bs) * bs
            with ops_lock:
                op = ops[0]
                ops[0] += 1
            t0 = time.monotonic_ns()
            data = stamp(off, bs, w, args.generation, seq, t0, args.seed)
            buf[:bs] = data
            out.emit({"type": "invoke", "op": op, "process": process, "f": "write",
                      "lba": off // lbs, "count": bs // lbs, "time": t0, "writer": w,
                      "seq": seq, "generation": args.generation})
            try:
                n = os.pwrite(fd, view[:bs], off)
                if n != bs:
                    raise OSError(errno.EIO, f"short write of {n} bytes")
                t1 = time.monotonic_ns()
                out.emit({"type": "ok", "op": op, "time": t1, "latency": t1 - t0,
                          "path": args.node})
            except OSError as exc:
                t1 = time.monotonic_ns()
                out.emit({"type": "info", "op": op, "time": t1, "latency": t1 - t0,
                          "path": args.node, "error": str(exc)})
                process += args.writers  # a write of unknown fate: continue as a new process
            seq += 1
        buf.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(args.writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.close(fd)
    return 0


def read(args):
    fd, _ = _open_direct(os.path.realpath(args.device), False)
    try:
        buf = mmap.mmap(-1, max(args.length, mmap.PAGESIZE))
        n = os.preadv(fd, [memoryview(buf)[:args.length]], args.offset)
        sys.stdout.write(base64.b64encode(buf[:n]).decode() + "\n")
    finally:
        os.close(fd)
    return 0


def main(argv):
    parser = argparse.ArgumentParser(prog="node_agent")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check")
    c.add_argument("device")
    r = sub.add_parser("run")
    r.add_argument("device")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--generation", type=int, required=True)
    r.add_argument("--writers", type=int, default=1)
    r.add_argument("--block-size", type=int, default=4096)
    r.add_argument("--ops", type=int)
    r.add_argument("--duration", type=float)
    r.add_argument("--region-offset", type=int, default=0)
    r.add_argument("--region-length", type=int, default=0)
    r.add_argument("--node", default=os.uname().nodename)
    d = sub.add_parser("read")
    d.add_argument("device")
    d.add_argument("offset", type=int)
    d.add_argument("length", type=int)
    sub.add_parser("clock")
    args = parser.parse_args(argv)
    if args.command == "check":
        print(json.dumps(usage(args.device)))
        return 0
    if args.command == "run":
        if args.ops is None and args.duration is None:
            parser.error("give --ops or --duration")
        return run(args)
    if args.command == "read":
        return read(args)
    print(time.monotonic_ns())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
