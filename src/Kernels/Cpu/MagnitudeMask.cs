using System.Buffers;
using System.Numerics;
using System.Runtime.Intrinsics;

namespace Weld.Kernels.Cpu;

/// <summary>
/// One side of a magnitude band: elements beyond <see cref="Key"/> (below it for a lower cut, above it for an
/// upper cut) are dropped; among elements whose key equals <see cref="Key"/>, numbered 0, 1, 2, … in flat index
/// order (their tie index), those with tie index in [<see cref="TieDropStart"/>, <see cref="TieDropEnd"/>) are
/// dropped too.
/// </summary>
/// <param name="Key">The magnitude key at the cut.</param>
/// <param name="TieDropStart">First dropped tie index.</param>
/// <param name="TieDropEnd">One past the last dropped tie index.</param>
/// <param name="EqualPerChunk">Per-chunk counts of elements equal to <paramref name="Key"/> (from the select).</param>
internal readonly record struct MagnitudeCut(int Key, long TieDropStart, long TieDropEnd, int[] EqualPerChunk);

/// <summary>Zeroes the elements outside a band of magnitude keys in one parallel pass.</summary>
internal static unsafe class MagnitudeMask
{
    private const int KeyMask = MagnitudeSelect.KeyMask;

    /// <summary>
    /// Zeroes (to +0) every element dropped by <paramref name="lower"/> or <paramref name="upper"/> (either may be
    /// absent). Every chunk is masked by SIMD key-range compares: a chunk whose ties are all kept or all dropped in one
    /// range, the chunks straddling a tie boundary (at most two per cut) in a few segments split at the boundary ties.
    /// </summary>
    public static void Apply(float* values, int length, MagnitudeCut? lower, MagnitudeCut? upper, ParallelOptions options)
    {
        int chunks = ChunkedParallel.ChunkCount(length);
        long[] lowerTiesBefore = ArrayPool<long>.Shared.Rent(chunks);
        long[] upperTiesBefore = ArrayPool<long>.Shared.Rent(chunks);
        try
        {
            // Exclusive prefix counts: the tie index of a chunk's first tied element.
            if (lower is { } low)
                PrefixCounts(low.EqualPerChunk, lowerTiesBefore, chunks);
            if (upper is { } high)
                PrefixCounts(high.EqualPerChunk, upperTiesBefore, chunks);

            nint address = (nint)values;
            ChunkedParallel.For(length, options, chunk =>
            {
                int* bits = (int*)address + ChunkedParallel.ChunkStart(chunk);
                int size = ChunkedParallel.ChunkSize(chunk, length);

                // Keep key > lowerExclusive and key <= upperInclusive; both stay within int (keys are below 2^31).
                int lowerExclusive = -1;
                int upperInclusive = int.MaxValue;
                bool partial = false;
                if (lower is { } l)
                {
                    switch (Classify(lowerTiesBefore[chunk], l.EqualPerChunk[chunk], l))
                    {
                        case TieFate.AllKept: lowerExclusive = l.Key - 1; break;
                        case TieFate.AllDropped: lowerExclusive = l.Key; break;
                        default: partial = true; break;
                    }
                }

                if (upper is { } u)
                {
                    switch (Classify(upperTiesBefore[chunk], u.EqualPerChunk[chunk], u))
                    {
                        case TieFate.AllKept: upperInclusive = u.Key; break;
                        case TieFate.AllDropped: upperInclusive = u.Key - 1; break;
                        default: partial = true; break;
                    }
                }

                if (partial)
                    ApplySegments(bits, size, lower, lowerTiesBefore[chunk], upper, upperTiesBefore[chunk]);
                else if (lowerExclusive >= 0 || upperInclusive != int.MaxValue)
                    ApplyRange(bits, size, lowerExclusive, upperInclusive);
            });
        }
        finally
        {
            ArrayPool<long>.Shared.Return(lowerTiesBefore);
            ArrayPool<long>.Shared.Return(upperTiesBefore);
        }
    }

    /// <summary>Span form of <see cref="Apply(float*, int, MagnitudeCut?, MagnitudeCut?, ParallelOptions)"/>.</summary>
    internal static void Apply(Span<float> values, MagnitudeCut? lower, MagnitudeCut? upper, ParallelOptions options)
    {
        fixed (float* data = values)
            Apply(data, values.Length, lower, upper, options);
    }

    /// <summary>
    /// Keeps the elements whose key lies in (<paramref name="lowerExclusive"/>, <paramref name="upperInclusive"/>] and zeroes
    /// the rest: a cut whose ties all share one fate needs no tie counts.
    /// </summary>
    public static void ApplyKeyRange(float* values, int length, int lowerExclusive, int upperInclusive, ParallelOptions options)
    {
        nint address = (nint)values;
        ChunkedParallel.For(length, options, chunk =>
            ApplyRange((int*)address + ChunkedParallel.ChunkStart(chunk), ChunkedParallel.ChunkSize(chunk, length), lowerExclusive, upperInclusive));
    }

    /// <summary>Sets every element to +0.</summary>
    public static void Clear(float* values, int length, ParallelOptions options)
    {
        nint address = (nint)values;
        ChunkedParallel.For(length, options, chunk =>
            new Span<float>((float*)address + ChunkedParallel.ChunkStart(chunk), ChunkedParallel.ChunkSize(chunk, length)).Clear());
    }

