using System.Buffers;
using System.Numerics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Weld.Kernels.Cpu;

/// <summary>
/// Exact magnitude select in one streaming pass for large arrays: a sample brackets the sought rank, one
/// SIMD pass counts the keys below the bracket and gathers the few inside it, and a radix select on those alone
/// (<see cref="BracketSelect"/>) finds the key. A one-key bracket (bf16-derived task vectors: few distinct values,
/// heavy ties) gathers nothing: the pass only counts the keys below and at it.
/// </summary>
/// <remarks>
/// The radix select reads every key three times and scatters each into a histogram; here the bulk of the keys
/// is only compared against two bounds (no scatter), and only the ~2 % inside the bracket are touched again. The
/// answer is exact either way: the sample only picks the bracket, and when the sought rank falls outside it (an
/// unlucky or adversarial sample, or keys so tied that the bracket holds too many) <c>TrySelect</c>
/// returns false and the caller runs the full radix select. Sample positions depend only on the length, so the
/// path taken — and every result — is the same on any thread count. The sample is sorted by <see cref="KeyRadixSort"/>
/// (a comparison sort of it cost as much as the partition pass of a 4M-element tensor), which lets tensors from 1M
/// elements on (a 1B model's k/v projections) take this path: the radix select cost ~4 ns per element on heavily
/// tied keys, this one ~0.4.
/// </remarks>
internal static unsafe class SampledMagnitudeSelect
{
    /// <summary>Below this length the sample (32K keys) is too large a share of the data to pay.</summary>
    public const int MinimumLength = 1 << 20;

    private const int SampleBlocks = 1024;
    private const int SampleBlockLength = 32; // two cache lines per block: the sample costs ~1k memory fetches
    internal const int SampleSize = SampleBlocks * SampleBlockLength;

    /// <summary>
    /// Finds the key at ascending rank <paramref name="rank"/> and the per-chunk counts of keys equal to it, as
    /// <see cref="MagnitudeSelect.Select"/> does; false (and nothing written) when the sample's bracket missed.
    /// </summary>
    public static bool TrySelect(float* values, int length, long rank, ParallelOptions options, Span<int> equalPerChunk, out MagnitudeRank result)
    {
        result = default;
        if (length < MinimumLength) return false;
        int[] sample = SortedSample((int*)values, length);
        Bracket? bracket = null;
        try
        {
            if (!TryBracket(sample, length, rank, 0, out int low, out int high, out double share)) return false;
            bracket = new Bracket(low, high, share, ChunkedParallel.ChunkCount(length));
            if (!Gather((int*)values, length, options, bracket, null)) return false;
            return bracket.TrySelect(rank, equalPerChunk, out result);
        }
        finally
        {
            bracket?.Dispose();
            ArrayPool<int>.Shared.Return(sample);
        }
    }

    /// <summary>
    /// Both cuts of a magnitude band at once (ascending ranks <paramref name="lowerRank"/> and <paramref name="upperRank"/>):
    /// one sample, and one pass in which each chunk, while it is in cache, is partitioned for both brackets. False (and
    /// nothing written) when either bracket missed; the caller then selects each cut on its own.
    /// </summary>
    public static bool TrySelectPair(float* values, int length, long lowerRank, long upperRank, ParallelOptions options,
        Span<int> lowerEqualPerChunk, Span<int> upperEqualPerChunk, out MagnitudeRank lower, out MagnitudeRank upper)
    {
        lower = upper = default;
        if (length < MinimumLength) return false;
        int[] sample = SortedSample((int*)values, length);
        Bracket? first = null, second = null;
        try
        {
            if (!TryBracket(sample, length, lowerRank, 0, out int low, out int high, out double share)) return false;
            int chunks = ChunkedParallel.ChunkCount(length);
            first = new Bracket(low, high, share, chunks);
            if (!TryBracket(sample, length, upperRank, 0, out low, out high, out share)) return false;
            second = new Bracket(low, high, share, chunks);
            if (!Gather((int*)values, length, options, first, second)) return false;
            // Check both before writing either: a miss writes nothing.
            if (!first.Holds(lowerRank) || !second.Holds(upperRank)) return false;
            return first.TrySelect(lowerRank, lowerEqualPerChunk, out lower) && second.TrySelect(upperRank, upperEqualPerChunk, out upper);
        }
        finally
        {
            first?.Dispose();
            second?.Dispose();
            ArrayPool<int>.Shared.Return(sample);
        }
    }

