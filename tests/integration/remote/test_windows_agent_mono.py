"""The Windows workload agent's C# stamp, compiled and run with Mono, read by the
Python checkers (the Win32 I/O part compiles here but only runs on Windows)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harness.remote.windows_agent import SOURCE
from harness.workload.stamp import BlockKind, classify_blocks, scan_sectors

MAIN = """
using System;
public static class StampMain {
    public static void Main(string[] a) {
        byte[] b = SplitbrainStamp.Encode(long.Parse(a[0]), int.Parse(a[1]), uint.Parse(a[2]),
                                          uint.Parse(a[3]), ulong.Parse(a[4]), 123456789UL, 7);
        using (var o = Console.OpenStandardOutput()) { o.Write(b, 0, b.Length); }
    }
}
"""


@pytest.mark.skipif(shutil.which("mcs") is None or shutil.which("mono") is None,
                    reason="needs Mono (Debian packages mono-mcs) to compile the C# agent")
def test_the_csharp_stamp_is_the_one_the_checkers_read(tmp_path):
    main = tmp_path / "main.cs"
    main.write_text(MAIN)
    exe = tmp_path / "stamp.exe"
    subprocess.run(["mcs", "-nologo", f"-out:{exe}", str(SOURCE), str(main)], check=True,
                   capture_output=True)
    data = subprocess.run(["mono", str(exe), "8192", "4096", "2", "77", "5"], check=True,
                          capture_output=True).stdout
    assert len(data) == 4096
    scan = scan_sectors(data, 8192)
    blocks = classify_blocks(scan, 4096)
    assert blocks.kind.tolist() == [BlockKind.INTACT]
    assert str(scan.write_id(0)) == "w2#5@0000004d"
    # a flipped payload byte must be caught by the CRC the C# side wrote
    bad = bytearray(data)
    bad[100] ^= 1
    assert classify_blocks(scan_sectors(bytes(bad), 8192), 4096).kind.tolist() == [
        BlockKind.CORRUPT]
