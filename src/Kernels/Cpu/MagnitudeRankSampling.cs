using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Weld.Kernels.Random;

namespace Weld.Kernels.Cpu;

/// <summary>One fiber of <see cref="IMergeKernels.SampleByMagnitudeRank"/>: the draws, then the ranks that decide.</summary>
/// <remarks>
/// Element r of a fiber of n is kept iff u_r &lt; p(s_r) = low + s_r / (n − 1) · 2 · ε, s_r its position in the stable
/// sort by magnitude key. p is monotone in s, so a draw below p(0) and p(n − 1) keeps the element whatever its rank and
/// a draw at or above both drops it: only the draws in between (a 2ε share) need s_r (<see cref="SampleByBuckets"/>).
/// For those, one counting pass over monotone buckets of the magnitude key gives s_r: a bucket that holds one key only
/// (each magnitude digit's own key has one; bf16 task vectors put nearly every element in such buckets) places its
/// members in position order, s_r = start(bucket) + their index in it; a mixed bucket's range of sorted positions
/// decides the draw unless p crosses it inside that range, and then s_r is counted exactly (the bucket's smaller keys
/// and its equal keys before r) or, when many are open, every element is placed. Contiguous fibers of spread keys (a
/// stride sample without a repeated key; AVX-512) skip the histogram: <see cref="PivotRankSampling"/> ranges from pivot
/// counts decide their open draws. When every element needs its p (the inverse-probability rescale) or the fiber is short, the whole fiber is
/// sorted (<see cref="SampleBySort"/>): an LSD radix sort on the 31 magnitude bits of (magnitude, position) pairs laid
/// out in position order, which is stable and so gives exactly the order of a comparison sort of the pairs.
/// </remarks>
internal static unsafe class MagnitudeRankSampling
{
    /// <summary>How the open draws get their ranks (for tests: each path on any data; the kernels choose per fiber).</summary>
    internal enum OpenDrawPath
    {
        /// <summary>Pivot counts for a contiguous fiber of up to <see cref="PivotRankSampling.LongestFiber"/> whose pivot sample has no repeated key, else buckets.</summary>
        Chosen,
        /// <summary>Always the buckets.</summary>
        Buckets,
        /// <summary>Pivot counts for every contiguous fiber of at least <see cref="PivotRankSampling.ShortestFiber"/> on AVX-512, whatever its keys.</summary>
        Pivots,
    }

    /// <summary>The keep probabilities of one call (they do not depend on the fiber).</summary>
    public readonly record struct Probabilities(float Low, float Epsilon, float Single, bool Divide);

    /// <summary>Per-thread working memory of <see cref="SampleFiber(float*, long, int, int, in Probabilities, PhiloxKey, long, Scratch)"/> for fibers of up to <c>length</c> elements.</summary>
    internal sealed class Scratch(int length)
    {
        /// <summary>The fiber length this scratch serves.</summary>
        public int Length { get; } = length;

        /// <summary>(key, position) pairs: the sorted half and the radix sort's scratch half.</summary>
        public readonly ulong[] Order = new ulong[2 * length];
        public readonly uint[] Keys = new uint[length + 16]; // 16 spare: whole-vector loads of the last keys
        public readonly uint[] Words = new uint[length];
        /// <summary>Positions whose draw needs the rank (16 spare entries: the compress stores whole vectors).</summary>
        public readonly int[] Open = new int[length + 16];
        /// <summary>The keys of the open draws, beside <see cref="Open"/> (<see cref="PivotRankSampling"/>).</summary>
        public readonly uint[] OpenKeys = new uint[length + 16];
        /// <summary>The uniforms of the open draws, beside <see cref="Open"/> (<see cref="PivotRankSampling"/>).</summary>
        public readonly float[] OpenUniforms = new float[length + 16];
        /// <summary>Open draws that their range of positions drops (<see cref="PivotRankSampling"/>).</summary>
        public readonly int[] Drops = new int[length + 16];
        /// <summary>Each element's bucket.</summary>
        public readonly int[] Digits = new int[length];
        /// <summary>Each element's index among its bucket's members, then (when every element is placed) its sorted position.</summary>
        public readonly int[] Ranks = new int[length];
        /// <summary>p(s) of every sorted position s, for <see cref="_probabilitiesOf"/> (one call's probabilities).</summary>
        private readonly float[] _probabilities = GC.AllocateArray<float>(length, pinned: true); // handed out as a pointer
        private Probabilities? _probabilitiesOf;