    /// <summary>Span form of <see cref="TrySelectPair(float*, int, long, long, ParallelOptions, Span{int}, Span{int}, out MagnitudeRank, out MagnitudeRank)"/>.</summary>
    public static bool TrySelectPair(ReadOnlySpan<float> values, long lowerRank, long upperRank, ParallelOptions options,
        Span<int> lowerEqualPerChunk, Span<int> upperEqualPerChunk, out MagnitudeRank lower, out MagnitudeRank upper)
    {
        fixed (float* data = values)
            return TrySelectPair(data, values.Length, lowerRank, upperRank, options, lowerEqualPerChunk, upperEqualPerChunk, out lower, out upper);
    }

    /// <summary>Partitions every chunk for <paramref name="first"/> and then, while the chunk is in cache, for <paramref name="second"/>; false on an overflow.</summary>
    private static bool Gather(int* bits, int length, ParallelOptions options, Bracket first, Bracket? second)
    {
        int overflowed = 0;
        nint address = (nint)bits;
        ChunkedParallel.For(length, options, chunk =>
        {
            int* start = (int*)address + ChunkedParallel.ChunkStart(chunk);
            int size = ChunkedParallel.ChunkSize(chunk, length);
            if (!first.Partition(chunk, start, size) | (second is not null && !second.Partition(chunk, start, size)))
                Volatile.Write(ref overflowed, 1);
        });
        return overflowed == 0;
    }

    /// <summary>One bracket's gathered keys, chunk by chunk, and the counts of the keys below it (pooled arrays).</summary>
    private sealed class Bracket : IDisposable
    {
        private readonly int _low, _high, _capacity, _chunks;
        private readonly bool _oneKey;
        private readonly int[] _band;
        private readonly long[] _below;
        private readonly int[] _inBand;

        public Bracket(int low, int high, double share, int chunks)
        {
            _low = low;
            _high = high;
            _chunks = chunks;
            // Room for twice the share the sample saw in the bracket, plus slack for small chunks' fluctuations; none
            // when the bracket is one key (bf16-derived task vectors, heavy ties): counting its keys is all the select needs.
            _oneKey = low == high;
            _capacity = _oneKey ? 0 : (int)Math.Min(ChunkedParallel.ChunkLength, 2 * share * ChunkedParallel.ChunkLength + 512);
            _band = ArrayPool<int>.Shared.Rent(chunks * _capacity);
            _below = ArrayPool<long>.Shared.Rent(chunks);
            _inBand = ArrayPool<int>.Shared.Rent(chunks);
        }

        /// <summary>Counts the chunk's keys below the bracket and gathers those inside it; false when they overflow its room.</summary>
        public bool Partition(int chunk, int* start, int size)
        {
            if (_oneKey)
            {
                _below[chunk] = CountBelowAndEqual(start, size, _low, Vector512.IsHardwareAccelerated, out _inBand[chunk]);
                return true;
            }
            fixed (int* destination = &_band[chunk * _capacity])
            {
                int stored = SampledMagnitudeSelect.Partition(start, size, _low, _high, destination, _capacity, out long countBelow);
                _below[chunk] = countBelow;
                _inBand[chunk] = Math.Max(stored, 0);
                return stored >= 0;
            }
        }

        /// <summary>Whether the sought rank lies inside the bracket (after every chunk was partitioned).</summary>
        public bool Holds(long rank)
        {
            var (below, inside) = Totals();
            return rank >= below && rank < below + inside;
        }

        /// <summary>The select inside the bracket; false (nothing written) when the rank lies outside it.</summary>
        public bool TrySelect(long rank, Span<int> equalPerChunk, out MagnitudeRank result)
        {
            result = default;
            if (!Holds(rank)) return false;
            long below = Totals().Below;
            MagnitudeRank inner = BracketSelect.Select(_band, _capacity, _inBand, _chunks, _low, _high, rank - below, equalPerChunk);
            result = new MagnitudeRank(inner.Key, below + inner.CountBelow, inner.CountEqual);
            return true;
        }

