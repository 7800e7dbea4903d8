using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>
/// The one-pass streamed top-k cut (<see cref="SampledThresholdSearch"/>) finds exactly the cut of the histogram search
/// on every path: sampled bracket hit (one pass), bracket missed (three passes), no sample to be had (two passes).
/// </summary>
public class SampledThresholdSearchTests
{
    private const int ChunkLength = 1 << 20;

    private static float[] Normal(System.Random random, int length, double sigma)
    {
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            values[i] = (float)(sigma * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return values;
    }

    /// <summary>Runs a search over chunks of <paramref name="chunk"/> elements (in index order) until complete; returns the passes it took.</summary>
    private static int Run(SampledThresholdSearch search, float[] values, int chunk, IMergeKernels kernels)
    {
        int passes = 0;
        while (!search.IsComplete)
        {
            int before = search.PassesLeft;
            for (int start = 0; start < values.Length; start += chunk)
                search.Observe(kernels, values.AsSpan(start, Math.Min(chunk, values.Length - start)));
            search.EndPass();
            passes++;
            Assert.True(search.PassesLeft < before, "PassesLeft must drop after every pass");
            Assert.True(passes <= 3, "more than three passes");
        }
        return passes;
    }

    private static void AssertSameCut(float[] values, long keep, SampledThresholdSearch search, string context)
    {
        var reference = new MagnitudeThresholdSearch(values.Length, keep);
        var kernels = new CpuKernels();
        while (!reference.IsComplete)
        {
            reference.Observe(kernels, values);
            reference.EndPass();
        }
        Assert.True(reference.ThresholdKey == search.ThresholdKey, $"{context}: threshold key {search.ThresholdKey}, histogram search {reference.ThresholdKey}");
        Assert.True(reference.TiesToKeep == search.TiesToKeep, $"{context}: ties to keep {search.TiesToKeep}, histogram search {reference.TiesToKeep}");
    }

    [Fact]
    public void Bf16_task_vectors_are_cut_in_one_pass_with_the_histogram_search_result()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        int length = 5 * ChunkLength + 12_345;
        // δ = θ − θ_base of bf16 weights: few distinct magnitudes, heavy ties at every key.
        float[] values = Normal(random, length, 0.02);
        for (int i = 0; i < length; i++)
        {
            float theta = FloatConversions.Bf16ToSingle(FloatConversions.SingleToBf16(values[i]));
            float tuned = FloatConversions.Bf16ToSingle(FloatConversions.SingleToBf16(values[i] + (float)(0.001 * (random.NextDouble() - 0.5))));
            values[i] = tuned - theta;
        }
        var kernels = new CpuKernels();
        foreach (long keep in new long[] { (long)(length * 0.3), length / 10, length - 3, 1 })
        {
            var search = new SampledThresholdSearch(length, keep);
            Assert.Equal(3, search.PassesLeft);
            int passes = Run(search, values, ChunkLength, kernels);
            string context = $"seed {seed}, keep {keep}";
            AssertSameCut(values, keep, search, context);
            if (keep == (long)(length * 0.3) || keep == length / 10)
                Assert.True(passes == 1, $"{context}: ordinary data took {passes} passes");
        }
    }

