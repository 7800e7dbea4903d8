using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;

namespace Weld.Engine.SafeTensors;

/// <summary>
/// The checksum of a written shard, recorded in the progress file for <c>--resume</c> and <c>weld finalize</c>: CRC32C
/// (Castagnoli), computed with the CPU's CRC32 instruction (SSE4.2 / ARMv8 CRC), about 5 GB/s on one core where
/// SHA-256 managed 1.3 GB/s. It guards against damaged or truncated shards (a flipped bit, a torn write), which is all
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
            ReadOnlySpan<ulong> words = MemoryMarshal.Cast<byte, ulong>(data);
            int i = 0;
            // Unrolled by four: the instruction's throughput is one per cycle but its latency three, and the chain is serial.
            for (; i + 4 <= words.Length; i += 4)
            {
                c = Sse42.X64.Crc32(c, words[i]);
                c = Sse42.X64.Crc32(c, words[i + 1]);
                c = Sse42.X64.Crc32(c, words[i + 2]);
                c = Sse42.X64.Crc32(c, words[i + 3]);
            }
            for (; i < words.Length; i++) c = Sse42.X64.Crc32(c, words[i]);
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
