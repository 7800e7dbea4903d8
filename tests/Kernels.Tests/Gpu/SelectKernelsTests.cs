using Weld.Kernels.Cpu;
using Weld.Kernels.Gpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// The GPU selection kernels (exact top-k, magnitude band, radix histogram, streamed top-k cut) against the
/// sort-based scalar references and the CPU backend, bit for bit, on every accelerator shape: odd sizes, sizes that
/// cross the 4096-element tiles of the tie numbering, NaN (above +∞), ±0 ties, bf16 ties at the threshold,
/// k = 0, k = n, k &gt; n and bands that drop everything.
/// </summary>
public sealed class SelectKernelsTests
{
    // 1 and tails below a group; one tile ± 1; several tiles with a ragged end; many tiles and grid strides.
    private static readonly int[] s_sizes = [1, 7, 17, 4095, 4097, 13001, 30011];
    private const int Large = 200_003;
    private readonly CpuKernels _cpu = new(2);

    private static long[] Ks(int n) => [0, 1, 2, n / 3, n / 2 + 1, n - 1, n, n + 5];

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void KeepTopK_matches_reference_and_cpu(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in s_sizes)
        {
            foreach ((string kind, float[] values) in TestData.Kinds(random, n))
            {
                int[] descending = ScalarReference.DescendingOrder(values);
                foreach (long k in Ks(n))
                    CheckTopK(gpu, values, descending, k, $"{shape} seed {seed} n={n} {kind} k={k}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void KeepTopK_of_a_large_tie_heavy_tensor_matches_reference_and_cpu(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[] values = TestData.WithSpecials(random, TestData.TieHeavy(random, Large));
        int[] descending = ScalarReference.DescendingOrder(values);
        // The threshold falls inside a run of ties that spans dozens of tiles.
        foreach (long k in new long[] { 1, Large / 10, Large / 3, Large / 2 + 7, Large - 2 })
            CheckTopK(gpu, values, descending, k, $"{shape} seed {seed} n={Large} k={k}");
    }

    /// <summary>Every element has the same magnitude (random signs, ±0 for zero): the tie boundary lands on and next to tile edges.</summary>
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void KeepTopK_with_all_ties_cuts_at_tile_edges(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        const int tile = MagnitudeMaskKernel.TileLength;
        const int n = 3 * tile + 5;
        foreach (float magnitude in new[] { 0.125f, 0f, float.NaN })
        {
            var values = new float[n];
            for (int i = 0; i < n; i++)
                values[i] = random.Next(2) == 0 ? magnitude : -magnitude;
            int[] descending = ScalarReference.DescendingOrder(values);
            foreach (long k in new long[] { 1, tile - 1, tile, tile + 1, 2 * tile, 3 * tile + 4, n })
                CheckTopK(gpu, values, descending, k, $"{shape} seed {seed} all |x| = {magnitude} k={k}");
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Empty_inputs_and_bad_arguments(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        Assert.Equal(new TopKSelection(float.PositiveInfinity, 0, 0), gpu.KeepTopK(Span<float>.Empty, 3));
        Assert.Equal(new TopKSelection(float.PositiveInfinity, 0, 0), gpu.KeepTopK(Span<float>.Empty, 0));
        float[] values = [1f, -0f, 2f];
        Assert.Throws<ArgumentOutOfRangeException>(() => gpu.KeepTopK(values, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => gpu.KeepMagnitudeBand(values, -1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => gpu.KeepMagnitudeBand(values, 0, -1));
        Assert.Equal(new[] { 1f, -0f, 2f }, values);
        gpu.KeepMagnitudeBand(Span<float>.Empty, 0, 0);
        gpu.KeepMagnitudeBand(Span<float>.Empty, 1, 1);
        var histogram = new long[1 << 11];
        histogram[3] = 9;
        gpu.MagnitudeHistogram(ReadOnlySpan<float>.Empty, 0, 20, 11, histogram);
        Assert.Equal(9, histogram.Sum());
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void KeepMagnitudeBand_matches_reference_and_cpu(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in s_sizes)
        {
            foreach ((string kind, float[] values) in TestData.Kinds(random, n))
            {
                int[] ascending = ScalarReference.AscendingOrder(values);
                (long, long)[] bands =
                [
                    (0, 0), (1, 0), (0, 1), (n / 3, n / 4), (n / 2, n / 2), (n - 1, 0), (0, n - 1), (n, 0), (0, n),
                    (n / 7, n - n / 7 - 1), (n / 2 + 1, n / 2 + 1), (2, 3),
                ];
                foreach ((long bottom, long top) in bands)
                    CheckBand(gpu, values, ascending, bottom, top, $"{shape} seed {seed} n={n} {kind} band ({bottom}, {top})");
            }
        }
    }

    /// <summary>Both cuts fall into the same run of ties (one key): the bottom leaves low indices, the top high ones.</summary>
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void KeepMagnitudeBand_with_both_cuts_in_one_run_of_ties(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        const int tile = MagnitudeMaskKernel.TileLength;
        foreach (int n in new[] { 9, 3 * tile + 5 })
        {
            var values = new float[n];
            for (int i = 0; i < n; i++)
                values[i] = random.Next(50) == 0 ? 2f : random.Next(2) == 0 ? 0.5f : -0.5f;
            int[] ascending = ScalarReference.AscendingOrder(values);
            foreach ((long bottom, long top) in new (long, long)[] { (1, 1), (n / 3, n / 3), (tile, tile), (tile - 1, 2 * tile - 3), (2, n - 3) })
            {
                if (bottom + top <= n)
                    CheckBand(gpu, values, ascending, bottom, top, $"{shape} seed {seed} n={n} band ({bottom}, {top})");
            }
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void MagnitudeHistogram_matches_reference_and_cpu(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in new[] { 1, 17, 4097, 30011 })
        {
            foreach ((string kind, float[] values) in TestData.Kinds(random, n))
            {
                int someKey = (int)ScalarReference.Key(values[random.Next(n)]);
                // Shared-memory digits (11 and 10 bits), wider digits counted in global memory (15, 16 bits).
                (int Prefix, int Shift, int Width)[] passes =
                [
                    (0, 20, 11), (someKey >> 20, 10, 10), (someKey >> 10, 0, 10), (0, 15, 16), (someKey >> 15, 0, 15), (0, 30, 1),
                ];
                foreach ((int prefix, int shift, int width) in passes)
                {
                    string context = $"{shape} seed {seed} n={n} {kind} prefix {prefix} shift {shift} width {width}";
                    var expected = new long[1 << width];
                    foreach (float v in values)
                    {
                        uint key = ScalarReference.Key(v);
                        if (shift + width >= 31 || key >> (shift + width) == prefix)
                            expected[(key >> shift) & ((1u << width) - 1)]++;
                    }

                    // Adds to what the histogram holds: start both from the same non-zero counts.
                    var cpu = new long[1 << width];
                    var actual = new long[1 << width];
                    cpu[0] = actual[0] = 5;
                    expected[0] += 5;
                    _cpu.MagnitudeHistogram(values, prefix, shift, width, cpu);
                    gpu.MagnitudeHistogram(values, prefix, shift, width, actual);
                    Assert.True(expected.AsSpan().SequenceEqual(actual), context + " vs reference");
                    Assert.True(cpu.AsSpan().SequenceEqual(actual), context + " vs cpu");
                }
            }
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => gpu.MagnitudeHistogram(new float[3], 0, 0, 17, new long[1 << 17]));
        Assert.Throws<ArgumentOutOfRangeException>(() => gpu.MagnitudeHistogram(new float[3], 0, 21, 11, new long[1 << 11]));
        Assert.Throws<ArgumentException>(() => gpu.MagnitudeHistogram(new float[3], 0, 20, 11, new long[100]));
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void KeepAboveMagnitude_matches_reference_and_cpu(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in new[] { 1, 17, 4097, 13001 })
        {
            foreach ((string kind, float[] values) in TestData.Kinds(random, n))
            {
                int key = (int)ScalarReference.Key(values[random.Next(n)]);
                long equal = values.Count(v => ScalarReference.Key(v) == (uint)key);
                foreach (int threshold in new[] { key, 0, int.MaxValue, 0x7F800000 })
                {
                    foreach (long ties in new long[] { 0, 1, equal / 2, equal - 1, equal, equal + 3, long.MaxValue })
                    {
                        if (ties < 0)
                            continue;
                        string context = $"{shape} seed {seed} n={n} {kind} threshold 0x{threshold:X8} ties {ties}";
                        float[] expected = (float[])values.Clone();
                        long expectedKept = 0;
                        for (int i = 0; i < n; i++)
                        {
                            uint k = ScalarReference.Key(values[i]);
                            if (k > (uint)threshold)
                                continue;
                            if (k == (uint)threshold && expectedKept < ties)
                                expectedKept++;
                            else
                                expected[i] = 0f;
                        }

                        float[] cpu = (float[])values.Clone();
                        float[] actual = (float[])values.Clone();
                        long cpuKept = _cpu.KeepAboveMagnitude(cpu, threshold, ties);
                        long actualKept = gpu.KeepAboveMagnitude(actual, threshold, ties);
                        BitAssert.Identical(expected, actual, context + " vs reference");
                        BitAssert.Identical(cpu, actual, context + " vs cpu");
                        Assert.Equal(expectedKept, actualKept);
                        Assert.Equal(cpuKept, actualKept);
                    }
                }
            }
        }

        Assert.Equal(0, gpu.KeepAboveMagnitude(Span<float>.Empty, 5, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => gpu.KeepAboveMagnitude(new float[2], -1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => gpu.KeepAboveMagnitude(new float[2], 0, -1));
    }

    /// <summary>
    /// The streamed top-k of <see cref="MagnitudeThresholdSearch"/> on the GPU kernels (histogram passes over chunks in
    /// any order, then a cut per chunk in index order with the carried tie budget) keeps what KeepTopK keeps whole.
    /// </summary>
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Streamed_top_k_on_the_gpu_matches_KeepTopK(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in new[] { 7, 13001 })
        {
            foreach ((string kind, float[] values) in TestData.Kinds(random, n))
            {
                int[] descending = ScalarReference.DescendingOrder(values);
                foreach (long k in new long[] { 0, 1, n / 3, n / 2 + 1, n - 1, n, n + 5 })
                {
                    string context = $"{shape} seed {seed} n={n} {kind} k={k}";
                    (float[] expected, _) = ScalarReference.TopK(values, descending, k);
                    List<(int Start, int Length)> chunks = RandomChunks(random, n);
                    var search = new MagnitudeThresholdSearch(n, k);
                    while (!search.IsComplete)
                    {
                        foreach ((int start, int size) in chunks.OrderBy(_ => random.Next()))
                            search.Observe(gpu, values.AsSpan(start, size));
                        search.EndPass();
                    }

                    float[] streamed = (float[])values.Clone();
                    long ties = search.TiesToKeep;
                    foreach ((int start, int size) in chunks)
                    {
                        long keptTies = gpu.KeepAboveMagnitude(streamed.AsSpan(start, size), search.ThresholdKey, ties);
                        Assert.InRange(keptTies, 0, ties);
                        ties -= keptTies;
                    }

                    float[] whole = (float[])values.Clone();
                    gpu.KeepTopK(whole, k);
                    BitAssert.Identical(expected, streamed, context + " streamed vs reference");
                    BitAssert.Identical(whole, streamed, context + " streamed vs KeepTopK");
                }
            }
        }
    }

    private void CheckTopK(GpuKernels gpu, float[] values, int[] descending, long k, string context)
    {
        (float[] expected, TopKSelection expectedSelection) = ScalarReference.TopK(values, descending, k);
        float[] cpu = (float[])values.Clone();
        float[] actual = (float[])values.Clone();
        TopKSelection cpuSelection = _cpu.KeepTopK(cpu, k);
        TopKSelection selection = gpu.KeepTopK(actual, k);
        BitAssert.Identical(expected, actual, context + " vs reference");
        BitAssert.Identical(cpu, actual, context + " vs cpu");
        AssertSelection(expectedSelection, selection, context + " selection vs reference");
        AssertSelection(cpuSelection, selection, context + " selection vs cpu");
        Assert.Equal(Math.Min(k, values.Length), selection.Kept);
    }

    private static void AssertSelection(TopKSelection expected, TopKSelection actual, string context)
    {
        Assert.True(BitAssert.Bits(expected.Threshold) == BitAssert.Bits(actual.Threshold),
            $"{context}: threshold 0x{BitAssert.Bits(actual.Threshold):X8}, expected 0x{BitAssert.Bits(expected.Threshold):X8}");
        Assert.True(expected.KeptAboveThreshold == actual.KeptAboveThreshold && expected.KeptAtThreshold == actual.KeptAtThreshold,
            $"{context}: {actual}, expected {expected}");
    }

    private void CheckBand(GpuKernels gpu, float[] values, int[] ascending, long bottom, long top, string context)
    {
        float[] expected = ScalarReference.Band(values, ascending, bottom, top);
        float[] cpu = (float[])values.Clone();
        float[] actual = (float[])values.Clone();
        _cpu.KeepMagnitudeBand(cpu, bottom, top);
        gpu.KeepMagnitudeBand(actual, bottom, top);
        BitAssert.Identical(expected, actual, context + " vs reference");
        BitAssert.Identical(cpu, actual, context + " vs cpu");
    }

    private static List<(int Start, int Length)> RandomChunks(System.Random random, int length)
    {
        var chunks = new List<(int, int)>();
        for (int start = 0; start < length;)
        {
            int size = Math.Min(length - start, 1 + random.Next(Math.Max(1, length / 3)));
            chunks.Add((start, size));
            start += size;
        }

        return chunks;
    }
}
