using System.Buffers;
using System.Runtime.Intrinsics;

namespace Weld.Kernels.Cpu;

/// <summary>A magnitude key found by <see cref="MagnitudeSelect"/> and how many keys lie below and at it.</summary>
/// <param name="Key">The magnitude key (float bits with the sign cleared).</param>
/// <param name="CountBelow">Elements whose key is smaller.</param>
/// <param name="CountEqual">Elements whose key equals <paramref name="Key"/>.</param>
internal readonly record struct MagnitudeRank(int Key, long CountBelow, long CountEqual);

/// <summary>
/// Radix select on magnitude keys: key(x) = bits(x) &amp; 0x7FFFFFFF, whose unsigned (and, being below 2^31,
/// signed) integer order is the order of |x|, with NaN above +∞. Three histogram passes over the 31 key bits
/// (11, 10, 10) narrow the search to one key, in O(n) and with no sort.
/// </summary>
internal static unsafe class MagnitudeSelect
{
    /// <summary>Clears the sign bit: what is left orders like |x|.</summary>
    public const int KeyMask = 0x7FFFFFFF;

    private const int MaxBins = 1 << 11;

    // Digits from the top: bits 30..20, 19..10, 9..0.
    private static ReadOnlySpan<byte> DigitShifts => [20, 10, 0];
    private static ReadOnlySpan<byte> DigitWidths => [11, 10, 10];

    /// <summary>
    /// Finds the key at 0-based position <paramref name="rank"/> of the ascending key order, and for every chunk
    /// of <see cref="ChunkedParallel"/> the number of its elements with exactly that key.
    /// </summary>
    /// <param name="values">The data (read only).</param>
    /// <param name="length">Element count; <paramref name="rank"/> must be below it.</param>
    /// <param name="rank">Ascending position sought.</param>
    /// <param name="options">Parallelism.</param>
    /// <param name="equalPerChunk">Receives per-chunk counts of elements equal to the key (ChunkCount entries).</param>
    public static MagnitudeRank Select(float* values, int length, long rank, ParallelOptions options, Span<int> equalPerChunk)
    {
        if (SampledMagnitudeSelect.TrySelect(values, length, rank, options, equalPerChunk, out MagnitudeRank sampled))
            return sampled;
        return SelectByRadix(values, length, rank, options, equalPerChunk);
    }

    /// <summary>Span form of <see cref="SelectByRadix(float*, int, long, ParallelOptions, Span{int})"/>.</summary>
    internal static MagnitudeRank SelectByRadix(ReadOnlySpan<float> values, long rank, ParallelOptions options, Span<int> equalPerChunk)
    {
        fixed (float* data = values)
            return SelectByRadix(data, values.Length, rank, options, equalPerChunk);
    }

    /// <summary>The three-pass radix select (what <see cref="Select"/> falls back to when sampling does not pay).</summary>
    internal static MagnitudeRank SelectByRadix(float* values, int length, long rank, ParallelOptions options, Span<int> equalPerChunk)
    {
        int chunks = ChunkedParallel.ChunkCount(length);
        int[] chunkHistograms = ArrayPool<int>.Shared.Rent(chunks * MaxBins);
        try
        {
            long countBelow = 0;
            int prefix = 0;
            int digit = 0;
            int bins = 0;
            for (int pass = 0; pass < DigitShifts.Length; pass++)
            {
                int shift = DigitShifts[pass];
                int width = DigitWidths[pass];
                bins = 1 << width;
                CountDigits(values, length, shift, width, prefix, chunkHistograms, options);

                // Walk the digits upward until the running count passes the rank left inside this prefix.
                long remaining = rank - countBelow;
                long cumulative = 0;
                for (digit = 0; digit < bins; digit++)
                {
                    long inBin = SumBin(chunkHistograms, chunks, digit);
                    if (cumulative + inBin > remaining)
                        break;
                    cumulative += inBin;
                }

                countBelow += cumulative;
                prefix = (prefix << width) | digit;
            }

            // After the last pass the per-chunk bins of the chosen digit count exactly the elements equal to the key.
            long countEqual = 0;
            for (int chunk = 0; chunk < chunks; chunk++)
            {
                int equal = chunkHistograms[chunk * MaxBins + digit];
                equalPerChunk[chunk] = equal;
                countEqual += equal;
            }

            return new MagnitudeRank(prefix, countBelow, countEqual);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(chunkHistograms);
        }
    }

