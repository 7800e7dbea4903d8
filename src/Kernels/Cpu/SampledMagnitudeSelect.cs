using System.Buffers;
using System.Numerics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Weld.Kernels.Cpu;

/// <summary>
/// Exact magnitude select in one streaming pass for large arrays: a sample brackets the sought rank, one
/// SIMD pass counts the keys below the bracket and gathers the few inside it, and the radix select of
/// <see cref="MagnitudeSelect"/> runs on those alone.
/// </summary>
/// <remarks>
/// The radix select reads every key three times and scatters each into a histogram; here the bulk of the keys
/// is only compared against two bounds (no scatter), and only the ~2 % inside the bracket are touched again. The
/// answer is exact either way: the sample only picks the bracket, and when the sought rank falls outside it (an
/// unlucky or adversarial sample, or keys so tied that the bracket holds too many) <c>TrySelect</c>
/// returns false and the caller runs the full radix select. Sample positions depend only on the length, so the
/// path taken — and every result — is the same on any thread count.
/// </remarks>
internal static unsafe class SampledMagnitudeSelect
{
    /// <summary>Below this length the three radix passes are cheap enough.</summary>
    public const int MinimumLength = 1 << 22;

    private const int SampleBlocks = 1024;
    private const int SampleBlockLength = 32; // two cache lines per block: the sample costs ~1k memory fetches
    internal const int SampleSize = SampleBlocks * SampleBlockLength;

    /// <summary>A bracket of at most this many distinct keys is counted per key (4 MiB of counts) instead of radix-selected.</summary>
    private const int MaxCountedKeys = 1 << 20;