        /// <summary>The keep probability of each sorted position of a fiber of <paramref name="fiberLength"/> (this scratch's length); pinned.</summary>
        public float* PositionProbabilities(int fiberLength, in Probabilities probabilities)
        {
            if (_probabilitiesOf is not { } built || !SameBits(built, probabilities))
            {
                float span = fiberLength - 1;
                for (int s = 0; s < fiberLength; s++)
                    _probabilities[s] = Probability(s, span, probabilities);
                _probabilitiesOf = probabilities;
            }
            return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_probabilities));
        }

        private static bool SameBits(in Probabilities a, in Probabilities b) =>
            BitConverter.SingleToUInt32Bits(a.Low) == BitConverter.SingleToUInt32Bits(b.Low)
            && BitConverter.SingleToUInt32Bits(a.Epsilon) == BitConverter.SingleToUInt32Bits(b.Epsilon);

        /// <summary>Per bucket: its size in the later half of the fiber, then its first sorted position (one more entry: the end of the last).</summary>
        public readonly int[] Starts = new int[BucketCapacity(length) + 1];
        /// <summary>Per bucket: its size in the first half of the fiber.</summary>
        public readonly int[] FirstHalfCounts = new int[BucketCapacity(length)];
    }

    /// <summary>
    /// Samples the fiber that starts at flat index <paramref name="first"/>; <paramref name="firstIndex"/> is the tensor
    /// index of <c>values[0]</c> (for the draws).
    /// </summary>
    public static void SampleFiber(float* values, long first, int length, int stride, in Probabilities probabilities,
        PhiloxKey key, long firstIndex, Scratch scratch) =>
        SampleFiber(values, first, length, stride, probabilities, key, firstIndex, scratch, PhiloxVectorBlocks.Widest, OpenDrawPath.Chosen);

    /// <summary>
    /// <see cref="SampleFiber(float*, long, int, int, in Probabilities, PhiloxKey, long, Scratch)"/> on the vector
    /// instructions of <paramref name="width"/> (the Philox words, the sure-draw decision and the bucket starts; for tests: every width the CPU
    /// runs gives the same bits) and with the open draws ranked by <paramref name="path"/>.
    /// </summary>
    internal static void SampleFiber(float* values, long first, int length, int stride, in Probabilities probabilities,
        PhiloxKey key, long firstIndex, Scratch scratch, PhiloxWidth width, OpenDrawPath path)
    {
        if (length >= BucketMinimum && !probabilities.Divide && float.IsFinite(probabilities.Low) && float.IsFinite(probabilities.Epsilon))
            SampleByBuckets(values, first, length, stride, probabilities, key, firstIndex, scratch, width, path);
        else
            SampleBySort(values, first, length, stride, probabilities, key, firstIndex, scratch.Order);
    }

    /// <summary>
    /// Every fiber of <paramref name="values"/> (as <see cref="IMergeKernels.SampleByMagnitudeRank"/> lays them out) on
    /// one thread with the instructions of <paramref name="width"/> and the open draws ranked by <paramref name="path"/>
    /// (for tests: each width and path against the reference).
    /// </summary>
    internal static void SampleFibers(Span<float> values, int length, int stride, in Probabilities probabilities, PhiloxKey key,
        long firstIndex, PhiloxWidth width, OpenDrawPath path = OpenDrawPath.Chosen)
    {
        if (!PhiloxVectorBlocks.IsSupported(width))
            throw new PlatformNotSupportedException($"this CPU lacks the {width} instructions");
        long fibers = CpuKernels.RankSamplingFibers(values.Length, length, stride);
        var scratch = new Scratch(length);
        fixed (float* data = values)
            for (long fiber = 0; fiber < fibers; fiber++)
            {
                long first = fiber / stride * length * stride + fiber % stride;
                SampleFiber(data, first, length, stride, probabilities, key, firstIndex, scratch, width, path);
            }
    }

    /// <summary>The keep probability of sorted position <paramref name="position"/> (mergekit's float32 operation order).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Probability(int position, float span, in Probabilities probabilities) =>
        probabilities.Low + position / span * 2f * probabilities.Epsilon;

    /// <summary>Below this length the bucket counts cost more than they save: the whole fiber is sorted.</summary>
    internal const int BucketMinimum = 512;

    /// <summary>Rank only where the draw needs it (no inverse-probability rescale, finite probabilities).</summary>
    private static void SampleByBuckets(float* values, long first, int length, int stride, in Probabilities probabilities,
        PhiloxKey key, long firstIndex, Scratch scratch, PhiloxWidth width, OpenDrawPath path)
    {
        float span = length - 1;
        float p0 = Probability(0, span, probabilities), pLast = Probability(length - 1, span, probabilities);
        float keepBelow = MathF.Min(p0, pLast), dropFrom = MathF.Max(p0, pLast);
        fixed (uint* keys = scratch.Keys, words = scratch.Words)
        fixed (int* open = scratch.Open)
        {
            float* fiber = values + first;
            uint maxKey = ReadKeys(fiber, length, stride, keys, width);
            long tensorFirst = firstIndex + first;
            if (stride == 1)
                PhiloxStreamWords.Fill(key, tensorFirst, words, length, width);
            else
                StridedWords(key, tensorFirst, length, stride, words);
            // Spread keys (a pivot sample without a repeated key): the open draws by pivot counts, no histogram. Crowded
            // keys (bf16 task vectors: a few keys hold most elements) leave too many draws open there; they take the
            // one-key buckets below. The choice is speed only: both give the same bits.
            if (stride == 1 && width == PhiloxWidth.Avx512 && path != OpenDrawPath.Buckets && PivotRankSampling.IsSupported
                && length >= PivotRankSampling.ShortestFiber && (path == OpenDrawPath.Pivots || length <= PivotRankSampling.LongestFiber))
            {
                uint* pivots = stackalloc uint[PivotRankSampling.Pivots + 1];
                if (PivotRankSampling.SamplePivots(keys, length, pivots, stopAtRepeat: path == OpenDrawPath.Chosen) || path == OpenDrawPath.Pivots)
                {
                    PivotRankSampling.Sample(fiber, length, keys, words, keepBelow, dropFrom,
                        scratch.PositionProbabilities(length, probabilities), pivots, scratch);
                    return;
                }
            }
            int opened = Decide(fiber, length, stride, words, keepBelow, dropFrom, open, width);
            if (opened == 0)
                return;

            // Buckets: the magnitude digit (key >> shift), split in two — the digit's own key (low bits zero) first,
            // then the rest of its keys — so a bucket of even index holds one key only. bf16 task vectors have few
            // significant bits, so nearly all their elements land in such one-key buckets (however crowded), where an
            // element's sorted position is its bucket's start plus its index among the bucket's members, which the
            // counting pass hands out in position order. Digits more than DigitBinades binades below the largest key
            // go to bucket 1 (bucket 0: the key 0); finer digits for longer fibers so that the buckets stay small.
            int bits = MantissaBits(length);
            int shift = 23 - bits;
            int top = (int)(maxKey >> shift);
            int floor = Math.Max(top - ((DigitBinades << bits) - 1), 0);
            int bucketsUsed = 2 + 2 * (top - floor + 1);
            fixed (int* starts = scratch.Starts, firstHalf = scratch.FirstHalfCounts, digits = scratch.Digits, within = scratch.Ranks)
            {
                Digits(keys, length, shift, floor, digits, width);
                int half = CountHalves(digits, length, bucketsUsed, firstHalf, starts, within);
                ExclusivePrefix(firstHalf, starts, bucketsUsed, width);
                // An open draw in a one-key bucket has its position; those in mixed buckets are listed at the front of
                // open, and the bucket's range of positions decides each unless p crosses the draw inside that range.
                // The open positions are in position order: first those of the first half, then the later half's,
                // whose members of a bucket follow the first half's (firstHalf now holds where they begin).
                float* p = scratch.PositionProbabilities(length, probabilities);
                int split = FirstAtOrAbove(open, opened, half);
                int mixed = DrawByPosition(fiber, stride, words, digits, within, starts, p, open, 0, split, 0);
                mixed = DrawByPosition(fiber, stride, words, digits, within, firstHalf, p, open, split, opened, mixed);
                int undecided = DrawByRange(fiber, stride, words, digits, starts, p, open, mixed);
                if (undecided == 0)
                    return;
                if ((long)undecided * length <= CountedBudget)
                {
                    // A few: count each one's place in its bucket (two vector scans of the keys each).
                    for (int i = 0; i < undecided; i++)
                    {
                        int r = open[i];
                        int b = digits[r];
                        int position = starts[b] + RankInBucket(keys, length, r, MixedBucketLow(b, shift, floor));
                        if (!(Philox4x32.ToUniform(words[r]) < p[position]))
                            fiber[(long)r * stride] = 0f;
                    }
                    return;
                }
                // Many (crowded mixed buckets): place every element once instead.
                PlaceAll(keys, length, digits, starts, firstHalf, half, shift, floor, scratch);
                int[] rank = scratch.Ranks;
                for (int i = 0; i < undecided; i++)
                {
                    int r = open[i];
                    if (!(Philox4x32.ToUniform(words[r]) < p[rank[r]]))
                        fiber[(long)r * stride] = 0f;
                }
            }
        }
    }

    /// <summary>
    /// Decides the open draws open[from..to) in one-key (even) buckets: a member of bucket b at position r has sorted
    /// position bases[b] + within[r]. A member of a mixed (odd) bucket is left as it is and listed at open[mixed++]
    /// (which never passes the draws read so far) for <see cref="DrawByRange"/>. Keep or drop is a coin flip, and so
    /// is the bucket's kind in spread data, so the element is rewritten through a mask (all ones for a mixed bucket's
    /// member) and listed by a store that only the count makes real, rather than by branches. Returns the new count of
    /// listed draws. A method of its own (never inlined: inside <see cref="SampleByBuckets"/> its pointers are spilled
    /// to the stack), with no more pointers than it needs, so that they stay in registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int DrawByPosition(float* fiber, int stride, uint* words, int* digits, int* within, int* bases,
        float* p, int* open, int from, int to, int mixed)
    {
        for (int i = from; i < to; i++)
        {
            int r = open[i];
            int b = digits[r];
            uint odd = (uint)b & 1;
            // For a mixed bucket bases[b] + within[r] is the element's slot in a counting sort: a valid index of p.
            bool keep = Philox4x32.ToUniform(words[r]) < p[bases[b] + within[r]];
            *(uint*)(fiber + (long)r * stride) &= KeepMask(keep) | (0u - odd);
            open[mixed] = r;
            mixed += (int)odd;
        }
        return mixed;
    }

    /// <summary>
    /// Decides the draws open[0..count) in mixed buckets by their bucket's range of positions [starts[b],
    /// starts[b + 1]) when p is on one side of the draw over the whole range; the rest stay listed at
    /// open[undecided++] (in order). Returns how many stay.
    /// </summary>
    private static int DrawByRange(float* fiber, int stride, uint* words, int* digits, int* starts, float* p, int* open, int count)
    {
        int undecided = 0;
        for (int i = 0; i < count; i++)
        {
            int r = open[i];
            int b = digits[r];
            float uniform = Philox4x32.ToUniform(words[r]);
            float pLowest = p[starts[b]], pHighest = p[starts[b + 1] - 1];
            bool keepSure = uniform < pLowest && uniform < pHighest, dropSure = !(uniform < pLowest) && !(uniform < pHighest);
            *(uint*)(fiber + (long)r * stride) &= KeepMask(!dropSure);
            if (!keepSure && !dropSure)
                open[undecided++] = r;
        }
        return undecided;
    }

    /// <summary>The first index i &lt; <paramref name="count"/> with sorted[i] ≥ <paramref name="value"/>, or count.</summary>
    private static int FirstAtOrAbove(int* sorted, int count, int value)
    {
        int low = 0, high = count;
        while (low < high)
        {
            int middle = (int)((uint)(low + high) >> 1);
            if (sorted[middle] < value)
                low = middle + 1;
            else
                high = middle;
        }
        return low;
    }

    /// <summary>All ones when <paramref name="keep"/>, else zero: ANDed into an element's bits it keeps it or makes it +0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint KeepMask(bool keep) => 0u - Unsafe.BitCast<bool, byte>(keep);

    /// <summary>
    /// Draws left open by their buckets × fiber length above which one placement pass ranks them for less than counting
    /// each (a count scans the fiber; measured on bf16 task vectors: 32 draws for fibers of 2,048, fewer for longer ones).
    /// </summary>
    internal const long CountedBudget = 32 * 2048;

    /// <summary>The most buckets a fiber of <paramref name="length"/> uses.</summary>
    private static int BucketCapacity(int length) => 2 + 2 * (DigitBinades << MantissaBits(Math.Max(length, 2)));

    /// <summary>Binades of digits below the fiber's largest key that get buckets of their own.</summary>
    private const int DigitBinades = 8;

    /// <summary>Mantissa bits of a digit: 5 for fibers up to 512, one more per doubling, 8 from 4,096.</summary>
    private static int MantissaBits(int length) => Math.Clamp(BitOperations.Log2((uint)length - 1) + 1 - 4, 5, 8);

    /// <summary>The smallest key a mixed (odd) bucket can hold: one above its digit's own key, or 1 for bucket 1.</summary>
    private static uint MixedBucketLow(int bucket, int shift, int floor) =>
        bucket == 1 ? 1u : ((uint)((bucket - 3) / 2 + floor) << shift) + 1;

    /// <summary>
    /// Bucket counts of the fiber's two halves, [0, half) into <paramref name="firstHalf"/> and the rest into
    /// <paramref name="laterHalf"/>, and each element's index among the members of its bucket in its half (position
    /// order) into <paramref name="within"/>; returns half. Both halves in one loop: two independent chains of
    /// load-increment-store, where one chain stalls on its own store whenever a crowded bucket comes round again.
    /// </summary>
    private static int CountHalves(int* digits, int length, int buckets, int* firstHalf, int* laterHalf, int* within)
    {
        new Span<int>(firstHalf, buckets).Clear();
        new Span<int>(laterHalf, buckets).Clear();
        int half = length / 2;
        for (int r = 0; r < half; r++)
        {
            within[r] = firstHalf[digits[r]]++;
            within[r + half] = laterHalf[digits[r + half]]++;
        }
        if ((length & 1) != 0)
            within[length - 1] = laterHalf[digits[length - 1]]++;
        return half;
    }

    /// <summary>
    /// starts[b] = Σ_{c &lt; b} (firstHalf[c] + starts[c]) for b ≤ <paramref name="buckets"/>: on entry
    /// <paramref name="starts"/> holds the later half's counts, on return each bucket's first sorted position (and
    /// the fiber length after the last); <paramref name="firstHalf"/>[b] becomes starts[b] + firstHalf[b], the sorted
    /// position of the bucket's first member in the later half. Sixteen (AVX-512) or eight buckets at a time in vector
    /// lanes (integer sums: the same result on every <paramref name="width"/>).
    /// </summary>
    internal static void ExclusivePrefix(Span<int> firstHalf, Span<int> starts, int buckets, PhiloxWidth width)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(firstHalf.Length, buckets);
        ArgumentOutOfRangeException.ThrowIfLessThan(starts.Length, buckets + 1);
        if (!PhiloxVectorBlocks.IsSupported(width))
            throw new PlatformNotSupportedException($"this CPU lacks the {width} instructions");
        fixed (int* f = firstHalf)
        fixed (int* s = starts)
            ExclusivePrefix(f, s, buckets, width);
    }

    private static void ExclusivePrefix(int* firstHalf, int* starts, int buckets, PhiloxWidth width)
    {
        int b = 0, sum = 0;
        // Most groups of buckets are empty (a bf16 fiber of 2,048 fills ≈ 200 of its 2,050 buckets): such a group's
        // starts are the carry, without the scan.
        if (width == PhiloxWidth.Avx512 && Avx512F.IsSupported)
        {
            Vector512<int> carry = Vector512<int>.Zero;
            for (; b + 16 <= buckets; b += 16)
            {
                Vector512<int> firstCounts = Vector512.Load(firstHalf + b);
                Vector512<int> counts = firstCounts + Vector512.Load(starts + b);
                if (counts == Vector512<int>.Zero)
                {
                    carry.Store(starts + b);
                    carry.Store(firstHalf + b);
                    continue;
                }
                // Inclusive scan in four shifted adds: AlignRight32(x, 0, 16 − k) moves lane i − k to lane i (zeros below).
                Vector512<int> scan = counts + Avx512F.AlignRight32(counts, Vector512<int>.Zero, 15);
                scan += Avx512F.AlignRight32(scan, Vector512<int>.Zero, 14);
                scan += Avx512F.AlignRight32(scan, Vector512<int>.Zero, 12);
                scan += Avx512F.AlignRight32(scan, Vector512<int>.Zero, 8);
                Vector512<int> start = carry + scan - counts;
                start.Store(starts + b);
                (start + firstCounts).Store(firstHalf + b);
                carry += Avx512F.PermuteVar16x32(scan, Vector512.Create(15));
            }
            sum = carry.ToScalar();
        }
        else if (width != PhiloxWidth.Scalar && Vector256.IsHardwareAccelerated)
        {
            Vector256<int> carry = Vector256<int>.Zero;
            for (; b + 8 <= buckets; b += 8)
            {
                Vector256<int> firstCounts = Vector256.Load(firstHalf + b);
                Vector256<int> counts = firstCounts + Vector256.Load(starts + b);
                if (counts == Vector256<int>.Zero)
                {
                    carry.Store(starts + b);
                    carry.Store(firstHalf + b);
                    continue;
                }
                // Inclusive scan in three shifted adds (an index of 8 shifts in a zero).
                Vector256<int> scan = counts + Vector256.Shuffle(counts, Vector256.Create(8, 0, 1, 2, 3, 4, 5, 6));
                scan += Vector256.Shuffle(scan, Vector256.Create(8, 8, 0, 1, 2, 3, 4, 5));
                scan += Vector256.Shuffle(scan, Vector256.Create(8, 8, 8, 8, 0, 1, 2, 3));
                Vector256<int> start = carry + scan - counts;
                start.Store(starts + b);
                (start + firstCounts).Store(firstHalf + b);
                carry += Vector256.Shuffle(scan, Vector256.Create(7));
            }
            sum = carry.ToScalar();
        }
        for (; b < buckets; b++)
        {
            int first = firstHalf[b], count = first + starts[b];
            starts[b] = sum;
            firstHalf[b] = sum + first;
            sum += count;
        }
        starts[buckets] = sum;
    }

    /// <summary>
    /// Every element's sorted position into <c>scratch.Ranks</c> by one counting-sort placement; on entry
    /// <c>scratch.Ranks</c> holds each element's index among its bucket's members in its half of the fiber
    /// (<see cref="CountHalves"/>), <paramref name="starts"/> each bucket's first position and
    /// <paramref name="laterHalf"/> the first position of its members in the later half (<c>ExclusivePrefix</c>).
    /// </summary>
    private static void PlaceAll(uint* keys, int length, int* digits, int* starts, int* laterHalf, int half, int shift, int floor,
        Scratch scratch)
    {
        ulong[] order = scratch.Order;
        int[] rank = scratch.Ranks;
        fixed (int* ranks = rank)
        fixed (ulong* pairs = order)
        {
            // In position order each element's counting-sort slot is its sorted position as long as the keys of
            // its bucket do not fall along the positions (always so in a one-key bucket).
            for (int r = 0; r < length; r++)
            {
                int slot = (r >= half ? laterHalf : starts)[digits[r]] + ranks[r];
                ranks[r] = slot;
                pairs[slot] = ((ulong)keys[r] << 32) | (uint)r;
            }
        }
        // A descent in the scattered pairs lies inside one (mixed) bucket (the bucket grows with the key): sort that
        // bucket and take its members' positions from the sorted pairs.
        for (int at = FirstDescent(order, 0, length); at < length; at = FirstDescent(order, at, length))
        {
            int b = Bucket((uint)(order[at] >> 32), shift, floor);
            int begin = starts[b], end = starts[b + 1];
            SortByKey(order.AsSpan(begin, end - begin), order.AsSpan(length + begin, end - begin));
            for (int slot = begin; slot < end; slot++)
                rank[(int)(uint)order[slot]] = slot;
            at = end;
        }
    }

    /// <summary>The first index i ≥ <paramref name="from"/> with order[i] &gt; order[i + 1], or <paramref name="length"/>.</summary>
    private static int FirstDescent(ulong[] order, int from, int length)
    {
        int i = from;
        if (Vector256.IsHardwareAccelerated)
            fixed (ulong* pairs = order)
                for (; i + 5 <= length; i += 4)
                    if (Vector256.GreaterThanAny(Vector256.Load(pairs + i), Vector256.Load(pairs + i + 1)))
                        break;
        for (; i + 1 < length; i++)
            if (order[i] > order[i + 1])
                return i;
        return length;
    }

    /// <summary>
    /// The place of element <paramref name="r"/> among the members of its bucket (keys from <paramref name="bucketLow"/>
    /// up) in (key, position) order: the members with a smaller key, and those with its key before it.
    /// </summary>
    private static int RankInBucket(uint* keys, int length, int r, uint bucketLow)
    {
        uint key = keys[r];
        return CountInRange(keys, 0, r, bucketLow, key - bucketLow + 1) + CountInRange(keys, r, length, bucketLow, key - bucketLow);
    }

    /// <summary>How many of keys[from..to) lie in [low, low + width) (one unsigned compare each).</summary>
    private static int CountInRange(uint* keys, int from, int to, uint low, uint width)
    {
        int count = 0, j = from;
        if (Vector256.IsHardwareAccelerated && to - from >= 8)
        {
            Vector256<uint> lows = Vector256.Create(low), widths = Vector256.Create(width);
            Vector256<int> counts = Vector256<int>.Zero;
            for (; j + 8 <= to; j += 8)
                counts -= Vector256.LessThan(Vector256.Load(keys + j) - lows, widths).AsInt32(); // a hit is −1
            count = Vector256.Sum(counts);
        }
        for (; j < to; j++)
            if (keys[j] - low < width)
                count++;
        return count;
    }

    /// <summary>Every key's bucket, <see cref="Bucket"/> (for tests: the vector lanes against the scalar function).</summary>
    internal static void Digits(ReadOnlySpan<uint> keys, int shift, int floor, Span<int> to, PhiloxWidth width)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(to.Length, keys.Length);
        if (!PhiloxVectorBlocks.IsSupported(width))
            throw new PlatformNotSupportedException($"this CPU lacks the {width} instructions");
        fixed (uint* k = keys)
        fixed (int* t = to)
            Digits(k, keys.Length, shift, floor, t, width);
    }

    /// <summary>Every element's bucket, <see cref="Bucket"/>.</summary>
    private static void Digits(uint* keys, int length, int shift, int floor, int* to, PhiloxWidth width)
    {
        int r = 0;
        if (width == PhiloxWidth.Avx512 && Vector512.IsHardwareAccelerated)
        {
            Vector512<int> floors = Vector512.Create(floor), twos = Vector512.Create(2), ones = Vector512.Create(1);
            Vector512<uint> lowBits = Vector512.Create((1u << shift) - 1);
            for (; r + 16 <= length; r += 16)
            {
                Vector512<uint> key = Vector512.Load(keys + r);
                Vector512<int> digit = Vector512.ShiftRightLogical(key, shift).AsInt32() - floors;
                Vector512<int> mixed = ~Vector512.Equals(key & lowBits, Vector512<uint>.Zero).AsInt32() & ones;
                Vector512<int> below = ~Vector512.Equals(key, Vector512<uint>.Zero).AsInt32() & ones;
                Vector512.ConditionalSelect(Vector512.LessThan(digit, Vector512<int>.Zero), below, twos + digit + digit + mixed)
                    .Store(to + r);
            }
        }
        if (width != PhiloxWidth.Scalar && Vector256.IsHardwareAccelerated)
        {
            Vector256<int> floors = Vector256.Create(floor), twos = Vector256.Create(2), ones = Vector256.Create(1);
            Vector256<uint> lowBits = Vector256.Create((1u << shift) - 1);
            for (; r + 8 <= length; r += 8)
            {
                Vector256<uint> key = Vector256.Load(keys + r);
                Vector256<int> digit = Vector256.ShiftRightLogical(key, shift).AsInt32() - floors;
                Vector256<int> mixed = ~Vector256.Equals(key & lowBits, Vector256<uint>.Zero).AsInt32() & ones;
                Vector256<int> below = ~Vector256.Equals(key, Vector256<uint>.Zero).AsInt32() & ones;
                Vector256.ConditionalSelect(Vector256.LessThan(digit, Vector256<int>.Zero), below, twos + digit + digit + mixed)
                    .Store(to + r);
            }
        }
        for (; r < length; r++)
            to[r] = Bucket(keys[r], shift, floor);
    }

    /// <summary>
    /// The bucket of a key: 0 for the key 0 and 1 for other keys below the digit <paramref name="floor"/>; from there two
    /// per digit d = key &gt;&gt; shift, 2 + 2(d − floor) for the digit's own key and one more for its larger keys.
    /// Monotone in the key.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Bucket(uint key, int shift, int floor)
    {
        int digit = (int)(key >> shift) - floor;
        return digit < 0 ? (key != 0 ? 1 : 0) : 2 + 2 * digit + ((key & ((1u << shift) - 1)) != 0 ? 1 : 0);
    }

    /// <summary>The magnitude keys <c>bits(x) &amp; 0x7FFFFFFF</c> (NaN above +∞) of one fiber; returns the largest.</summary>
    private static uint ReadKeys(float* fiber, int length, int stride, uint* keys, PhiloxWidth width)
    {
        uint max = 0;
        int r = 0;
        if (stride == 1 && width == PhiloxWidth.Avx512 && Vector512.IsHardwareAccelerated)
        {
            Vector512<uint> magnitude = Vector512.Create(0x7FFFFFFFu), maxes = Vector512<uint>.Zero;
            for (; r + 16 <= length; r += 16)
            {
                Vector512<uint> k = Vector512.Load((uint*)fiber + r) & magnitude;
                k.Store(keys + r);
                maxes = Vector512.Max(maxes, k);
            }
            Vector256<uint> halves = Vector256.Max(maxes.GetLower(), maxes.GetUpper());
            for (int lane = 0; lane < 8; lane++)
                max = Math.Max(max, halves.GetElement(lane));
        }
        if (stride == 1 && width != PhiloxWidth.Scalar && Vector256.IsHardwareAccelerated)
        {
            Vector256<uint> magnitude = Vector256.Create(0x7FFFFFFFu), maxes = Vector256<uint>.Zero;
            for (; r + 8 <= length; r += 8)
            {
                Vector256<uint> k = Vector256.Load((uint*)fiber + r) & magnitude;
                k.Store(keys + r);
                maxes = Vector256.Max(maxes, k);
            }
            for (int lane = 0; lane < 8; lane++)
                max = Math.Max(max, maxes.GetElement(lane));
        }
        for (; r < length; r++)
        {
            uint k = BitConverter.SingleToUInt32Bits(fiber[(long)r * stride]) & 0x7FFFFFFFu;
            keys[r] = k;
            max = Math.Max(max, k);
        }
        return max;
    }

    /// <summary>The stream words of tensor indices first, first + stride, …: one Philox block per four consecutive indices.</summary>
    private static void StridedWords(PhiloxKey key, long first, int length, int stride, uint* words)
    {
        long blockOf = -1;
        Philox4x32Block block = default;
        for (int r = 0; r < length; r++)
        {
            long tensorIndex = first + (long)r * stride;
            if (tensorIndex >> 2 != blockOf)
            {
                blockOf = tensorIndex >> 2;
                block = Philox4x32.StreamBlock(key, (ulong)blockOf);
            }
            words[r] = block[(int)(tensorIndex & 3)];
        }
    }

    /// <summary>
    /// Keeps the elements whose draw is below <paramref name="keepBelow"/>, zeroes those at or above
    /// <paramref name="dropFrom"/>, and lists the rest in <paramref name="open"/> (position order); returns how many.
    /// </summary>
    private static int Decide(float* fiber, int length, int stride, uint* words, float keepBelow, float dropFrom, int* open,
        PhiloxWidth width)
    {
        int opened = 0, r = 0;
        if (stride == 1 && width == PhiloxWidth.Avx512 && Avx512F.IsSupported)
        {
            // Branch-free listing: the open positions of 16 lanes compressed to the front of a register, stored whole.
            Vector512<float> scale = Vector512.Create(Philox4x32.UniformScale);
            Vector512<float> low = Vector512.Create(keepBelow), high = Vector512.Create(dropFrom);
            for (; r + 16 <= length; r += 16)
            {
                Vector512<float> uniform = Vector512.ConvertToSingle((Vector512.Load(words + r) >>> 8).AsInt32()) * scale;
                Vector512<float> drop = Vector512.GreaterThanOrEqual(uniform, high);
                Vector512<float> keep = Vector512.LessThan(uniform, low);
                Vector512<float> x = Vector512.Load(fiber + r);
                Vector512.ConditionalSelect(drop, Vector512<float>.Zero, x).Store(fiber + r);
                Vector512<int> undecided = ~(drop | keep).AsInt32();
                Avx512F.Compress(Vector512<int>.Zero, undecided, Vector512.Create(r) + Vector512<int>.Indices).Store(open + opened);
                opened += BitOperations.PopCount(undecided.ExtractMostSignificantBits());
            }
        }
        if (stride == 1 && width != PhiloxWidth.Scalar && Vector256.IsHardwareAccelerated)
        {
            Vector256<float> scale = Vector256.Create(Philox4x32.UniformScale);
            Vector256<float> low = Vector256.Create(keepBelow), high = Vector256.Create(dropFrom);
            for (; r + 8 <= length; r += 8)
            {
                // (word >> 8) has 24 bits: the int -> float conversion and the scaling are exact, as in ToUniform.
                Vector256<float> uniform = Vector256.ConvertToSingle((Vector256.Load(words + r) >>> 8).AsInt32()) * scale;
                Vector256<float> drop = Vector256.GreaterThanOrEqual(uniform, high);
                Vector256<float> keep = Vector256.LessThan(uniform, low);
                Vector256<float> x = Vector256.Load(fiber + r);
                Vector256.ConditionalSelect(drop, Vector256<float>.Zero, x).Store(fiber + r);
                uint undecided = ~(drop | keep).ExtractMostSignificantBits() & 0xFFu;
                while (undecided != 0)
                {
                    open[opened++] = r + BitOperations.TrailingZeroCount(undecided);
                    undecided &= undecided - 1;
                }
            }
        }
        for (; r < length; r++)
        {
            float uniform = Philox4x32.ToUniform(words[r]);
            if (uniform >= dropFrom)
                fiber[(long)r * stride] = 0f;
            else if (!(uniform < keepBelow))
                open[opened++] = r;
        }
        return opened;
    }

    /// <summary>
    /// Sorts the whole fiber and decides every element in sorted order; <paramref name="order"/> is scratch of at least
    /// 2 × <paramref name="length"/> entries.
    /// </summary>
    private static void SampleBySort(float* values, long first, int length, int stride, in Probabilities probabilities,
        PhiloxKey key, long firstIndex, ulong[] order)
    {
        // (magnitude key, position) pairs sort like a stable sort by magnitude: the sorted position is the rank − 1.
        for (int r = 0; r < length; r++)
        {
            uint magnitude = BitConverter.SingleToUInt32Bits(values[first + (long)r * stride]) & 0x7FFFFFFFu;
            order[r] = ((ulong)magnitude << 32) | (uint)r;
        }
        SortByKey(order, length);
        // The draws in position order, into the sort's spent scratch half: one Philox block serves the (up to) four
        // consecutive tensor indices it covers instead of being recomputed for each element in sorted order.
        Span<ulong> draws = order.AsSpan(length, length);
        long blockOf = -1;
        Philox4x32Block block = default;
        for (int r = 0; r < length; r++)
        {
            long tensorIndex = firstIndex + first + (long)r * stride;
            if (tensorIndex >> 2 != blockOf)
            {
                blockOf = tensorIndex >> 2;
                block = Philox4x32.StreamBlock(key, (ulong)blockOf);
            }
            draws[r] = block[(int)(tensorIndex & 3)];
        }
        float span = length - 1;
        for (int s = 0; s < length; s++)
        {
            int r = (int)(uint)order[s];
            long index = first + (long)r * stride;
            float p = length == 1 ? probabilities.Single : Probability(s, span, probabilities);
            float value = values[index];
            bool keep = Philox4x32.ToUniform((uint)draws[r]) < p;
            values[index] = keep ? (probabilities.Divide ? value / p : value) : 0f;
        }
    }

    /// <summary>Below this length a comparison sort is cheaper than three radix passes and their histograms.</summary>
    private const int RadixMinimum = 256;

    /// <summary>
    /// Sorts <c>order[0..length)</c> ascending; every entry is (31-bit key &lt;&lt; 32) | position and the entries are
    /// distinct, so the result is the unique ascending order (what <see cref="Array.Sort{T}(T[], int, int)"/> gives).
    /// <c>order[length..2·length)</c> is scratch.
    /// </summary>
    internal static void SortByKey(ulong[] order, int length) => SortByKey(order.AsSpan(0, length), order.AsSpan(length, length));

    /// <summary>
    /// Sorts <paramref name="entries"/> ascending, as <see cref="SortByKey(ulong[], int)"/>; the entries must be in
    /// position order (the radix passes sort by key alone, stably). <paramref name="scratch"/> is as long.
    /// </summary>
    internal static void SortByKey(Span<ulong> entries, Span<ulong> scratch)
    {
        int length = entries.Length;
        if (length < RadixMinimum)
        {
            entries.Sort();
            return;
        }
        Span<int> counts = stackalloc int[2048 + 2048 + 512];
        counts.Clear();
        Span<int> c0 = counts[..2048], c1 = counts.Slice(2048, 2048), c2 = counts[4096..];
        Span<ulong> a = entries, b = scratch[..length];
        foreach (ulong e in a)
        {
            uint key = (uint)(e >> 32);
            c0[(int)(key & 0x7FF)]++;
            c1[(int)((key >> 11) & 0x7FF)]++;
            c2[(int)(key >> 22)]++;
        }
        // A pass whose digit is the same for every entry changes nothing: skip it (common for the exponent's digit).
        bool inScratch = false;
        if (Pass(a, b, c0, 0, length)) { inScratch = !inScratch; Swap(ref a, ref b); }
        if (Pass(a, b, c1, 11, length)) { inScratch = !inScratch; Swap(ref a, ref b); }
        if (Pass(a, b, c2, 22, length)) { inScratch = !inScratch; Swap(ref a, ref b); }
        if (inScratch) a.CopyTo(entries);
    }

    private static void Swap(ref Span<ulong> a, ref Span<ulong> b)
    {
        Span<ulong> t = a;
        a = b;
        b = t;
    }

    /// <summary>One stable counting pass from <paramref name="from"/> into <paramref name="to"/>; false (and nothing moved) when one bucket holds everything.</summary>
    private static bool Pass(ReadOnlySpan<ulong> from, Span<ulong> to, Span<int> counts, int shift, int length)
    {
        int sum = 0;
        for (int d = 0; d < counts.Length; d++)
        {
            int c = counts[d];
            if (c == length) return false;
            counts[d] = sum;
            sum += c;
        }
        int mask = counts.Length - 1;
        foreach (ulong e in from)
        {
            int digit = (int)((uint)(e >> 32) >> shift) & mask;
            to[counts[digit]++] = e;
        }
        return true;
    }
}
