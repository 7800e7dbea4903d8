using System.Runtime.Intrinsics;
using Weld.Kernels.Random;

namespace Weld.Kernels.Cpu;

/// <summary>
/// The raw 32-bit words of Weld's Philox element stream (<see cref="Philox4x32"/>) for a run of consecutive tensor
/// indices, eight or four blocks at a time in 64-bit vector lanes (<see cref="PhiloxVectorBlocks"/>): the same bits
/// as <see cref="Philox4x32.StreamBlock"/>.
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
    public static void Fill(PhiloxKey key, long firstElement, uint* words, int count) =>
        Fill(key, firstElement, words, count, PhiloxVectorBlocks.Widest);

    /// <summary>The words on the paths of <paramref name="width"/> and narrower (for tests: every width writes the same words).</summary>
    internal static void Fill(PhiloxKey key, long firstElement, Span<uint> words, PhiloxWidth width)
    {
        fixed (uint* to = words)
            Fill(key, firstElement, to, words.Length, width);
    }

    /// <summary>
    /// <see cref="Fill(PhiloxKey, long, uint*, int)"/> on the paths of <paramref name="width"/> and narrower (tests run
    /// each width; the words are the same).
    /// </summary>
    internal static void Fill(PhiloxKey key, long firstElement, uint* words, int count, PhiloxWidth width)
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
        if (width != PhiloxWidth.Scalar && element + 16 <= end)
        {
            ulong* roundKeys = stackalloc ulong[PhiloxVectorBlocks.RoundKeyEntries];
            PhiloxVectorBlocks.WriteRoundKeys(key, roundKeys);
            if (width == PhiloxWidth.Avx512)
                for (; element + 64 <= end; element += 64, at += 64)
                {
                    PhiloxVectorBlocks.Sixteen((ulong)element >> 2, key, roundKeys, out Vector512<uint> words0,
                        out Vector512<uint> words1, out Vector512<uint> words2, out Vector512<uint> words3);
                    words0.Store(at);
                    words1.Store(at + 16);
                    words2.Store(at + 32);
                    words3.Store(at + 48);
                }
            if (width == PhiloxWidth.Avx512)
                for (; element + 32 <= end; element += 32, at += 32)
                {
                    PhiloxVectorBlocks.Eight((ulong)element >> 2, key, roundKeys, out Vector512<uint> first, out Vector512<uint> second);
                    first.Store(at);
                    second.Store(at + 16);
                }
            for (; element + 16 <= end; element += 16, at += 16)
            {
                PhiloxVectorBlocks.Four((ulong)element >> 2, key, roundKeys, out Vector256<uint> first, out Vector256<uint> second);
                first.Store(at);
                second.Store(at + 8);
            }
        }
        for (; element < end; element += 4)
        {
            Philox4x32Block block = Philox4x32.StreamBlock(key, (ulong)element >> 2);
            int lanes = (int)Math.Min(4, end - element);
            for (int lane = 0; lane < lanes; lane++)
                *at++ = block[lane];
        }
    }
}