    private enum TieFate { AllKept, AllDropped, Mixed }

    private static TieFate Classify(long firstTie, int tiesInChunk, in MagnitudeCut cut)
    {
        long overlap = Math.Min(firstTie + tiesInChunk, cut.TieDropEnd) - Math.Max(firstTie, cut.TieDropStart);
        if (overlap <= 0)
            return TieFate.AllKept;
        return overlap == tiesInChunk ? TieFate.AllDropped : TieFate.Mixed;
    }

    private static void PrefixCounts(int[] perChunk, long[] before, int chunks)
    {
        long running = 0;
        for (int chunk = 0; chunk < chunks; chunk++)
        {
            before[chunk] = running;
            running += perChunk[chunk];
        }
    }

    private static void ApplyRange(int* bits, int size, int lowerExclusive, int upperInclusive)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var keyMask = new Vector<int>(KeyMask);
            var low = new Vector<int>(lowerExclusive);
            var high = new Vector<int>(upperInclusive);
            for (; i <= size - Vector<int>.Count; i += Vector<int>.Count)
            {
                Vector<int> word = Vector.Load(bits + i);
                Vector<int> key = word & keyMask;
                Vector<int> keep = Vector.GreaterThan(key, low) & Vector.LessThanOrEqual(key, high);
                Vector.Store(word & keep, bits + i);
            }
        }

        for (; i < size; i++)
        {
            int key = bits[i] & KeyMask;
            if (key <= lowerExclusive || key > upperInclusive)
                bits[i] = 0;
        }
    }

    /// <summary>
    /// A chunk where a cut's tie fate changes: split at the ties where it changes (at most two per cut) into segments
    /// of one fate each, every segment masked by <see cref="ApplyRange"/> — the same bits as deciding element by element.
    /// </summary>
    private static void ApplySegments(int* bits, int size, MagnitudeCut? lower, long lowerTie, MagnitudeCut? upper, long upperTie)
    {
        bool wide = Vector512.IsHardwareAccelerated;
        int start = 0;
        while (start < size)
        {
            int end = size;
            int lowerExclusive = -1;
            int upperInclusive = int.MaxValue;
            if (lower is { } l)
            {
                bool dropped = IsDropped(lowerTie, l);
                lowerExclusive = dropped ? l.Key : l.Key - 1;
                end = Math.Min(end, start + IndexOfTie(bits + start, end - start, l.Key, TiesUntilFateChanges(lowerTie, l)));
            }

            if (upper is { } u)
            {
                bool dropped = IsDropped(upperTie, u);
                upperInclusive = dropped ? u.Key - 1 : u.Key;
                end = Math.Min(end, start + IndexOfTie(bits + start, end - start, u.Key, TiesUntilFateChanges(upperTie, u)));
            }

            // Count the segment's ties before the mask zeroes them.
            if (lower is { } lowerCut)
                lowerTie += MagnitudeHistogramKernel.CountEqual(bits + start, end - start, lowerCut.Key, wide);
            if (upper is { } upperCut)
                upperTie += MagnitudeHistogramKernel.CountEqual(bits + start, end - start, upperCut.Key, wide);
            ApplyRange(bits + start, end - start, lowerExclusive, upperInclusive);
            start = end;
        }
    }

    private static bool IsDropped(long tie, in MagnitudeCut cut) => tie >= cut.TieDropStart && tie < cut.TieDropEnd;

    /// <summary>How many ties, from tie index <paramref name="tie"/> on, share its fate (long.MaxValue: all the rest).</summary>
    private static long TiesUntilFateChanges(long tie, in MagnitudeCut cut)
    {
        if (IsDropped(tie, cut))
            return cut.TieDropEnd - tie;
        return tie < cut.TieDropStart ? cut.TieDropStart - tie : long.MaxValue;
    }

    /// <summary>
    /// Index of the element with key <paramref name="key"/> that has <paramref name="nth"/> such elements before it, or
    /// the length when there are not that many.
    /// </summary>
    internal static int IndexOfTie(ReadOnlySpan<float> values, int key, long nth)
    {
        fixed (float* data = values)
            return IndexOfTie((int*)data, values.Length, key, nth);
    }

    /// <summary>Pointer form of <see cref="IndexOfTie(ReadOnlySpan{float}, int, long)"/>.</summary>
    internal static int IndexOfTie(int* bits, int size, int key, long nth)
    {
        if (nth >= size)
            return size;
        int left = (int)nth, i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<int> keyMask = Vector256.Create(KeyMask), wanted = Vector256.Create(key);
            for (; i <= size - Vector256<int>.Count; i += Vector256<int>.Count)
            {
                uint ties = Vector256.Equals(Vector256.Load(bits + i) & keyMask, wanted).ExtractMostSignificantBits();
                int count = BitOperations.PopCount(ties);
                if (count > left)
                {
                    for (; left > 0; left--)
                        ties &= ties - 1;
                    return i + BitOperations.TrailingZeroCount(ties);
                }
                left -= count;
            }
        }

        for (; i < size; i++)
        {
            if ((bits[i] & KeyMask) != key)
                continue;
            if (left == 0)
                return i;
            left--;
        }
        return size;
    }
}
