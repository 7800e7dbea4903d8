using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Weld.Kernels.Random;

namespace Weld.Kernels.Cpu;

/// <summary>
/// The open draws of one fiber of <see cref="MagnitudeRankSampling"/> decided from pivot counts instead of a histogram
/// (AVX-512, contiguous fibers).
/// </summary>
/// <remarks>
/// Fifteen pivots P_0 ≤ … ≤ P_14 (keys of the fiber at a fixed stride, sorted: they choose the speed, never the result)
/// and below(k) = #(keys &lt; P_k), counted by vector compares with no stores. An element whose key x lies in
/// [P_{k−1}, P_k) has its sorted position s in [below(k − 1), below(k) − 1] (below(−1) = 0, below(15) = n): every key
/// below P_{k−1} sorts before it, and it sorts before every key from P_k up. p is monotone in s, so when the draw is on
/// one side of p at both ends of that range the range decides it, as for a bucket of <see cref="MagnitudeRankSampling"/>.
/// The few draws p crosses inside their range get their exact position by one vector scan of the keys,
/// s = #(j &lt; r: key_j ≤ x) + #(j ≥ r: key_j &lt; x), or, for a key equal to its range's lower pivot (a crowded key
/// of bf16 data, which the stride sample hits), s = below(k − 1) + #(j &lt; r: key_j = x).
/// </remarks>
internal static unsafe class PivotRankSampling
{
    /// <summary>Pivots per fiber: 31 and the sentinel fill two 512-bit registers, so a range is one two-table permute away.</summary>
    public const int Pivots = 31;
    public static readonly int Stop = int.Parse(Environment.GetEnvironmentVariable("STOP") ?? "0");
    public static readonly long[] Stats = new long[4];

    /// <summary>Whether this path runs here: AVX-512 lanes (the compress stores and the 32-entry range tables).</summary>
    public static bool IsSupported => Avx512F.IsSupported && Vector512.IsHardwareAccelerated;

    /// <summary>
    /// Keeps the fiber's elements whose draw is below <paramref name="keepBelow"/>, zeroes those at or above
    /// <paramref name="dropFrom"/> and decides the rest by their sorted position (contiguous fiber of
    /// <paramref name="length"/> ≥ 64; <paramref name="p"/> the keep probability of every sorted position).
    /// </summary>
    public static void Sample(float* fiber, int length, uint* keys, uint* words, float keepBelow, float dropFrom, float* p,
        in MagnitudeRankSampling.Probabilities probabilities, MagnitudeRankSampling.Scratch scratch)
    {
        fixed (int* open = scratch.Open)
        fixed (uint* openKeys = scratch.OpenKeys)
        fixed (float* openUniforms = scratch.OpenUniforms)
        {
            int opened = ListOpen(fiber, length, words, keys, keepBelow, dropFrom, open, openKeys, openUniforms);
            if (opened == 0 || Stop == 1)
                return;
            uint* pivots = stackalloc uint[Pivots + 1];
            int* below = stackalloc int[Pivots + 1];
            SamplePivots(keys, length, pivots);
            for (int k = 0; k < Pivots + 1; k += 8)
                CountBelowEight(keys, length, pivots + k, below + k);
            if (Stop == 2) return;
            int undecided;
            fixed (int* drops = scratch.Drops)
            {
                undecided = DecideByRange(open, openKeys, openUniforms, opened, pivots, below, p, drops, out int dropped);
                for (int i = 0; i < dropped; i++)
                    fiber[drops[i]] = 0f;
            }
            if (Stop == 3) return;
            Stats[0]++; Stats[1] += opened; Stats[2] += undecided;
            for (int i = 0; i < undecided; i++)
            {
                int r = open[i];
                int position = ExactPosition(keys, length, r, openKeys[i], pivots, below);
                if (!(openUniforms[i] < p[position]))
                    fiber[r] = 0f;
            }
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

    /// <summary>Keys at a fixed stride of the fiber, sorted, in pivots[0..31); pivots[31] the sentinel above every key.</summary>
    private static void SamplePivots(uint* keys, int length, uint* pivots)
    {
        for (int i = 0; i < Pivots; i++)
            Insert(pivots, i, keys[(long)(2 * i + 1) * length / (2 * Pivots)]);
        if (s_pairs)
        {
            // A key sampled twice is crowded (bf16 data: a few keys hold most elements): its second pivot becomes the
            // key above it, so that its equal keys fill a range of their own, [#(keys < Y), #(keys ≤ Y)).
            for (int i = 1; i < Pivots; i++)
                if (pivots[i] == pivots[i - 1] && (i < 2 || pivots[i - 1] != pivots[i - 2] + 1))
                    pivots[i]++;
            for (int i = 1; i < Pivots; i++)
                Insert(pivots, i, pivots[i]);
        }
        pivots[Pivots] = uint.MaxValue; // above every key (keys are at most 0x7FFFFFFF): below(31) = n
    }

    private static readonly bool s_pairs = Environment.GetEnvironmentVariable("PAIRS") != "0";

    /// <summary>Inserts <paramref name="key"/> into the sorted sorted[0..count).</summary>
    private static void Insert(uint* sorted, int count, uint key)
    {
        int j = count;
        for (; j > 0 && sorted[j - 1] > key; j--)
            sorted[j] = sorted[j - 1];
        sorted[j] = key;
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
    /// Decides the open draws whose range of positions [below(k − 1), below(k) − 1] has p on one side of the draw
    /// (sixteen at a time: the range by compares against the pivots and two permutes, p at both ends computed as
    /// <see cref="MagnitudeRankSampling"/>'s table is, in the same float32 operations); the rest stay listed at the
    /// front, in order. Returns how many stay.
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
            pLasts[k] = p[below[k] - 1];
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
    /// #(j &lt; r: key_j ≤ x) + #(j ≥ r: key_j &lt; x); for a key that is a pivot, below(k) + its equal keys before r,
    /// counted on the shorter side of r when the next pivot is x + 1 (the key's equal count is then known).
    /// </summary>
    private static int ExactPosition(uint* keys, int length, int r, uint x, uint* pivots, int* below)
    {
        int range = 0;
        while (pivots[range] <= x)
            range++;
        if (range > 0 && pivots[range - 1] == x)
        {
            Stats[3]++;
            int less = below[range - 1];
            if (pivots[range] == x + 1 && r > length / 2)
                return below[range] - 1 - CountEqual(keys, r + 1, length, x);
            return less + CountEqual(keys, 0, r, x);
        }
        return CountBelow(keys, length, r, x);
    }

    /// <summary>#(j &lt; r: key_j ≤ x) + #(j ≥ r: key_j &lt; x) = #(j: key_j &lt; x + [j &lt; r]).</summary>
    private static int CountBelow(uint* keys, int length, int r, uint x)
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

    /// <summary>#(j in [from, to): key_j = x).</summary>
    private static int CountEqual(uint* keys, int from, int to, uint x)
    {
        Vector512<uint> xs = Vector512.Create(x);
        Vector512<uint> a = default, b = default;
        int j = from;
        for (; j + 32 <= to; j += 32)
        {
            a -= Vector512.Equals(Vector512.Load(keys + j), xs);
            b -= Vector512.Equals(Vector512.Load(keys + j + 16), xs);
        }
        for (; j < to; j += 16)
        {
            Vector512<uint> inside = Vector512.LessThan(Vector512<uint>.Indices, Vector512.Create((uint)(to - j)));
            a -= Vector512.Equals(Vector512.Load(keys + j), xs) & inside;
        }
        return (int)Vector512.Sum(a + b);
    }
}