    /// <summary>
    /// Finds the key at ascending rank <paramref name="rank"/> and the per-chunk counts of keys equal to it, as
    /// <see cref="MagnitudeSelect.Select"/> does; false (and nothing written) when the sample's bracket missed.
    /// </summary>
    public static bool TrySelect(float* values, int length, long rank, ParallelOptions options, Span<int> equalPerChunk, out MagnitudeRank result)
    {
        result = default;
        if (length < MinimumLength) return false;
        int* bits = (int*)values;
        if (!TryBracket(bits, length, rank, out int low, out int high, out double share)) return false;

        int chunks = ChunkedParallel.ChunkCount(length);
        // Room for twice the share the sample saw in the bracket, plus slack for small chunks' fluctuations.
        int capacity = (int)Math.Min(ChunkedParallel.ChunkLength, 2 * share * ChunkedParallel.ChunkLength + 512);
        int[] band = ArrayPool<int>.Shared.Rent(chunks * capacity);
        long[] below = ArrayPool<long>.Shared.Rent(chunks);
        int[] inBand = ArrayPool<int>.Shared.Rent(chunks);
        try
        {
            int overflowed = 0;
            nint address = (nint)bits;
            ChunkedParallel.For(length, options, chunk =>
            {
                int* start = (int*)address + ChunkedParallel.ChunkStart(chunk);
                int size = ChunkedParallel.ChunkSize(chunk, length);
                fixed (int* destination = &band[chunk * capacity])
                {
                    int stored = Partition(start, size, low, high, destination, capacity, out long countBelow);
                    if (stored < 0) Volatile.Write(ref overflowed, 1);
                    below[chunk] = countBelow;
                    inBand[chunk] = Math.Max(stored, 0);
                }
            });
            if (overflowed != 0) return false;

            long countBelowBand = 0, bandCount = 0;
            for (int chunk = 0; chunk < chunks; chunk++)
            {
                countBelowBand += below[chunk];
                bandCount += inBand[chunk];
            }
            if (rank < countBelowBand || rank >= countBelowBand + bandCount) return false;

            if ((long)high - low < MaxCountedKeys)
            {
                // A narrow bracket (bf16-derived keys: few distinct values): count its keys per key and walk up.
                int[] counts = ArrayPool<int>.Shared.Rent(high - low + 1);
                try
                {
                    Array.Clear(counts, 0, high - low + 1);
                    for (int chunk = 0; chunk < chunks; chunk++)
                        foreach (int key in band.AsSpan(chunk * capacity, inBand[chunk]))
                            counts[key - low]++;
                    long cumulative = countBelowBand;
                    int offset = 0;
                    while (cumulative + counts[offset] <= rank) cumulative += counts[offset++];
                    result = new MagnitudeRank(low + offset, cumulative, counts[offset]);
                }
                finally
                {
                    ArrayPool<int>.Shared.Return(counts);
                }
                for (int chunk = 0; chunk < chunks; chunk++)
                {
                    int equal = 0;
                    foreach (int key in band.AsSpan(chunk * capacity, inBand[chunk]))
                        if (key == result.Key) equal++;
                    equalPerChunk[chunk] = equal;
                }
                return true;
            }

            // Gather the bracket's keys in chunk order and select among them.
            int[] gathered = ArrayPool<int>.Shared.Rent((int)bandCount);
            try
            {
                int at = 0;
                for (int chunk = 0; chunk < chunks; chunk++)
                {
                    band.AsSpan(chunk * capacity, inBand[chunk]).CopyTo(gathered.AsSpan(at));
                    at += inBand[chunk];
                }
                int[] unusedEqual = ArrayPool<int>.Shared.Rent(ChunkedParallel.ChunkCount(bandCount));
                MagnitudeRank inner;
                try
                {
                    fixed (int* keys = gathered)
                        inner = MagnitudeSelect.SelectByRadix((float*)keys, (int)bandCount, rank - countBelowBand, options, unusedEqual);
                }
                finally
                {
                    ArrayPool<int>.Shared.Return(unusedEqual);
                }

                // Every key equal to the answer lies inside the bracket: count them per original chunk.
                long countEqual = 0;
                for (int chunk = 0; chunk < chunks; chunk++)
                {
                    int equal = 0;
                    foreach (int key in band.AsSpan(chunk * capacity, inBand[chunk]))
                        if (key == inner.Key) equal++;
                    equalPerChunk[chunk] = equal;
                    countEqual += equal;
                }
                result = new MagnitudeRank(inner.Key, countBelowBand + inner.CountBelow, countEqual);
                return true;
            }
            finally
            {
                ArrayPool<int>.Shared.Return(gathered);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(band);
            ArrayPool<long>.Shared.Return(below);
            ArrayPool<int>.Shared.Return(inBand);
        }
    }

    /// <summary>Span form of <see cref="TrySelect(float*, int, long, ParallelOptions, Span{int}, out MagnitudeRank)"/>.</summary>
    public static bool TrySelect(ReadOnlySpan<float> values, long rank, ParallelOptions options, Span<int> equalPerChunk, out MagnitudeRank result)
    {
        fixed (float* data = values)
            return TrySelect(data, values.Length, rank, options, equalPerChunk, out result);
    }

    /// <summary>
    /// Keys [<paramref name="low"/>, <paramref name="high"/>] that hold the sought rank with high probability:
    /// the sample quantile ± 4 binomial standard deviations (plus a few positions, plus
    /// <paramref name="extraMargin"/> sample positions on each side).
    /// </summary>
    internal static bool TryBracket(int* bits, int length, long rank, out int low, out int high, out double share, int extraMargin = 0)
    {
        int[] sample = ArrayPool<int>.Shared.Rent(SampleSize);
        try
        {
            long step = length / SampleBlocks;
            for (int block = 0; block < SampleBlocks; block++)
            {
                int* from = bits + block * step + (step - SampleBlockLength) / 2;
                for (int i = 0; i < SampleBlockLength; i++)
                    sample[block * SampleBlockLength + i] = from[i] & MagnitudeSelect.KeyMask;
            }
            Array.Sort(sample, 0, SampleSize);
            double q = (double)rank / length;
            int position = (int)(q * SampleSize);
            int margin = (int)(4 * Math.Sqrt(SampleSize * q * (1 - q))) + 16 + extraMargin;
            low = position - margin <= 0 ? 0 : sample[position - margin];
            high = position + margin >= SampleSize - 1 ? int.MaxValue : sample[position + margin];
            int first = LowerBound(sample, low), end = LowerBound(sample, high == int.MaxValue ? int.MaxValue : high + 1);
            if (high == int.MaxValue) end = SampleSize;
            share = (double)(end - first) / SampleSize;
            return share <= 0.25; // heavy ties: most keys would land in the bracket, the radix select is better
        }
        finally
        {
            ArrayPool<int>.Shared.Return(sample);
        }
    }

    private static int LowerBound(int[] sorted, int value)
    {
        int lo = 0, hi = SampleSize;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (sorted[mid] < value) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    /// <summary>Span form of <see cref="Partition(int*, int, int, int, int*, int, out long)"/>: the capacity is the band's length.</summary>
    internal static int Partition(ReadOnlySpan<float> values, int low, int high, Span<int> band, out long countBelow)
    {
        fixed (float* data = values)
        fixed (int* destination = band)
            return Partition((int*)data, values.Length, low, high, destination, band.Length, out countBelow);
    }

    /// <summary>
    /// Counts keys below <paramref name="low"/> and copies keys in [low, high] to <paramref name="band"/> in index
    /// order; −1 when more than <paramref name="capacity"/> fall in the bracket.
    /// </summary>
    internal static int Partition(int* bits, int size, int low, int high, int* band, int capacity, out long countBelow)
    {
        int stored = 0, i = 0;
        long belowCount = 0;
        if (Avx512F.IsSupported)
        {
            // Branch-free: every vector's in-bracket keys are compressed to the front of a register (the register form:
            // the memory form of vpcompressd is microcoded on some cores) and stored whole; only `stored` advances, by
            // their count. Stops while 16 free slots are left, for the loops below to finish under the exact capacity check.
            Vector512<int> mask = Vector512.Create(MagnitudeSelect.KeyMask);
            Vector512<int> lowVector = Vector512.Create(low), highVector = Vector512.Create(high);
            Vector512<int> belowLanes = Vector512<int>.Zero;
            for (; i <= size - Vector512<int>.Count && stored <= capacity - Vector512<int>.Count; i += Vector512<int>.Count)
            {
                Vector512<int> key = Vector512.Load(bits + i) & mask;
                Vector512<int> isBelow = Vector512.LessThan(key, lowVector);
                belowLanes -= isBelow; // −1 per lane below
                Vector512<int> inBracket = Vector512.AndNot(Vector512.LessThanOrEqual(key, highVector), isBelow);
                Avx512F.Compress(Vector512<int>.Zero, inBracket, key).Store(band + stored);
                stored += BitOperations.PopCount(inBracket.ExtractMostSignificantBits());
            }
            belowCount += Vector512.Sum(belowLanes);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<int> mask = Vector256.Create(MagnitudeSelect.KeyMask);
            Vector256<int> lowVector = Vector256.Create(low), highVector = Vector256.Create(high);
            for (; i <= size - Vector256<int>.Count; i += Vector256<int>.Count)
            {
                Vector256<int> key = Vector256.Load(bits + i) & mask;
                Vector256<int> isBelow = Vector256.LessThan(key, lowVector);
                belowCount += BitOperations.PopCount(isBelow.ExtractMostSignificantBits());
                uint hits = (~isBelow & Vector256.LessThanOrEqual(key, highVector)).ExtractMostSignificantBits();
                if (hits == 0) continue;
                if (stored + BitOperations.PopCount(hits) > capacity) { countBelow = belowCount; return -1; }
                do
                {
                    band[stored++] = key.GetElement(BitOperations.TrailingZeroCount(hits));
                    hits &= hits - 1;
                } while (hits != 0);
            }
        }

        for (; i < size; i++)
        {
            int key = bits[i] & MagnitudeSelect.KeyMask;
            if (key < low) belowCount++;
            else if (key <= high)
            {
                if (stored == capacity) { countBelow = belowCount; return -1; }
                band[stored++] = key;
            }
        }
        countBelow = belowCount;
        return stored;
    }
}
