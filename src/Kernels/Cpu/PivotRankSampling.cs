using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Weld.Kernels.Random;

namespace Weld.Kernels.Cpu;

/// <summary>
/// The open draws of one fiber of <see cref="MagnitudeRankSampling"/> decided from pivot counts instead of a histogram
/// (AVX-512, contiguous fibers with spread keys).
/// </summary>
/// <remarks>
/// Thirty-one pivots P_0 ≤ … ≤ P_30 (keys of the fiber at a fixed stride, sorted: they choose the speed, never the
/// result) and below(k) = #(keys &lt; P_k), counted by vector compares with no stores (P_31 is a sentinel above every
/// key: below(31) = n). An element whose key x lies in [P_{k−1}, P_k) has its sorted position s in
/// [below(k − 1), below(k) − 1] (below(−1) = 0): every key below P_{k−1} sorts before it, and it sorts before every key
/// from P_k up. p is monotone in s, so when the draw is on one side of p at both ends of that range the range decides
/// it, as a bucket's range does in <see cref="MagnitudeRankSampling"/>. The draws p crosses inside their range (≈ 6 % of
/// the open ones on spread keys) get their exact position by one vector scan of the keys,
/// s = #(j &lt; r: key_j ≤ x) + #(j ≥ r: key_j &lt; x). Crowded keys make wide ranges (a key holding 5 % of the fiber is
/// a range of 5 % however many pivots), so fibers whose pivot sample repeats a key take the one-key buckets instead.
/// </remarks>
internal static unsafe class PivotRankSampling
{
    /// <summary>Pivots per fiber: 31 and the sentinel fill two 512-bit registers, so a range is one two-table permute away.</summary>
    public const int Pivots = 31;

    /// <summary>
    /// The longest fiber the kernels rank this way: the exact counts cost a scan of the fiber per draw left open, and
    /// a fixed number of pivots leaves a fixed share open, so their cost grows with the square of the length (measured on
    /// spread keys: 1.5× faster than the buckets at 2,048, even at 8,192).
    /// </summary>
    public const int LongestFiber = 4096;

    /// <summary>The shortest fiber this path takes (the pivot sample must hold distinct positions).</summary>
    public const int ShortestFiber = 2 * Pivots;

    /// <summary>Whether this path runs here: AVX-512 lanes (the compress stores and the 32-entry range tables).</summary>
    public static bool IsSupported => Avx512F.IsSupported && Vector512.IsHardwareAccelerated;

