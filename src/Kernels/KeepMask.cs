using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Weld.Kernels;

/// <summary>
/// One bit per element of a sparsified chunk: set where the value is not +0. A sparsification that leaves every kept
/// element unchanged and writes +0 for every dropped one (DELLA without the inverse-probability rescale) can be
/// replayed from these bits on the unsparsified values with the same bits: a kept +0 replays as +0, a kept −0 or NaN as
/// itself.
/// </summary>
public static class KeepMask
{
    /// <summary>Bits for <paramref name="count"/> elements: ⌈count / 64⌉ words.</summary>
    public static long Words(long count) => (count + 63) / 64;

    /// <summary>Sets bit i of <paramref name="bits"/> (word i / 64, bit i mod 64) iff <c>sparsified[i]</c> is not +0.</summary>
    public static void Record(ReadOnlySpan<float> sparsified, Span<ulong> bits)
    {
        ReadOnlySpan<uint> raw = MemoryMarshal.Cast<float, uint>(sparsified);
        ref uint start = ref MemoryMarshal.GetReference(raw);
        int i = 0, w = 0;
        for (; i + 64 <= raw.Length; i += 64, w++)
        {
            ulong word = 0;
            for (int j = 0; j < 64; j += 8)
            {
                uint zero = Vector256.Equals(Vector256.LoadUnsafe(ref start, (nuint)(i + j)), Vector256<uint>.Zero).ExtractMostSignificantBits();
                word |= (ulong)(~zero & 0xFFu) << j;
            }
            bits[w] = word;
        }
        if (i < raw.Length)
        {
            ulong word = 0;
            for (int j = 0; i + j < raw.Length; j++)
                if (raw[i + j] != 0)
                    word |= 1UL << j;
            bits[w] = word;
        }
    }

    /// <summary>Writes +0 into every element of <paramref name="values"/> whose bit is clear; the others stay as they are.</summary>
    public static void Replay(Span<float> values, ReadOnlySpan<ulong> bits)
    {
        Span<uint> raw = MemoryMarshal.Cast<float, uint>(values);
        ref uint start = ref MemoryMarshal.GetReference(raw);
        Vector256<uint> lanes = Vector256.Create(1u, 2u, 4u, 8u, 16u, 32u, 64u, 128u);
        int i = 0, w = 0;
        for (; i + 64 <= raw.Length; i += 64, w++)
        {
            ulong word = bits[w];
            for (int j = 0; j < 64; j += 8)
            {
                Vector256<uint> keep = Vector256.Equals(Vector256.Create((uint)(word >> j) & 0xFFu) & lanes, lanes);
                (Vector256.LoadUnsafe(ref start, (nuint)(i + j)) & keep).StoreUnsafe(ref start, (nuint)(i + j));
            }
        }
        if (i < raw.Length)
        {
            ulong word = bits[w];
            for (int j = 0; i + j < raw.Length; j++)
                if ((word >> j & 1) == 0)
                    raw[i + j] = 0;
        }
    }
}
