using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;

namespace Weld.Engine.SafeTensors;

/// <summary>
/// The checksum of a written shard, recorded in the progress file for <c>--resume</c> and <c>weld finalize</c>: CRC32C
/// (Castagnoli), computed with the CPU's CRC32 instruction (SSE4.2 in three interleaved chains / ARMv8 CRC); see
/// bench/RESULTS.md for its speed against SHA-256. It guards against damaged or truncated shards (a flipped bit, a torn write), which is all
/// resume and finalize ask of it; it is not a defence against deliberate tampering. The text form names the algorithm,
/// <c>crc32c:1a2b3c4d</c>; a bare 64-digit hex value (older progress files) is read as SHA-256.
/// </summary>
public sealed class ShardChecksum
{
    /// <summary>The text form's prefix.</summary>
    public const string Prefix = "crc32c:";

    private static readonly uint[] Table = MakeTable();
    private uint _crc = ~0u;

    /// <summary>Feeds the next bytes of the file.</summary>
    public void Append(ReadOnlySpan<byte> data) => _crc = Update(_crc, data);

    /// <summary>The checksum of everything appended, as text (<c>crc32c:</c> + 8 lower-case hex digits); resets.</summary>
    public string GetTextAndReset()
    {
        string text = Format(~_crc);
        _crc = ~0u;
        return text;
    }

    /// <summary>The text form of a CRC32C value.</summary>
    public static string Format(uint crc) => Prefix + crc.ToString("x8", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>CRC32C of <paramref name="data"/> (initial value and final xor 0xFFFFFFFF).</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => ~Update(~0u, data);

    /// <summary>The checksum of a file in the algorithm <paramref name="recorded"/> names, as text comparable with it.</summary>
    public static string ComputeFile(string path, string recorded)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        if (!recorded.StartsWith(Prefix, StringComparison.Ordinal))
            return Convert.ToHexStringLower(SHA256.HashData(stream)); // progress files written before CRC32C
        byte[] buffer = new byte[1 << 20];
        var sum = new ShardChecksum();
        int n;
        while ((n = stream.Read(buffer)) > 0) sum.Append(buffer.AsSpan(0, n));
        return sum.GetTextAndReset();
    }

    private static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        if (Sse42.X64.IsSupported)
        {
            ulong c = crc;
            // The instruction's latency is three cycles and its throughput one per cycle: one chain of CRCs runs at a
            // third of the core's rate (9.4 GB/s). Three chains over the three thirds of each block run side by side,
            // and their CRCs are joined by linearity: crc(s, A‖B‖C) = Z₂·crc(s, A) ⊕ Z₁·crc(0, B) ⊕ crc(0, C), where
            // Z₁, Z₂ append one or two thirds' worth of zero bytes (32×32 bit matrices over GF(2), as lookup tables).
            while (data.Length >= 3 * StreamBytes)
            {
                // Bounds-check-free: the block is 3 · StreamBytes long (the loop condition), each chain StreamBytes / 8 words.
                ref ulong first = ref Unsafe.As<byte, ulong>(ref MemoryMarshal.GetReference(data));
                ref ulong second = ref Unsafe.Add(ref first, StreamBytes / 8);
                ref ulong third = ref Unsafe.Add(ref first, 2 * StreamBytes / 8);
                ulong c1 = 0, c2 = 0;
                for (nint i = 0; i < StreamBytes / 8; i++)
                {
                    c = Sse42.X64.Crc32(c, Unsafe.ReadUnaligned<ulong>(ref Unsafe.As<ulong, byte>(ref Unsafe.Add(ref first, i))));
                    c1 = Sse42.X64.Crc32(c1, Unsafe.ReadUnaligned<ulong>(ref Unsafe.As<ulong, byte>(ref Unsafe.Add(ref second, i))));
                    c2 = Sse42.X64.Crc32(c2, Unsafe.ReadUnaligned<ulong>(ref Unsafe.As<ulong, byte>(ref Unsafe.Add(ref third, i))));
                }
                c = AppendZeros(ZerosTwoThirds, (uint)c) ^ AppendZeros(ZerosOneThird, (uint)c1) ^ (uint)c2;
                data = data[(3 * StreamBytes)..];
            }
            ReadOnlySpan<ulong> words = MemoryMarshal.Cast<byte, ulong>(data);
            int w = 0;
            for (; w + 4 <= words.Length; w += 4)
            {
                c = Sse42.X64.Crc32(c, words[w]);
                c = Sse42.X64.Crc32(c, words[w + 1]);
                c = Sse42.X64.Crc32(c, words[w + 2]);
                c = Sse42.X64.Crc32(c, words[w + 3]);
            }
            for (; w < words.Length; w++) c = Sse42.X64.Crc32(c, words[w]);
            crc = (uint)c;
            foreach (byte b in data[(words.Length * 8)..]) crc = Sse42.Crc32(crc, b);
            return crc;
        }
        if (Crc32.Arm64.IsSupported)
        {
            ReadOnlySpan<ulong> words = MemoryMarshal.Cast<byte, ulong>(data);
            foreach (ulong w in words) crc = Crc32.Arm64.ComputeCrc32C(crc, BitConverter.IsLittleEndian ? w : BinaryPrimitives.ReverseEndianness(w));
            foreach (byte b in data[(words.Length * 8)..]) crc = Crc32.ComputeCrc32C(crc, b);
            return crc;
        }
        foreach (byte b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }

    /// <summary>Bytes in each of the three chains of one block.</summary>
    private const int StreamBytes = 8 << 10;

    private static readonly uint[] ZerosOneThird = ZeroAppendTable(StreamBytes);
    private static readonly uint[] ZerosTwoThirds = ZeroAppendTable(2 * StreamBytes);

    /// <summary>The CRC register after the zero bytes <paramref name="zeros"/> was built for, from a register of <paramref name="crc"/>.</summary>
    private static uint AppendZeros(uint[] zeros, uint crc) =>
        zeros[crc & 0xFF] ^ zeros[256 + ((crc >> 8) & 0xFF)] ^ zeros[512 + ((crc >> 16) & 0xFF)] ^ zeros[768 + (crc >> 24)];

    /// <summary>
    /// The linear map "append <paramref name="bytes"/> zero bytes" on the (un-inverted) CRC register, one 256-entry
    /// table per register byte: from the 32 basis registers, each run through the zeros bit by bit.
    /// </summary>
    private static uint[] ZeroAppendTable(int bytes)
    {
        Span<uint> basis = stackalloc uint[32];
        for (int bit = 0; bit < 32; bit++)
        {
            uint c = 1u << bit;
            for (int k = 0; k < 8 * bytes; k++) c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            basis[bit] = c;
        }
        var table = new uint[4 * 256];
        for (int b = 0; b < 4; b++)
            for (int v = 0; v < 256; v++)
            {
                uint image = 0;
                for (int bit = 0; bit < 8; bit++)
                    if ((v & (1 << bit)) != 0) image ^= basis[8 * b + bit];
                table[256 * b + v] = image;
            }
        return table;
    }

    private static uint[] MakeTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            table[i] = c;
        }
        return table;
    }

    /// <summary>Tests only: the table-driven result, for checking the instruction paths against.</summary>
    internal static uint ComputeWithTable(ReadOnlySpan<byte> data)
    {
        uint crc = ~0u;
        foreach (byte b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }
}