    /// <summary><see cref="SamplePivots(uint*, int, uint*, bool)"/> on spans, the whole sample (for tests).</summary>
    internal static bool SamplePivots(ReadOnlySpan<uint> keys, Span<uint> pivots)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(keys.Length, ShortestFiber);
        ArgumentOutOfRangeException.ThrowIfLessThan(pivots.Length, Pivots + 1);
        fixed (uint* k = keys)
        fixed (uint* p = pivots)
            return SamplePivots(k, keys.Length, p, stopAtRepeat: false);
    }

    /// <summary>
    /// Keys at a fixed stride of the fiber, sorted, into pivots[0..31), and the sentinel above every key into pivots[31];
    /// returns whether no key repeats (spread keys: this path is the faster one). With <paramref name="stopAtRepeat"/>
    /// it returns false at the first repeat, pivots unfinished (bf16 task vectors repeat within ≈ 8 keys).
    /// </summary>
    public static bool SamplePivots(uint* keys, int length, uint* pivots, bool stopAtRepeat)
    {
        bool distinct = true;
        for (int i = 0; i < Pivots; i++)
        {
            uint key = keys[(long)(2 * i + 1) * length / (2 * Pivots)];
            int j = i;
            for (; j > 0 && pivots[j - 1] > key; j--)
                pivots[j] = pivots[j - 1];
            pivots[j] = key;
            if (j > 0 && pivots[j - 1] == key)
            {
                if (stopAtRepeat)
                    return false;
                distinct = false;
            }
        }
        pivots[Pivots] = uint.MaxValue; // keys are at most 0x7FFFFFFF: below(31) = n
        return distinct;
    }

    /// <summary>
    /// Keeps the fiber's elements whose draw is below <paramref name="keepBelow"/>, zeroes those at or above
    /// <paramref name="dropFrom"/> and decides the rest by their sorted position (a contiguous fiber of at least
    /// <see cref="ShortestFiber"/>; <paramref name="keys"/> its magnitude keys with 16 spare entries after them,
    /// <paramref name="words"/> its Philox words, <paramref name="p"/> the keep probability of every sorted position,
    /// <paramref name="pivots"/> from <see cref="SamplePivots(uint*, int, uint*, bool)"/>, whole).
    /// </summary>
    public static void Sample(float* fiber, int length, uint* keys, uint* words, float keepBelow, float dropFrom, float* p,
        uint* pivots, MagnitudeRankSampling.Scratch scratch)
    {
        fixed (int* open = scratch.Open, drops = scratch.Drops)
        fixed (uint* openKeys = scratch.OpenKeys)
        fixed (float* openUniforms = scratch.OpenUniforms)
        {
            int opened = ListOpen(fiber, length, words, keys, keepBelow, dropFrom, open, openKeys, openUniforms);
            if (opened == 0)
                return;
            int* below = stackalloc int[Pivots + 1];
            for (int k = 0; k < Pivots + 1; k += 8)
                CountBelowEight(keys, length, pivots + k, below + k);
            int undecided = DecideByRange(open, openKeys, openUniforms, opened, pivots, below, p, drops, out int dropped);
            for (int i = 0; i < dropped; i++)
                fiber[drops[i]] = 0f;
            for (int i = 0; i < undecided; i++)
                if (!(openUniforms[i] < p[ExactPosition(keys, length, open[i], openKeys[i])]))
                    fiber[open[i]] = 0f;
        }
    }

    /// <summary>
    /// The sure draws decided (drops written as +0) and the open ones listed with their key and uniform, in position
    /// order; returns how many are open.
    /// </summary>
    private static int ListOpen(float* fiber, int length, uint* words, uint* keys, float keepBelow, float dropFrom,
        int* open, uint* openKeys, float* openUniforms)
    {
        Vector512<float> scale = Vector512.Create(Philox4x32.UniformScale);
        Vector512<float> low = Vector512.Create(keepBelow), high = Vector512.Create(dropFrom);
        int opened = 0, r = 0;
        for (; r + 16 <= length; r += 16)
        {
            // (word >> 8) has 24 bits: the int -> float conversion and the scaling are exact, as in ToUniform.
            Vector512<float> uniform = Vector512.ConvertToSingle((Vector512.Load(words + r) >>> 8).AsInt32()) * scale;
            Vector512<float> drop = Vector512.GreaterThanOrEqual(uniform, high);
            Vector512<float> keep = Vector512.LessThan(uniform, low);
            Vector512<float> x = Vector512.Load(fiber + r);
            Vector512.ConditionalSelect(drop, Vector512<float>.Zero, x).Store(fiber + r);
            Vector512<int> undecided = ~(drop | keep).AsInt32();
            Avx512F.Compress(Vector512<int>.Zero, undecided, Vector512.Create(r) + Vector512<int>.Indices).Store(open + opened);
            Avx512F.Compress(Vector512<uint>.Zero, undecided.AsUInt32(), Vector512.Load(keys + r)).Store(openKeys + opened);
            Avx512F.Compress(Vector512<float>.Zero, undecided.AsSingle(), uniform).Store(openUniforms + opened);
            opened += BitOperations.PopCount(undecided.ExtractMostSignificantBits());
        }
        for (; r < length; r++)
        {
            float uniform = Philox4x32.ToUniform(words[r]);
            if (uniform >= dropFrom)
                fiber[r] = 0f;
            else if (!(uniform < keepBelow))
            {
                open[opened] = r;
                openKeys[opened] = keys[r];
                openUniforms[opened++] = uniform;
            }
        }
        return opened;
    }

    /// <summary>counts[k] = #(keys &lt; pivots[k]) for eight pivots: compares and no stores (the keys array has 16 spare entries).</summary>
    private static void CountBelowEight(uint* keys, int length, uint* pivots, int* counts)
    {
        Vector512<uint> p0 = Vector512.Create(pivots[0]), p1 = Vector512.Create(pivots[1]), p2 = Vector512.Create(pivots[2]);
        Vector512<uint> p3 = Vector512.Create(pivots[3]), p4 = Vector512.Create(pivots[4]), p5 = Vector512.Create(pivots[5]);
        Vector512<uint> p6 = Vector512.Create(pivots[6]), p7 = Vector512.Create(pivots[7]);
        Vector512<uint> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        int r = 0;
        for (; r + 16 <= length; r += 16)
        {
            Vector512<uint> k = Vector512.Load(keys + r);
            c0 -= Vector512.LessThan(k, p0); // a hit is all ones: −1
            c1 -= Vector512.LessThan(k, p1);
            c2 -= Vector512.LessThan(k, p2);
            c3 -= Vector512.LessThan(k, p3);
            c4 -= Vector512.LessThan(k, p4);
            c5 -= Vector512.LessThan(k, p5);
            c6 -= Vector512.LessThan(k, p6);
            c7 -= Vector512.LessThan(k, p7);
        }
        if (r < length)
        {
            // The last keys: lanes past the end see the sentinel above every pivot.
            Vector512<uint> k = Vector512.ConditionalSelect(
                Vector512.LessThan(Vector512<uint>.Indices, Vector512.Create((uint)(length - r))), Vector512.Load(keys + r),
                Vector512<uint>.AllBitsSet);
            c0 -= Vector512.LessThan(k, p0);
            c1 -= Vector512.LessThan(k, p1);
            c2 -= Vector512.LessThan(k, p2);
            c3 -= Vector512.LessThan(k, p3);
            c4 -= Vector512.LessThan(k, p4);
            c5 -= Vector512.LessThan(k, p5);
            c6 -= Vector512.LessThan(k, p6);
            c7 -= Vector512.LessThan(k, p7);
        }
        counts[0] = (int)Vector512.Sum(c0); counts[1] = (int)Vector512.Sum(c1); counts[2] = (int)Vector512.Sum(c2);
        counts[3] = (int)Vector512.Sum(c3); counts[4] = (int)Vector512.Sum(c4); counts[5] = (int)Vector512.Sum(c5);
        counts[6] = (int)Vector512.Sum(c6); counts[7] = (int)Vector512.Sum(c7);
    }

    /// <summary>
    /// Decides the open draws whose range of positions [below(k − 1), below(k) − 1] has p on one side of the draw,
    /// sixteen at a time: the range by a binary search over the pivots, p at both ends by permutes of 32-entry tables
    /// taken from <paramref name="p"/>. The drops are listed in <paramref name="drops"/> (<paramref name="dropped"/> of
    /// them), the undecided stay listed at the front of the open lists, in order; returns how many stay.
    /// </summary>
    private static int DecideByRange(int* open, uint* openKeys, float* openUniforms, int opened,
        uint* pivots, int* below, float* p, int* drops, out int dropped)
    {
        // Range k: first position below(k − 1) (k = 0: 0), last below(k) − 1 (k = 31: n − 1); p at both, from the
        // table of every position's p (the same bits), in two 16-entry tables each.
        float* pFirsts = stackalloc float[Pivots + 1];
        float* pLasts = stackalloc float[Pivots + 1];
        for (int k = 0; k <= Pivots; k++)
        {
            pFirsts[k] = p[k == 0 ? 0 : below[k - 1]];
            pLasts[k] = p[Math.Max(below[k] - 1, 0)]; // an empty range (below(k) = 0) is never any element's
        }
        Vector512<float> pFirstsLow = Vector512.Load(pFirsts), pFirstsHigh = Vector512.Load(pFirsts + 16);
        Vector512<float> pLastsLow = Vector512.Load(pLasts), pLastsHigh = Vector512.Load(pLasts + 16);
        Vector512<uint> pivotsLow = Vector512.Load(pivots), pivotsHigh = Vector512.Load(pivots + 16);
        int undecided = 0;
        dropped = 0;
        for (int i = 0; i < opened; i += 16)
        {
            Vector512<int> live = Vector512.LessThan(Vector512.Create(i) + Vector512<int>.Indices, Vector512.Create(opened));
            Vector512<uint> x = Vector512.Load(openKeys + i);
            // The range index, #(pivots ≤ x), by a branch-free binary search over the 32 sorted pivots (the sentinel is
            // above every key): five steps of a two-table permute and a compare.
            Vector512<int> range = Vector512<int>.Zero;
            for (int step = 16; step > 0; step >>= 1)
            {
                Vector512<int> probe = range + Vector512.Create(step - 1);
                Vector512<uint> pivot = Avx512F.PermuteVar16x32x2(pivotsLow, probe.AsUInt32(), pivotsHigh);
                range = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(x, pivot).AsInt32(), range + Vector512.Create(step), range);
            }
            Vector512<float> pFirst = Avx512F.PermuteVar16x32x2(pFirstsLow, range, pFirstsHigh);
            Vector512<float> pLast = Avx512F.PermuteVar16x32x2(pLastsLow, range, pLastsHigh);
            Vector512<float> u = Vector512.Load(openUniforms + i);
            Vector512<int> belowFirst = Vector512.LessThan(u, pFirst).AsInt32(), belowLast = Vector512.LessThan(u, pLast).AsInt32();
            Vector512<int> drop = ~(belowFirst | belowLast) & live;
            Vector512<int> stay = (belowFirst ^ belowLast) & live;
            Vector512<int> positions = Vector512.Load(open + i);
            Avx512F.Compress(Vector512<int>.Zero, drop, positions).Store(drops + dropped);
            dropped += BitOperations.PopCount(drop.ExtractMostSignificantBits());
            Avx512F.Compress(Vector512<int>.Zero, stay, positions).Store(open + undecided);
            Avx512F.Compress(Vector512<uint>.Zero, stay.AsUInt32(), x).Store(openKeys + undecided);
            Avx512F.Compress(Vector512<float>.Zero, stay.AsSingle(), u).Store(openUniforms + undecided);
            undecided += BitOperations.PopCount(stay.ExtractMostSignificantBits());
        }
        return undecided;
    }

    /// <summary>
    /// The sorted position of element <paramref name="r"/> (key <paramref name="x"/>), by one vector scan of the keys:
    /// #(j &lt; r: key_j ≤ x) + #(j ≥ r: key_j &lt; x) = #(j: key_j &lt; x + [j &lt; r]) (x + 1 ≤ 2³¹ does not wrap).
    /// </summary>
    private static int ExactPosition(uint* keys, int length, int r, uint x)
    {
        Vector512<uint> before = Vector512.Create(x + 1), after = Vector512.Create(x);
        Vector512<uint> a = default, b = default;
        int j = 0, split = r & ~15, end = length & ~15;
        for (; j + 32 <= split; j += 32)
        {
            a -= Vector512.LessThan(Vector512.Load(keys + j), before);
            b -= Vector512.LessThan(Vector512.Load(keys + j + 16), before);
        }
        if (j < split)
        {
            a -= Vector512.LessThan(Vector512.Load(keys + j), before);
            j += 16;
        }
        // The chunk holding r: lanes before r compare with x + 1, lanes past the end see the sentinel.
        if (j < length)
        {
            Vector512<uint> lane = Vector512<uint>.Indices + Vector512.Create((uint)j);
            Vector512<uint> threshold = after - Vector512.LessThan(lane, Vector512.Create((uint)r));
            Vector512<uint> k = Vector512.ConditionalSelect(Vector512.LessThan(lane, Vector512.Create((uint)length)),
                Vector512.Load(keys + j), Vector512<uint>.AllBitsSet);
            b -= Vector512.LessThan(k, threshold);
            j += 16;
        }
        for (; j + 32 <= end; j += 32)
        {
            a -= Vector512.LessThan(Vector512.Load(keys + j), after);
            b -= Vector512.LessThan(Vector512.Load(keys + j + 16), after);
        }
        if (j < end)
        {
            a -= Vector512.LessThan(Vector512.Load(keys + j), after);
            j += 16;
        }
        if (j < length)
        {
            Vector512<uint> k = Vector512.ConditionalSelect(Vector512.LessThan(Vector512<uint>.Indices, Vector512.Create((uint)(length - j))),
                Vector512.Load(keys + j), Vector512<uint>.AllBitsSet);
            b -= Vector512.LessThan(k, after);
        }
        return (int)Vector512.Sum(a + b);
    }
}
