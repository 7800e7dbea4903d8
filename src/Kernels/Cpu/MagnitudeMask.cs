using System.Buffers;
using System.Numerics;

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
    /// absent). Chunks whose ties are all kept or all dropped take a SIMD path; at most the chunks straddling a
    /// tie boundary go element by element.
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
                    ApplyElementwise(bits, size, lower, lowerTiesBefore[chunk], upper, upperTiesBefore[chunk]);
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

    private static void ApplyElementwise(int* bits, int size, MagnitudeCut? lower, long lowerTie, MagnitudeCut? upper, long upperTie)
    {
        for (int i = 0; i < size; i++)
        {
            int key = bits[i] & KeyMask;
            bool keep = true;
            if (lower is { } l)
            {
                if (key < l.Key)
                {
                    keep = false;
                }
                else if (key == l.Key)
                {
                    keep = lowerTie < l.TieDropStart || lowerTie >= l.TieDropEnd;
                    lowerTie++;
                }
            }

            if (upper is { } u)
            {
                if (key > u.Key)
                {
                    keep = false;
                }
                else if (key == u.Key)
                {
                    keep &= upperTie < u.TieDropStart || upperTie >= u.TieDropEnd;
                    upperTie++;
                }
            }

            if (!keep)
                bits[i] = 0;
        }
    }
}
