// splitbrain node agent for Windows: the stamped workload on a raw disk
// (\\.\PhysicalDriveN), unbuffered (FILE_FLAG_NO_BUFFERING | FILE_FLAG_WRITE_THROUGH,
// sector-aligned VirtualAlloc buffers). Compiled on the host by PowerShell's
// Add-Type; harness/remote/windows_agent.py ships and drives it. The stamp is
// harness/workload/stamp.py's: 40-byte header, seeded payload, CRC32C of bytes
// 0..507 at 508. Times are Stopwatch ticks converted to nanoseconds (monotonic).
using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.Runtime.InteropServices;
using System.Text;
using System.Diagnostics;

public static class SplitbrainStamp {
    public const uint Magic = 0x4B4C4253;
    public const int Sector = 512;
    static readonly uint[] Table = MakeTable();

    static uint[] MakeTable() {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++) {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            t[i] = c;
        }
        return t;
    }

    public static uint Crc32c(byte[] data, int offset, int count) {
        uint c = 0xFFFFFFFFu;
        for (int i = offset; i < offset + count; i++) c = Table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    static void Put(byte[] b, int at, ulong v, int n) {
        for (int i = 0; i < n; i++) b[at + i] = (byte)(v >> (8 * i));
    }

    // The stamped bytes of one write of `length` bytes at byte `offset`.
    public static byte[] Encode(long offset, int length, uint writer, uint generation,
                                ulong seq, ulong timestamp, int seed) {
        var b = new byte[length];
        var rng = new Random(unchecked(seed * 31 + (int)writer * 17 + (int)seq));
        long first = offset / Sector;
        for (int s = 0; s < length / Sector; s++) {
            int o = s * Sector;
            Put(b, o, Magic, 4); b[o + 4] = 1; b[o + 5] = 0; Put(b, o + 6, (ulong)s, 2);
            Put(b, o + 8, (ulong)(first + s), 8); Put(b, o + 16, writer, 4);
            Put(b, o + 20, generation, 4); Put(b, o + 24, seq, 8); Put(b, o + 32, timestamp, 8);
            var payload = new byte[Sector - 44];
            rng.NextBytes(payload);
            Buffer.BlockCopy(payload, 0, b, o + 40, payload.Length);
            Put(b, o + 508, Crc32c(b, o, 508), 4);
        }
        return b;
    }

    public static long NowNs() {
        long t = Stopwatch.GetTimestamp();
        return (long)((double)t * 1e9 / Stopwatch.Frequency);
    }
}

public static class SplitbrainAgent {
    const uint GENERIC_READ = 0x80000000, GENERIC_WRITE = 0x40000000;
    const uint FILE_SHARE_READ = 1, FILE_SHARE_WRITE = 2, OPEN_EXISTING = 3;
    const uint FILE_FLAG_NO_BUFFERING = 0x20000000, FILE_FLAG_WRITE_THROUGH = 0x80000000;
    const uint IOCTL_DISK_GET_LENGTH_INFO = 0x0007405C;
    const uint IOCTL_DISK_GET_DRIVE_GEOMETRY_EX = 0x000700A0;