    [Fact]
    public void A_first_chunk_unlike_the_rest_falls_back_to_the_histogram_passes()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        int length = 4 * ChunkLength;
        float[] values = Normal(random, length, 1.0);
        for (int i = 0; i < ChunkLength; i++) values[i] *= 1000; // the sample sees only large magnitudes
        var search = new SampledThresholdSearch(length, length / 2);
        int passes = Run(search, values, ChunkLength, new CpuKernels());
        Assert.Equal(3, passes);
        AssertSameCut(values, length / 2, search, $"seed {seed}");
    }

    [Fact]
    public void Small_chunks_and_specials_take_the_histogram_passes_with_the_same_cut()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[] values = TestData.WithSpecials(random, TestData.TieHeavy(random, 300_001));
        foreach (long keep in new long[] { 0, 1, 100_000, 300_000, 300_001, 400_000 })
        {
            var search = new SampledThresholdSearch(values.Length, keep);
            int passes = Run(search, values, 65_536, new CpuKernels());
            Assert.True(keep is 0 or >= 300_001 ? passes == 0 : passes == 2, $"seed {seed}, keep {keep}: {passes} passes");
            AssertSameCut(values, Math.Min(keep, values.Length), search, $"seed {seed}, keep {keep}");
        }
    }

    /// <summary>
    /// A keep count learnt during the first pass (SCE's k counts the nonzero variances that pass reads): the bracket is
    /// sampled for an estimate, <see cref="SampledThresholdSearch.Retarget"/> sets the true count before the pass closes,
    /// and the cut is exactly the histogram search's for the true count. A near estimate keeps the one pass; a far one
    /// misses (three passes); no sample (small chunks) retargets the histogram pass under way (two); 0 and the length
    /// finish at once; after a pass closed the count is fixed.
    /// </summary>
    [Fact]
    public void A_keep_count_set_before_the_first_pass_closes_gives_the_histogram_cut_for_that_count()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        int length = 3 * ChunkLength + 777;
        float[] values = Normal(random, length, 0.02);
        for (int i = 0; i < length; i++)
            values[i] = FloatConversions.Bf16ToSingle(FloatConversions.SingleToBf16(values[i])); // few distinct keys, ties
        var kernels = new CpuKernels();
        var cases = new (long Estimate, long Keep, int Chunk, int Passes)[]
        {
            ((long)(length * 0.31), (long)(length * 0.3), ChunkLength, 1),
            (length / 100, length / 2, ChunkLength, 3),
            (length / 3, length / 4, 65_536, 2),
            (length / 3, 0, ChunkLength, 0),
            (length / 3, length, 65_536, 0),
        };
        foreach (var (estimate, keep, chunk, expectedPasses) in cases)
        {
            string context = $"seed {seed}, estimate {estimate}, keep {keep}, chunks of {chunk}";
            var search = new SampledThresholdSearch(length, estimate);
            int passes = 0;
            do
            {
                for (int start = 0; start < length; start += chunk)
                    search.Observe(kernels, values.AsSpan(start, Math.Min(chunk, length - start)));
                if (passes == 0) search.Retarget(keep);
                search.EndPass();
                passes++;
                Assert.True(passes <= 3, $"{context}: more than three passes");
            } while (!search.IsComplete);
            Assert.True(passes == Math.Max(1, expectedPasses), $"{context}: {passes} passes");
            AssertSameCut(values, keep, search, context);
            Assert.Throws<InvalidOperationException>(() => search.Retarget(keep + 1));
        }
        var complete = new SampledThresholdSearch(length, 0); // began complete: it counts nothing
        Assert.Throws<InvalidOperationException>(() => complete.Retarget(5));
        complete.Retarget(length);
        AssertSameCut(values, length, complete, $"seed {seed}, begun at 0, retargeted to the length");
    }

    [Theory]
    [InlineData(70_000, 1.0)]
    [InlineData(65_536 + 13, 0.05)]
    [InlineData(1000, 0.5)]
    public void Partition_counts_below_and_gathers_the_bracket_in_index_order(int size, double bracketShare)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[] values = TestData.WithSpecials(random, Normal(random, size, 1.0));
        uint[] keys = values.Select(ScalarReference.Key).OrderBy(k => k).ToArray();
        int low = (int)keys[size / 3], high = (int)keys[Math.Min(size - 1, size / 3 + (int)(bracketShare * size / 2))];
        var expected = new List<int>();
        long expectedBelow = 0;
        foreach (float v in values)
        {
            int key = (int)ScalarReference.Key(v);
            if (key < low) expectedBelow++;
            else if (key <= high) expected.Add(key);
        }
        foreach (int capacity in new[] { size, expected.Count, expected.Count + 17, Math.Max(0, expected.Count - 1) })
        {
            var band = new int[capacity];
            int stored = SampledMagnitudeSelect.Partition(values, low, high, band, out long below);
            string context = $"seed {seed}, size {size}, capacity {capacity}";
            if (capacity < expected.Count)
            {
                Assert.True(stored == -1, $"{context}: an overflow must answer -1, not {stored}");
                continue;
            }
            Assert.True(expectedBelow == below, $"{context}: {below} below, expected {expectedBelow}");
            Assert.True(expected.Count == stored, $"{context}: {stored} gathered, expected {expected.Count}");
            Assert.True(expected.ToArray().AsSpan().SequenceEqual(band.AsSpan(0, stored)), $"{context}: gathered keys differ");
        }
    }
}
