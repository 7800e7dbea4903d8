using System.Numerics;
using System.Runtime.Intrinsics;

namespace Weld.Kernels.Cpu;

/// <summary>
/// The select inside a sampled bracket: the key at a rank among the keys in [low, high] that
/// <see cref="SampledMagnitudeSelect"/> gathered chunk by chunk, found by a radix select on the offsets key − low
/// (digits of up to 11 bits from the top of the bracket's width), read where the chunks left them.
/// </summary>
/// <remarks>
/// A bracket of W distinct keys takes up to ⌈log2 W / 11⌉ counting passes over the gathered keys and 2K-bin histograms
/// (one when the first digit's bin holds a single key, as in the ~1M-key brackets of bf16-derived task vectors), instead of clearing and walking one counter per key of
/// the bracket or copying the keys into one array first. Exact: the offsets order like the keys.
/// </remarks>
internal static unsafe class BracketSelect
{
    private const int MaxDigitBits = 11;
    private const int MaxBins = 1 << MaxDigitBits;

    /// <summary>
    /// The key at ascending position <paramref name="rank"/> among the gathered keys (chunk c holds
    /// <paramref name="inBand"/>[c] keys from <paramref name="band"/>[c · <paramref name="capacity"/>]), with the count
    /// of gathered keys below it and equal to it; <paramref name="equalPerChunk"/> receives the per-chunk equal counts.
    /// </summary>
    public static MagnitudeRank Select(int[] band, int capacity, int[] inBand, int chunks, int low, int high, long rank, Span<int> equalPerChunk)
    {
        int width = 32 - BitOperations.LeadingZeroCount((uint)(high - low)); // bits of the largest offset; 0 for one key
        int prefix = 0, resolved = 0;
        long below = 0;
        int* sub = stackalloc int[4 * MaxBins];
        while (resolved < width)
        {
            int digitBits = Math.Min(MaxDigitBits, width - resolved);
            int shift = width - resolved - digitBits;
            int bins = 1 << digitBits;
            new Span<int>(sub, 4 * MaxBins).Clear();
            fixed (int* keys = band)
            {
                for (int chunk = 0; chunk < chunks; chunk++)
                {
                    int* at = keys + (long)chunk * capacity;
                    if (resolved == 0)
                        CountAll(at, inBand[chunk], low, shift, sub);
                    else
                        CountUnderPrefix(at, inBand[chunk], low, shift, digitBits, prefix, sub);
                }
            }

            // Walk the digits upward until the running count passes the rank left inside this prefix.
            long remaining = rank - below, cumulative = 0;
            int digit = 0;
            for (; digit < bins - 1; digit++)
            {
                long inBin = BinCount(sub, digit);
                if (cumulative + inBin > remaining) break;
                cumulative += inBin;
            }
            below += cumulative;
            prefix = (prefix << digitBits) | digit;
            resolved += digitBits;
            if (resolved < width && TryOneKeyBin(band, capacity, inBand, chunks, low, shift, prefix, sub, digit, equalPerChunk, out int only))
                return new MagnitudeRank(only, below, BinCount(sub, digit));
        }

        int key = low + prefix;
        long equal = 0;
        fixed (int* keys = band)
        {
            for (int chunk = 0; chunk < chunks; chunk++)
            {
                int inChunk = width == 0 ? inBand[chunk] // a one-key bracket: every gathered key is the key
                    : MagnitudeHistogramKernel.CountEqual(keys + (long)chunk * capacity, inBand[chunk], key, Vector512.IsHardwareAccelerated);
                equalPerChunk[chunk] = inChunk;
                equal += inChunk;
            }
        }
        return new MagnitudeRank(key, below, equal);
    }

    private static long BinCount(int* sub, int digit) =>
        (long)sub[digit] + sub[MaxBins + digit] + sub[2 * MaxBins + digit] + sub[3 * MaxBins + digit];

    /// <summary>
    /// Whether the chosen bin holds one key alone (heavy ties: the bracket's few distinct keys lie far apart), tested by
    /// counting, per chunk, the keys equal to the bin's first key — the per-chunk counts the answer needs anyway. When
    /// the counts add up to the bin's count they are the answer's, and the finer digits need no pass.
    /// </summary>
    private static bool TryOneKeyBin(int[] band, int capacity, int[] inBand, int chunks, int low, int shift, int prefix, int* sub,
        int digit, Span<int> equalPerChunk, out int key)
    {
        key = 0;
        bool found = false;
        fixed (int* keys = band)
        {
            for (int chunk = 0; chunk < chunks && !found; chunk++)
            {
                int* at = keys + (long)chunk * capacity;
                for (int i = 0; i < inBand[chunk]; i++)
                {
                    if ((at[i] - low) >> shift == prefix)
                    {
                        key = at[i];
                        found = true;
                        break;
                    }
                }
            }
            if (!found) return false;
            // Written either way: a bin of several keys goes on to the finer digits, which overwrite these counts.
            long equal = 0;
            bool wide = Vector512.IsHardwareAccelerated;
            for (int chunk = 0; chunk < chunks; chunk++)
                equal += equalPerChunk[chunk] = MagnitudeHistogramKernel.CountEqual(keys + (long)chunk * capacity, inBand[chunk], key, wide);
            return equal == BinCount(sub, digit);
        }
    }

    /// <summary>
    /// First digit: every key counts. Four sub-histograms keep the increments of neighbouring equal keys (heavy ties)
    /// from waiting on each other.
    /// </summary>
    private static void CountAll(int* keys, int size, int low, int shift, int* sub)
    {
        int i = 0;
        for (; i <= size - 4; i += 4)
        {
            sub[(keys[i] - low) >> shift]++;
            sub[MaxBins + ((keys[i + 1] - low) >> shift)]++;
            sub[2 * MaxBins + ((keys[i + 2] - low) >> shift)]++;
            sub[3 * MaxBins + ((keys[i + 3] - low) >> shift)]++;
        }
        for (; i < size; i++)
            sub[(keys[i] - low) >> shift]++;
    }

    /// <summary>Later digits: only offsets whose higher bits equal <paramref name="prefix"/>; vectors without one are skipped.</summary>
    private static void CountUnderPrefix(int* keys, int size, int low, int shift, int digitBits, int prefix, int* sub)
    {
        int prefixShift = shift + digitBits;
        int digitMask = (1 << digitBits) - 1;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<int> lowVector = Vector256.Create(low), wanted = Vector256.Create(prefix);
            for (; i <= size - Vector256<int>.Count; i += Vector256<int>.Count)
            {
                uint matches = Vector256.Equals((Vector256.Load(keys + i) - lowVector) >>> prefixShift, wanted).ExtractMostSignificantBits();
                while (matches != 0)
                {
                    int lane = BitOperations.TrailingZeroCount(matches);
                    sub[(lane & 3) * MaxBins + (((keys[i + lane] - low) >> shift) & digitMask)]++;
                    matches &= matches - 1;
                }
            }
        }
        for (; i < size; i++)
        {
            int offset = keys[i] - low;
            if (offset >> prefixShift == prefix)
                sub[(i & 3) * MaxBins + ((offset >> shift) & digitMask)]++;
        }
    }
}