    [DllImport("kernel32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
    static extern IntPtr CreateFile(string name, uint access, uint share, IntPtr sec,
                                    uint disposition, uint flags, IntPtr template);
    [DllImport("kernel32.dll", SetLastError = true)]
    static extern bool WriteFile(IntPtr h, IntPtr buf, uint n, out uint done, IntPtr ov);
    [DllImport("kernel32.dll", SetLastError = true)]
    static extern bool ReadFile(IntPtr h, IntPtr buf, uint n, out uint done, IntPtr ov);
    [DllImport("kernel32.dll", SetLastError = true)]
    static extern bool SetFilePointerEx(IntPtr h, long dist, out long pos, uint method);
    [DllImport("kernel32.dll", SetLastError = true)]
    static extern bool DeviceIoControl(IntPtr h, uint code, IntPtr inBuf, uint inSize,
                                       byte[] outBuf, uint outSize, out uint done, IntPtr ov);
    [DllImport("kernel32.dll")] static extern bool CloseHandle(IntPtr h);
    [DllImport("kernel32.dll", SetLastError = true)]
    static extern IntPtr VirtualAlloc(IntPtr at, UIntPtr size, uint type, uint protect);
    [DllImport("kernel32.dll")] static extern bool VirtualFree(IntPtr at, UIntPtr size, uint type);

    static IntPtr Open(string path, bool write) {
        IntPtr h = CreateFile(path, GENERIC_READ | (write ? GENERIC_WRITE : 0),
                              FILE_SHARE_READ | FILE_SHARE_WRITE, IntPtr.Zero, OPEN_EXISTING,
                              FILE_FLAG_NO_BUFFERING | FILE_FLAG_WRITE_THROUGH, IntPtr.Zero);
        if (h == new IntPtr(-1)) throw new Win32Exception();
        return h;
    }

    public static long[] Geometry(string path) {
        IntPtr h = Open(path, false);
        try {
            var len = new byte[8]; uint n;
            if (!DeviceIoControl(h, IOCTL_DISK_GET_LENGTH_INFO, IntPtr.Zero, 0, len, 8, out n,
                                 IntPtr.Zero)) throw new Win32Exception();
            var geo = new byte[256];
            if (!DeviceIoControl(h, IOCTL_DISK_GET_DRIVE_GEOMETRY_EX, IntPtr.Zero, 0, geo, 256,
                                 out n, IntPtr.Zero)) throw new Win32Exception();
            // DISK_GEOMETRY_EX: DISK_GEOMETRY (Cylinders 8, MediaType 4, TracksPerCylinder 4,
            // SectorsPerTrack 4, BytesPerSector 4) then DiskSize
            return new long[] { BitConverter.ToInt64(len, 0), BitConverter.ToUInt32(geo, 20) };
        } finally { CloseHandle(h); }
    }

    static void Line(StringBuilder sb, int index, string body) {
        sb.Append("{\"index\":").Append(index).Append(',').Append(body).Append("}\n");
    }

    // The history (JSON lines) of one run; one writer, queue depth 1.
    public static string Run(string path, string node, int seed, uint generation, int blockSize,
                             int ops, double durationS, long regionOffset, long regionLength) {
        long[] g = Geometry(path);
        long size = g[0]; int lbs = (int)g[1];
        if (blockSize % lbs != 0 || blockSize % 512 != 0)
            throw new ArgumentException("block size " + blockSize + " is not a multiple of " + lbs);
        if (regionLength <= 0) regionLength = size - regionOffset;
        long slots = regionLength / blockSize;
        var sb = new StringBuilder();
        int index = 0;
        long start = SplitbrainStamp.NowNs();
        Line(sb, index++, "\"type\":\"header\",\"version\":1,\"seed\":" + seed + ",\"generation\":" +
             generation + ",\"block_size\":" + blockSize + ",\"logical_block_size\":" + lbs +
             ",\"num_blocks\":" + (size / lbs) + ",\"device\":\"" + node + ":" +
             path.Replace("\\", "\\\\") + "\",\"initial\":\"unknown\",\"start_ns\":" + start +
             ",\"wall_clock\":" + ((DateTime.UtcNow - new DateTime(1970, 1, 1)).TotalSeconds
             .ToString(System.Globalization.CultureInfo.InvariantCulture)) +
             ",\"options\":{\"agent\":\"windows_agent.cs\",\"node\":\"" + node +
             "\",\"unbuffered\":true}");
        IntPtr h = Open(path, true);
        IntPtr buf = VirtualAlloc(IntPtr.Zero, (UIntPtr)blockSize, 0x3000, 0x04);
        try {
            var rng = new Random(seed);
            long deadline = durationS > 0 ? start + (long)(durationS * 1e9) : long.MaxValue;
            int process = 0;
            for (int seq = 0; (ops <= 0 || seq < ops) && SplitbrainStamp.NowNs() < deadline; seq++) {
                long off = regionOffset + (long)(rng.NextDouble() * slots) * blockSize;
                long t0 = SplitbrainStamp.NowNs();
                byte[] data = SplitbrainStamp.Encode(off, blockSize, 0, generation, (ulong)seq,
                                                     (ulong)t0, seed);
                Marshal.Copy(data, 0, buf, blockSize);
                Line(sb, index++, "\"type\":\"invoke\",\"op\":" + seq + ",\"process\":" + process +
                     ",\"f\":\"write\",\"lba\":" + (off / lbs) + ",\"count\":" + (blockSize / lbs) +
                     ",\"time\":" + t0 + ",\"writer\":0,\"seq\":" + seq + ",\"generation\":" +
                     generation);
                long pos; uint done;
                bool ok = SetFilePointerEx(h, off, out pos, 0) &&
                          WriteFile(h, buf, (uint)blockSize, out done, IntPtr.Zero) &&
                          done == (uint)blockSize;
                long t1 = SplitbrainStamp.NowNs();
                if (ok) {
                    Line(sb, index++, "\"type\":\"ok\",\"op\":" + seq + ",\"time\":" + t1 +
                         ",\"latency\":" + (t1 - t0) + ",\"path\":\"" + node + "\"");
                } else {
                    string err = new Win32Exception(Marshal.GetLastWin32Error()).Message;
                    Line(sb, index++, "\"type\":\"info\",\"op\":" + seq + ",\"time\":" + t1 +
                         ",\"latency\":" + (t1 - t0) + ",\"path\":\"" + node + "\",\"error\":\"" +
                         err.Replace("\\", "\\\\").Replace("\"", "'") + "\"");
                    process++;
                }
            }
        } finally {
            VirtualFree(buf, UIntPtr.Zero, 0x8000);
            CloseHandle(h);
        }
        return sb.ToString();
    }

    public static string Read(string path, long offset, int length) {
        IntPtr h = Open(path, false);
        IntPtr buf = VirtualAlloc(IntPtr.Zero, (UIntPtr)length, 0x3000, 0x04);
        try {
            long pos; uint done;
            if (!SetFilePointerEx(h, offset, out pos, 0) ||
                !ReadFile(h, buf, (uint)length, out done, IntPtr.Zero)) throw new Win32Exception();
            var data = new byte[done];
            Marshal.Copy(buf, data, 0, (int)done);
            return Convert.ToBase64String(data);
        } finally {
            VirtualFree(buf, UIntPtr.Zero, 0x8000);
            CloseHandle(h);
        }
    }
}
