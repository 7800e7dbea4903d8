using Weld.Kernels.Cpu;
using Xunit;
using Xunit.Sdk;

namespace Weld.Kernels.Tests;

/// <summary>
/// SCE's selection as a cut (<see cref="MagnitudeKeep"/>) instead of a written mask: the top-k cut and the streamed
/// chunk cut against a plain ranking, the energy sweep that tests the cut (and writes the selection bits) against a
/// scalar sum in the kernel's lane order, and the mix that reads the bits against the scalar formula. Exact equality.
/// </summary>
public sealed class SceCutTests
{
    private const int KeyMask = 0x7FFFFFFF;

    public static TheoryData<int> ThreadCounts() => new() { 1, -1 };

    private static int Key(float value) => BitConverter.SingleToInt32Bits(value) & KeyMask;

    /// <summary>Kept by the plain definition: key above, or tied and before the tie end.</summary>
    private static bool KeptByDefinition(MagnitudeKeep keep, long index, float value) =>
        Key(value) > keep.Key || (Key(value) == keep.Key && index < keep.TieEnd);

    /// <summary>The k largest keys, ties by lowest index (a stable sort), then only those not ±0 (what a mask leaves readable).</summary>
    private static bool[] TopKReference(float[] values, int[] order, long k)
    {
        var kept = new bool[values.Length];
        for (long j = 0; j < Math.Min(k, values.Length); j++) kept[order[j]] = true;
        for (int i = 0; i < values.Length; i++) kept[i] &= Key(values[i]) != 0;
        return kept;
    }

    private static int[] DescendingKeyOrder(float[] values)
    {
        int[] order = Enumerable.Range(0, values.Length).ToArray();
        Array.Sort(order, (a, b) => Key(values[a]) != Key(values[b]) ? Key(values[b]).CompareTo(Key(values[a])) : a.CompareTo(b));
        return order;
    }

