using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>
/// A top-k over a tensor seen only in chunks (histogram passes, then a cut per chunk with a carried tie budget)
/// keeps exactly what the sort-based reference keeps on the whole tensor.
/// </summary>
public class StreamedTopKTests
{
    public static TheoryData<int> Sizes => new(TestData.Sizes);

    /// <summary>Random chunk boundaries: the search must not depend on how the tensor is cut.</summary>
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

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Streamed_top_k_matches_the_stable_sort_reference(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var kernels = new CpuKernels();
        foreach ((string kind, float[] values) in TestData.Kinds(random, length))
        {
            int[] descending = ScalarReference.DescendingOrder(values);
            foreach (long k in new long[] { 0, 1, length / 3, length / 2 + 1, length - 1, length, length + 5 })
            {
                if (k < 0) continue;
                string context = $"seed {seed}, {kind}, n {length}, k {k}";
                (float[] expected, _) = ScalarReference.TopK(values, descending, k);
                var chunks = RandomChunks(random, length);

                var search = new MagnitudeThresholdSearch(length, k);
                while (!search.IsComplete)
                {
                    // Chunks of a counting pass may come in any order.
                    foreach (var (start, size) in chunks.OrderBy(_ => random.Next()))
                        search.Observe(kernels, values.AsSpan(start, size));
                    search.EndPass();
                }

                float[] actual = (float[])values.Clone();
                long ties = search.TiesToKeep;
                long kept = 0;
                foreach (var (start, size) in chunks)
                {
                    long keptTies = kernels.KeepAboveMagnitude(actual.AsSpan(start, size), search.ThresholdKey, ties);
                    Assert.InRange(keptTies, 0, ties);
                    ties -= keptTies;
                }
                BitAssert.Identical(expected, actual, context);
                foreach (float v in actual) kept += BitAssert.Bits(v) != 0 ? 1 : 0;
                long nonzeroExpected = expected.Count(v => BitAssert.Bits(v) != 0);
                Assert.Equal(nonzeroExpected, kept);
            }
        }
    }

    [Fact]
    public void Magnitude_histogram_counts_digits_under_a_prefix()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var kernels = new CpuKernels();
        float[] values = TestData.WithSpecials(random, TestData.TieHeavy(random, 300_001));
        var high = new long[1 << 16];
        kernels.MagnitudeHistogram(values, 0, 15, 16, high);
        var expectedHigh = new long[1 << 16];
        foreach (float v in values) expectedHigh[ScalarReference.Key(v) >> 15]++;
        Assert.Equal(expectedHigh, high);

        int prefix = (int)(ScalarReference.Key(values[12345]) >> 15);
        var low = new long[1 << 15];
        kernels.MagnitudeHistogram(values, prefix, 0, 15, low);
        var expectedLow = new long[1 << 15];
        foreach (float v in values)
            if (ScalarReference.Key(v) >> 15 == prefix) expectedLow[ScalarReference.Key(v) & 0x7FFF]++;
        Assert.Equal(expectedLow, low);
        Assert.Equal(expectedHigh[prefix], low.Sum());
    }

    [Fact]
    public void Keep_above_magnitude_keeps_the_first_ties_and_reports_how_many()
    {
        var kernels = new CpuKernels(1);
        float[] values = [1f, -2f, 2f, 0.5f, -2f, 3f];
        long kept = kernels.KeepAboveMagnitude(values, BitConverter.SingleToInt32Bits(2f), 2);
        Assert.Equal(2, kept);
        Assert.Equal(new[] { 0f, -2f, 2f, 0f, 0f, 3f }, values);

        float[] more = [2f, 2f, 1f];
        Assert.Equal(0, kernels.KeepAboveMagnitude(more, BitConverter.SingleToInt32Bits(2f), 0));
        Assert.Equal(new[] { 0f, 0f, 0f }, more);
    }

    [Fact]
    public void Drop_and_rescale_in_chunks_draws_the_mask_of_the_whole_tensor()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var kernels = new CpuKernels();
        float[] values = TestData.Plain(random, 200_003);
        var key = new PhiloxKey((ulong)seed, 0xABCDu, 3);
        float[] whole = (float[])values.Clone();
        kernels.DropAndRescale(whole, 0.37f, true, key);
        float[] chunked = (float[])values.Clone();
        foreach (var (start, size) in RandomChunks(random, values.Length))
            kernels.DropAndRescale(chunked.AsSpan(start, size), 0.37f, true, key, start);
        BitAssert.Identical(whole, chunked, $"seed {seed}");
        BitAssert.Identical(ScalarReference.DropAndRescale(values, 0.37f, true, key), chunked, $"seed {seed}");
    }
    /// <summary>
    /// The threshold tie count (<c>MagnitudeHistogramKernel.CountEqual</c>, vectorized) with 512-bit and 256-bit bodies
    /// against a scalar count of key matches, for keys that occur often (ties), once, never, and for NaN/±∞ keys.
    /// </summary>
    [Fact]
    public void Tie_counts_of_both_vector_widths_equal_a_scalar_count()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int size in new[] { 0, 1, 15, 16, 17, 31, 1031 })
        {
            foreach ((string kind, float[] values) in TestData.Kinds(random, size))
            {
                var keys = values.Select(v => (int)ScalarReference.Key(v)).ToList();
                keys.AddRange([0, 0x7F800000, 12345]);
                foreach (int key in keys.Distinct().Take(40))
                {
                    int expected = values.Count(v => (int)ScalarReference.Key(v) == key);
                    foreach (bool wide in new[] { true, false })
                        Assert.True(expected == MagnitudeHistogramKernel.CountEqual(values, key, wide),
                            $"seed {seed}, {kind}, n {size}, key 0x{key:X8}, {(wide ? 512 : 256)}-bit");
                }
            }
        }
    }
}