        private (long Below, long Inside) Totals()
        {
            long below = 0, inside = 0;
            for (int chunk = 0; chunk < _chunks; chunk++)
            {
                below += _below[chunk];
                inside += _inBand[chunk];
            }
            return (below, inside);
        }

        public void Dispose()
        {
            ArrayPool<int>.Shared.Return(_band);
            ArrayPool<long>.Shared.Return(_below);
            ArrayPool<int>.Shared.Return(_inBand);
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
        int[] sample = SortedSample(bits, length);
        try
        {
            return TryBracket(sample, length, rank, extraMargin, out low, out high, out share);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(sample);
        }
    }

    /// <summary>The sample's keys in ascending order (a pooled array: <see cref="SampleSize"/> keys, return it to the pool).</summary>
    private static int[] SortedSample(int* bits, int length)
    {
        int[] sample = ArrayPool<int>.Shared.Rent(SampleSize);
        int[] scratch = ArrayPool<int>.Shared.Rent(SampleSize);
        try
        {
            long step = length / SampleBlocks;
            for (int block = 0; block < SampleBlocks; block++)
            {
                int* from = bits + block * step + (step - SampleBlockLength) / 2;
                for (int i = 0; i < SampleBlockLength; i++)
                    sample[block * SampleBlockLength + i] = from[i] & MagnitudeSelect.KeyMask;
            }
            KeyRadixSort.Sort(sample.AsSpan(0, SampleSize), scratch.AsSpan(0, SampleSize));
            return sample;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(scratch);
        }
    }

    /// <summary>The bracket of <paramref name="rank"/> (of <paramref name="length"/>) read off the sorted sample.</summary>
    private static bool TryBracket(int[] sample, int length, long rank, int extraMargin, out int low, out int high, out double share)
    {
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

    /// <summary>Span form of <see cref="CountBelowAndEqual(int*, int, int, bool, out int)"/>.</summary>
    internal static long CountBelowAndEqual(ReadOnlySpan<float> values, int key, bool wide, out int equal)
    {
        fixed (float* data = values)
            return CountBelowAndEqual((int*)data, values.Length, key, wide, out equal);
    }

    /// <summary>
    /// The partition of a one-key bracket: counts the keys below <paramref name="key"/> (returned) and equal to it
    /// (<paramref name="equal"/>), storing nothing. 512-bit lanes when <paramref name="wide"/>, then 256-bit, then
    /// scalars: exact integer counts whatever the split (tests call both widths).
    /// </summary>
    internal static long CountBelowAndEqual(int* bits, int size, int key, bool wide, out int equal)
    {
        int i = 0;
        long below = 0;
        int same = 0;
        if (wide)
        {
            Vector512<int> mask = Vector512.Create(MagnitudeSelect.KeyMask), wanted = Vector512.Create(key);
            Vector512<int> belowLanes = Vector512<int>.Zero, equalLanes = Vector512<int>.Zero;
            for (; i <= size - Vector512<int>.Count; i += Vector512<int>.Count)
            {
                Vector512<int> k = Vector512.Load(bits + i) & mask;
                belowLanes -= Vector512.LessThan(k, wanted); // −1 per lane below
                equalLanes -= Vector512.Equals(k, wanted);
            }
            below += Vector512.Sum(belowLanes);
            same += Vector512.Sum(equalLanes);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<int> mask = Vector256.Create(MagnitudeSelect.KeyMask), wanted = Vector256.Create(key);
            Vector256<int> belowLanes = Vector256<int>.Zero, equalLanes = Vector256<int>.Zero;
            for (; i <= size - Vector256<int>.Count; i += Vector256<int>.Count)
            {
                Vector256<int> k = Vector256.Load(bits + i) & mask;
                belowLanes -= Vector256.LessThan(k, wanted);
                equalLanes -= Vector256.Equals(k, wanted);
            }
            below += Vector256.Sum(belowLanes);
            same += Vector256.Sum(equalLanes);
        }
        for (; i < size; i++)
        {
            int k = bits[i] & MagnitudeSelect.KeyMask;
            below += k < key ? 1 : 0;
            same += k == key ? 1 : 0;
        }
        equal = same;
        return below;
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