    private static void SameSelection(bool[] expected, float[] values, MagnitudeKeep keep, string context)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (expected[i] != KeptByDefinition(keep, i, values[i]))
                throw new XunitException($"{context}: element {i} (key 0x{Key(values[i]):X8}) kept {!expected[i]}, expected {expected[i]} (cut {keep})");
        }
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void The_top_k_cut_keeps_the_k_largest_keys_with_ties_by_lowest_index(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        // 1,048,583 elements: past the sampled select's minimum, so its bracket and gather run (not only the radix select).
        foreach (int n in new[] { 0, 1, 7, 65537, 200003, 1_048_583 })
        {
            foreach ((string kind, float[] values) in TestData.Kinds(random, n))
            {
                int[] order = DescendingKeyOrder(values);
                long nonzero = values.Count(v => Key(v) != 0);
                foreach (long k in new[] { 0, 1, n / 3, (long)(0.3 * nonzero), nonzero, n, n + 5L })
                {
                    string context = $"seed {seed}, threads {threads}, n {n}, {kind}, k {k}";
                    float[] data = (float[])values.Clone();
                    MagnitudeKeep keep = kernels.SelectTopKCut(data, k);
                    BitAssert.Identical(values, data, $"{context}: the values are left as they are");
                    SameSelection(TopKReference(values, order, k), values, keep, context);

                    // The same selection as the mask KeepTopK writes, read as a selector (±0 dropped).
                    float[] masked = (float[])values.Clone();
                    kernels.KeepTopK(masked, k);
                    for (int i = 0; i < n; i++)
                    {
                        if ((masked[i] != 0f || float.IsNaN(masked[i])) != KeptByDefinition(keep, i, values[i]))
                            throw new XunitException($"{context}: element {i} differs from KeepTopK's mask");
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void A_streamed_chunk_cut_keeps_what_KeepAboveMagnitude_keeps_and_carries_the_same_ties(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in TestData.Sizes)
        {
            foreach ((string kind, float[] values) in TestData.Kinds(random, n))
            {
                var thresholds = new List<int> { 0, KeyMask };
                for (int j = 0; j < 3 && n > 0; j++) thresholds.Add(Key(values[random.Next(n)]));
                foreach (int threshold in thresholds)
                {
                    long equal = values.Count(v => Key(v) == threshold);
                    foreach (long ties in new[] { 0, 1, equal / 2, equal, equal + 5 })
                    {
                        string context = $"seed {seed}, threads {threads}, n {n}, {kind}, key 0x{threshold:X8}, ties {ties}";
                        var expected = new bool[n];
                        long tie = 0;
                        for (int i = 0; i < n; i++)
                        {
                            int key = Key(values[i]);
                            bool isTie = key == threshold;
                            expected[i] = key != 0 && (key > threshold || (isTie && tie < ties));
                            if (isTie) tie++;
                        }
                        MagnitudeKeep keep = kernels.CutAboveMagnitude(values, threshold, ties, out long tiesKept);
                        SameSelection(expected, values, keep, context);
                        Assert.Equal(Math.Min(ties, equal), tiesKept);

                        float[] masked = (float[])values.Clone();
                        Assert.Equal(kernels.KeepAboveMagnitude(masked, threshold, ties), tiesKept);
                        for (int i = 0; i < n; i++)
                        {
                            if ((masked[i] != 0f || float.IsNaN(masked[i])) != expected[i])
                                throw new XunitException($"{context}: element {i} differs from KeepAboveMagnitude's mask");
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// The scalar definition of the energy sweep's sum: per 64K chunk from 0, eight elements at a time into four float64
    /// lanes for elements 0–3 and four for 4–7, lane j of the two added, then (0 + 1) + (2 + 3); the tail element by
    /// element; the chunk partials added in chunk order from 0 onto the running sum.
    /// </summary>
    private static double EnergyReference(float[] row, int offset, int n, bool[] kept, double start)
    {
        double total = 0;
        for (int chunkStart = 0; chunkStart < n; chunkStart += ChunkedParallel.ChunkLength)
        {
            int size = Math.Min(ChunkedParallel.ChunkLength, n - chunkStart);
            var lower = new double[4];
            var upper = new double[4];
            int i = 0;
            for (; i + 8 <= size; i += 8)
            {
                for (int j = 0; j < 4; j++)
                {
                    float low = kept[chunkStart + i + j] ? row[offset + chunkStart + i + j] : 0f;
                    float high = kept[chunkStart + i + 4 + j] ? row[offset + chunkStart + i + 4 + j] : 0f;
                    lower[j] += (double)low * low;
                    upper[j] += (double)high * high;
                }
            }
            double sum = ((lower[0] + upper[0]) + (lower[1] + upper[1])) + ((lower[2] + upper[2]) + (lower[3] + upper[3]));
            for (; i < size; i++)
            {
                float x = kept[chunkStart + i] ? row[offset + chunkStart + i] : 0f;
                sum += (double)x * x;
            }
            total += sum;
        }
        return start + total;
    }

    private static ulong[] PackReference(bool[] kept)
    {
        var words = new ulong[(kept.Length + 63) / 64];
        for (int i = 0; i < kept.Length; i++)
            if (kept[i]) words[i / 64] |= 1UL << (i % 64);
        return words;
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void The_energy_sweep_through_a_cut_equals_a_scalar_sum_and_writes_the_selection_bits(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int rows in new[] { 1, 2, 3, 5 })
        {
            MethodKernelInputs.ForEach(seed + rows, rows + 1, (context, data, n) =>
            {
                float[] keys = data[(rows * n)..];
                var cuts = new List<MagnitudeKeep> { MagnitudeKeep.NotZero, MagnitudeKeep.Nothing, kernels.SelectTopKCut((float[])keys.Clone(), n / 3) };
                if (n > 0)
                {
                    int key = Key(keys[random.Next(n)]);
                    foreach (long tieEnd in new long[] { 0, 3, 8, 13, 65536, 65539, n / 2, n, long.MaxValue })
                        cuts.Add(new MagnitudeKeep(key, tieEnd));
                }
                foreach (MagnitudeKeep keep in cuts)
                {
                    int gap = random.Next(2) * 5; // rows farther apart than their length, the gap full of NaN
                    int stride = n + gap;
                    var stacked = new float[rows * stride];
                    Array.Fill(stacked, float.NaN);
                    for (int k = 0; k < rows; k++) data.AsSpan(k * n, n).CopyTo(stacked.AsSpan(k * stride));
                    float[] pristine = (float[])stacked.Clone();

                    var kept = new bool[n];
                    for (int i = 0; i < n; i++) kept[i] = KeptByDefinition(keep, i, keys[i]);
                    double[] sums = new double[rows], expected = new double[rows];
                    for (int k = 0; k < rows; k++)
                    {
                        sums[k] = 0.5 * k;
                        expected[k] = EnergyReference(stacked, k * stride, n, kept, sums[k]);
                    }
                    var bits = new ulong[(n + 63) / 64];
                    for (int w = 0; w < bits.Length; w++) bits[w] = (ulong)random.NextInt64(); // garbage to overwrite

                    kernels.AddSumsOfSquaresWhereKept(stacked.AsSpan(0, (rows - 1) * stride + n), stride, keys, keep, sums, bits);
                    string where = $"{context}, threads {threads}, cut {keep}, gap {gap}";
                    for (int k = 0; k < rows; k++)
                        Assert.True(BitAssert.Same(expected[k], sums[k]), $"{where}, row {k}: {sums[k]:R}, scalar {expected[k]:R}");
                    Assert.Equal(PackReference(kept), bits);
                    BitAssert.Identical(pristine, stacked, $"{where}: the rows are left as they were");
                }
            }, [0, 1, 7, 8, 13, 64, 65537, 200003]);
        }
    }

    /// <summary>The scalar formula of the erase and mix onto the base, δ read as +0 where the bit is clear.</summary>
    private static float[] MixReference(float[] stacked, int n, ulong[] bits, float[] weights, float floor, float[] baseline)
    {
        var output = new float[n];
        for (int i = 0; i < n; i++)
        {
            bool dropped = (bits[i / 64] >> (i % 64) & 1) == 0;
            float sum = 0f;
            for (int k = 0; k < weights.Length; k++) sum += dropped ? 0f : stacked[k * n + i];
            bool positive = sum >= 0f;
            float mixed = 0f, divisor = 0f;
            for (int k = 0; k < weights.Length; k++)
            {
                float delta = dropped ? 0f : stacked[k * n + i];
                float erased = (positive ? delta > 0f : delta < 0f) ? weights[k] : 0f;
                mixed += delta * erased;
                divisor += erased;
            }
            output[i] = 1f * baseline[i] + 1f * (mixed / (divisor < floor ? floor : divisor));
        }
        return output;
    }

    /// <summary>
    /// The mix through selection bits, with 512-bit vectors first and without them (the path of a CPU without AVX-512:
    /// <see cref="System.Numerics.Vector{T}"/>, then scalars), and through <see cref="CpuKernels"/> on one thread and on
    /// all, equals the scalar formula; random bits, also above the last element.
    /// </summary>
    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void The_mix_through_selection_bits_equals_the_scalar_formula_at_every_width(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[][] weightSets = [[1f], [0.4f, 0.6f], [0.2f, 0.7f, 0.1f], [0f, 0f]];
        foreach (float[] weights in weightSets)
        {
            int rows = weights.Length;
            MethodKernelInputs.ForEach(seed + rows, rows + 1, (context, data, n) =>
            {
                float[] stacked = data[..(rows * n)], baseline = data[(rows * n)..];
                var bits = new ulong[(n + 63) / 64 + 1];
                foreach (double density in new[] { 0.0, 0.3, 1.0 })
                {
                    for (int w = 0; w < bits.Length; w++)
                    {
                        ulong word = 0;
                        for (int b = 0; b < 64; b++)
                            if (random.NextDouble() < density) word |= 1UL << b;
                        bits[w] = word;
                    }
                    float[] expected = MixReference(stacked, n, bits, weights, 1e-6f, baseline);
                    string where = $"{context}, rows {rows}, density {density}";
                    foreach (bool wide in new[] { true, false })
                    {
                        if (wide && !System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated) continue; // this CPU has no 512-bit path to test
                        var actual = new float[n];
                        MethodKernels.SignErasedMixOntoBaseWhereKept(stacked, bits, weights, 1e-6f, baseline, actual, wide);
                        BitAssert.Equal(expected, actual, $"{where}, {(wide ? 512 : 256)}-bit");
                    }
                    var parallel = new float[n];
                    float[] deltas = (float[])stacked.Clone();
                    kernels.SignErasedMixOntoBaseWhereKept(deltas, bits, weights, 1e-6f, baseline, parallel);
                    BitAssert.Equal(expected, parallel, $"{where}, threads {threads}");
                    BitAssert.Identical(stacked, deltas, $"{where}: the task vectors are left as they were");
                }
            }, [0, 1, 7, 8, 15, 16, 17, 40, 1031, 65537, 70001]);
        }
    }

    [Fact]
    public void Bits_or_rows_of_the_wrong_length_throw()
    {
        var kernels = new CpuKernels(1);
        Assert.Throws<ArgumentException>(() => kernels.AddSumsOfSquaresWhereKept(new float[130], 65, new float[65], MagnitudeKeep.NotZero, new double[2], new ulong[1]));
        Assert.Throws<ArgumentException>(() => kernels.AddSumsOfSquaresWhereKept(new float[129], 65, new float[65], MagnitudeKeep.NotZero, new double[2], new ulong[2]));
        Assert.Throws<ArgumentException>(() => kernels.SignErasedMixOntoBaseWhereKept(new float[130], new ulong[1], [0.5f, 0.5f], 1e-6f, new float[65], new float[65]));
        Assert.Throws<ArgumentOutOfRangeException>(() => kernels.SelectTopKCut(new float[3], -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => kernels.CutAboveMagnitude(new float[3], -1, 0, out _));
    }
}
