using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Weld.Kernels;

/// <summary>
/// A selection kept as one bit per element between the passes of a streamed tensor: bit i (bit i mod 64 of word
/// ⌊i / 64⌋) is set where the selector is not ±0 (a NaN selector is kept, as the kernels that read a selector take it).
/// 32 times smaller than the float selector it stands for, so SCE remembers the selection of its energy pass for the
/// apply pass instead of computing the variances and the cut again.
/// </summary>
public static class SelectionBits
{
    /// <summary>Words that hold the bits of <paramref name="length"/> elements.</summary>
    public static long WordCount(long length) => (length + 63) / 64;

    /// <summary>
    /// bits = (selector[i] ≠ ±0) for the ⌈n / 64⌉ words of <paramref name="bits"/> (n = selector.Length); the unused high
    /// bits of the last word are 0.
    /// </summary>
    public static void Pack(ReadOnlySpan<float> selector, Span<ulong> bits) => Pack(selector, bits, Vector512.IsHardwareAccelerated);

    /// <summary>
    /// selector[i] = 1 where bit i is set, else +0, for the n = selector.Length elements (only ±0 versus any other
    /// value matters to the kernels that read it).
    /// </summary>
    public static void Unpack(ReadOnlySpan<ulong> bits, Span<float> selector) => Unpack(bits, selector, Vector512.IsHardwareAccelerated);

    /// <summary><see cref="Pack(ReadOnlySpan{float}, Span{ulong})"/> with 512-bit compares when <paramref name="wide"/>, else 256-bit ones (same bits: tests call both).</summary>
    internal static void Pack(ReadOnlySpan<float> selector, Span<ulong> bits, bool wide)
    {
        int n = selector.Length;
        if (bits.Length != WordCount(n))
            throw new ArgumentException($"Expected {WordCount(n)} words for {n} elements, got {bits.Length}.", nameof(bits));
        ref float source = ref MemoryMarshal.GetReference(selector);
        int word = 0;
        for (; (word + 1) * 64 <= n; word++)
        {
            nuint start = (nuint)(word * 64);
            ulong zeros = 0;
            if (wide)
            {
                for (int part = 0; part < 4; part++)
                    zeros |= (ulong)Vector512.Equals(Vector512.LoadUnsafe(ref source, start + (nuint)(16 * part)), Vector512<float>.Zero)
                        .ExtractMostSignificantBits() << (16 * part);
            }
            else
            {
                for (int part = 0; part < 8; part++)
                    zeros |= (ulong)Vector256.Equals(Vector256.LoadUnsafe(ref source, start + (nuint)(8 * part)), Vector256<float>.Zero)
                        .ExtractMostSignificantBits() << (8 * part);
            }
            bits[word] = ~zeros;
        }
        if (word < bits.Length)
        {
            ulong kept = 0;
            for (int i = word * 64; i < n; i++)
                if (selector[i] != 0f) kept |= 1UL << (i - word * 64);
            bits[word] = kept;
        }
    }

    /// <summary><see cref="Unpack(ReadOnlySpan{ulong}, Span{float})"/> with 512-bit stores when <paramref name="wide"/>, else 256-bit ones.</summary>
    internal static void Unpack(ReadOnlySpan<ulong> bits, Span<float> selector, bool wide)
    {
        int n = selector.Length;
        if (bits.Length < WordCount(n))
            throw new ArgumentException($"Expected {WordCount(n)} words for {n} elements, got {bits.Length}.", nameof(bits));
        ref float destination = ref MemoryMarshal.GetReference(selector);
        int word = 0;
        for (; (word + 1) * 64 <= n; word++)
        {
            nuint start = (nuint)(word * 64);
            ulong kept = bits[word];
            if (wide)
            {
                Vector512<int> lanes = Vector512.Create(1, 1 << 1, 1 << 2, 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 7,
                    1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12, 1 << 13, 1 << 14, 1 << 15);
                for (int part = 0; part < 4; part++)
                {
                    Vector512<int> set = Vector512.Create((int)(kept >> (16 * part)) & 0xFFFF) & lanes;
                    Vector512.ConditionalSelect(Vector512.Equals(set, Vector512<int>.Zero).AsSingle(), Vector512<float>.Zero, Vector512<float>.One)
                        .StoreUnsafe(ref destination, start + (nuint)(16 * part));
                }
            }
            else
            {
                Vector256<int> lanes = Vector256.Create(1, 1 << 1, 1 << 2, 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 7);
                for (int part = 0; part < 8; part++)
                {
                    Vector256<int> set = Vector256.Create((int)(kept >> (8 * part)) & 0xFF) & lanes;
                    Vector256.ConditionalSelect(Vector256.Equals(set, Vector256<int>.Zero).AsSingle(), Vector256<float>.Zero, Vector256<float>.One)
                        .StoreUnsafe(ref destination, start + (nuint)(8 * part));
                }
            }
        }
        for (int i = word * 64; i < n; i++)
            selector[i] = (bits[word] >> (i - word * 64) & 1) != 0 ? 1f : 0f;
    }
}