    private static long SumBin(int[] chunkHistograms, int chunks, int bin)
    {
        long sum = 0;
        for (int chunk = 0; chunk < chunks; chunk++)
            sum += chunkHistograms[chunk * MaxBins + bin];
        return sum;
    }

    /// <summary>
    /// Counts the digits of the keys whose bits above <paramref name="prefixShift"/> equal <paramref name="prefix"/>.
    /// After the first pass only a sliver of the keys match, so whole vectors without a match are skipped.
    /// </summary>
    internal static void CountUnderPrefix(int* bits, int size, int shift, int prefixShift, int prefix, int digitMask, int* counts)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<int> keyMask = Vector256.Create(KeyMask);
            Vector256<int> wanted = Vector256.Create(prefix);
            for (; i <= size - Vector256<int>.Count; i += Vector256<int>.Count)
            {
                Vector256<int> high = (Vector256.Load(bits + i) & keyMask) >>> prefixShift;
                if (Vector256.EqualsAny(high, wanted))
                {
                    for (int j = i; j < i + Vector256<int>.Count; j++)
                    {
                        int key = bits[j] & KeyMask;
                        if ((key >> prefixShift) == prefix)
                            counts[(key >> shift) & digitMask]++;
                    }
                }
            }
        }

        for (; i < size; i++)
        {
            int key = bits[i] & KeyMask;
            if ((key >> prefixShift) == prefix)
                counts[(key >> shift) & digitMask]++;
        }
    }

    /// <summary>Per-chunk histogram of one digit over the elements whose higher key bits equal <paramref name="prefix"/>.</summary>
    private static void CountDigits(float* values, int length, int shift, int width, int prefix, int[] chunkHistograms, ParallelOptions options)
    {
        nint address = (nint)values;
        int prefixShift = shift + width;
        int digitMask = (1 << width) - 1;
        ChunkedParallel.For(length, options, chunk =>
        {
            Span<int> histogram = chunkHistograms.AsSpan(chunk * MaxBins, MaxBins);
            histogram.Clear();
            int* bits = (int*)address + ChunkedParallel.ChunkStart(chunk);
            int size = ChunkedParallel.ChunkSize(chunk, length);
            fixed (int* counts = histogram)
            {
                if (prefixShift >= 31)
                {
                    // First pass: every element counts, no prefix test. Neighbouring elements often share a bin
                    // (similar magnitudes, bf16 ties); four sub-histograms keep those increments independent.
                    int bins = 1 << width;
                    int* sub = stackalloc int[4 * MaxBins];
                    new Span<int>(sub, 4 * MaxBins).Clear();
                    int i = 0;
                    for (; i <= size - 4; i += 4)
                    {
                        sub[(bits[i] & KeyMask) >> shift]++;
                        sub[MaxBins + ((bits[i + 1] & KeyMask) >> shift)]++;
                        sub[2 * MaxBins + ((bits[i + 2] & KeyMask) >> shift)]++;
                        sub[3 * MaxBins + ((bits[i + 3] & KeyMask) >> shift)]++;
                    }
                    for (; i < size; i++)
                        sub[(bits[i] & KeyMask) >> shift]++;
                    for (int b = 0; b < bins; b++)
                        counts[b] = sub[b] + sub[MaxBins + b] + sub[2 * MaxBins + b] + sub[3 * MaxBins + b];
                }
                else
                {
                    CountUnderPrefix(bits, size, shift, prefixShift, prefix, digitMask, counts);
                }
            }
        });
    }
}
