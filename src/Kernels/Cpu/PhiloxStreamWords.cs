using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Weld.Kernels.Random;

namespace Weld.Kernels.Cpu;

/// <summary>
/// The raw 32-bit words of Weld's Philox element stream (<see cref="Philox4x32"/>) for a run of consecutive tensor
/// indices, four blocks at a time in 64-bit vector lanes: the same bits as <see cref="Philox4x32.StreamBlock"/>.
/// </summary>
internal static unsafe class PhiloxStreamWords
{
    /// <summary>Writes the word of element <paramref name="firstElement"/> + i into <c>words[i]</c>.</summary>
    public static void Fill(PhiloxKey key, long firstElement, Span<uint> words)
    {
        fixed (uint* to = words)
            Fill(key, firstElement, to, words.Length);
    }

    /// <summary>Writes the word of element <paramref name="firstElement"/> + i into <c>words[i]</c>, i &lt; <paramref name="count"/>.</summary>
    public static void Fill(PhiloxKey key, long firstElement, uint* words, int count)
    {
        long element = firstElement, end = firstElement + count;
        uint* at = words;
        // A start inside a block takes the rest of that block's words.
        if ((element & 3) != 0 && element < end)
        {
            Philox4x32Block block = Philox4x32.StreamBlock(key, (ulong)element >> 2);
            for (; element < end && (element & 3) != 0; element++)
                *at++ = block[(int)(element & 3)];
        }
        if (Avx2.IsSupported)
            for (; element + 16 <= end; element += 16, at += 16)
                Sixteen(at, (ulong)element >> 2, key);
        for (; element < end; element += 4)
        {
            Philox4x32Block block = Philox4x32.StreamBlock(key, (ulong)element >> 2);
            int lanes = (int)Math.Min(4, end - element);
            for (int lane = 0; lane < lanes; lane++)
                *at++ = block[lane];
        }
    }

    /// <summary>The 16 words of blocks firstBlock .. firstBlock + 3, in element order (AVX2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Sixteen(uint* words, ulong firstBlock, PhiloxKey key)
    {
        Vector256<ulong> low32 = Vector256.Create(0xFFFF_FFFFUL);
        Vector256<ulong> block = Vector256.Create(firstBlock) + Vector256.Create(0UL, 1UL, 2UL, 3UL);
        Vector256<ulong> c0 = block & low32;
        Vector256<ulong> c1 = block >>> 32;
        Vector256<ulong> c2 = Vector256.Create((ulong)key.TensorHash);
        Vector256<ulong> c3 = Vector256.Create((ulong)key.ModelIndex);
        Vector256<uint> m0 = Vector256.Create((ulong)Philox4x32.Multiplier0).AsUInt32();
        Vector256<uint> m1 = Vector256.Create((ulong)Philox4x32.Multiplier1).AsUInt32();
        uint key0 = (uint)key.Seed, key1 = (uint)(key.Seed >> 32);
        for (int round = 0; round < Philox4x32.Rounds; round++)
        {
            if (round != 0)
            {
                key0 += Philox4x32.KeyIncrement0;
                key1 += Philox4x32.KeyIncrement1;
            }
            // Both factors are below 2^32: vpmuludq gives the whole 64-bit product per lane.
            Vector256<ulong> product0 = Avx2.Multiply(c0.AsUInt32(), m0);
            Vector256<ulong> product1 = Avx2.Multiply(c2.AsUInt32(), m1);
            Vector256<ulong> next0 = (product1 >>> 32) ^ c1 ^ Vector256.Create((ulong)key0);
            Vector256<ulong> next2 = (product0 >>> 32) ^ c3 ^ Vector256.Create((ulong)key1);
            c1 = product1 & low32;
            c3 = product0 & low32;
            c0 = next0;
            c2 = next2;
        }
        // Words 0,1 and 2,3 of each block paired in 64-bit lanes, interleaved per 128-bit lane, then the halves put in
        // block order: blocks 0,1 then 2,3 (element 4·(firstBlock + b) + w takes word w of block b).
        Vector256<ulong> words01 = c0 | (c1 << 32), words23 = c2 | (c3 << 32);
        Vector256<ulong> even = Avx2.UnpackLow(words01, words23), odd = Avx2.UnpackHigh(words01, words23);
        Avx2.Permute2x128(even, odd, 0x20).AsUInt32().Store(words);
        Avx2.Permute2x128(even, odd, 0x31).AsUInt32().Store(words + 8);
    }
}
