using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>DELLA's magnitude-rank sampling on the CPU against <see cref="RankSamplingScalarReference"/>, on one thread and on all.</summary>
public sealed class RankSamplingTests
{
    public static TheoryData<int> ThreadCounts() => new() { 1, -1 };

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void SampleByMagnitudeRank_matches_reference_bit_for_bit(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        var key = new PhiloxKey((ulong)seed * 0x9E3779B97F4A7C15ul, (uint)seed ^ 0xA5A5A5A5u, 3);
        RankSamplingInputs.ForEach(seed, RankSamplingInputs.Layouts, (context, values, length, stride) =>
        {
            int[] positions = RankSamplingScalarReference.SortedPositions(values, length, stride);
            foreach ((float low, float epsilon, float single, bool divide) in RankSamplingInputs.Settings)
            {
                float[] expected = RankSamplingScalarReference.Sample(values, positions, length, low, epsilon, single, divide, key);
                float[] actual = (float[])values.Clone();
                kernels.SampleByMagnitudeRank(actual, length, stride, low, epsilon, single, divide, key);
                BitAssert.Identical(expected, actual, $"{context}, low {low}, ε {epsilon}, divide {divide}");
            }
        });
    }

    [Fact]
    public void Equal_magnitudes_are_ranked_by_position_and_NaN_ranks_highest()
    {
        // Four elements, p = 0 + (s / 3)·2·0.5 = s / 3: sorted position 0 (p = 0) is always dropped, position 3
        // (p = 1) always kept. −2 and 2 tie: the first (position 0) ranks below. NaN ranks above 2.
        var kernels = new CpuKernels(1);
        float[] values = [2f, float.NaN, -2f, 1f];
        var key = new PhiloxKey(7, 11, 0);
        kernels.SampleByMagnitudeRank(values, 4, 1, 0f, 0.5f, 0.5f, false, key);
        Assert.Equal(0f, values[3]); // smallest magnitude: p = 0
        Assert.True(float.IsNaN(values[1])); // largest: p = 1
        float[] original = [2f, float.NaN, -2f, 1f];
        Assert.Equal([1, 3, 2, 0], RankSamplingScalarReference.SortedPositions(original, 4, 1));
        float[] expected = RankSamplingScalarReference.Sample(original, [1, 3, 2, 0], 4, 0f, 0.5f, 0.5f, false, key);
        BitAssert.Identical(expected, values, "hand-made");
    }

    [Fact]
    public void A_layout_that_does_not_tile_the_values_throws()
    {
        var kernels = new CpuKernels(1);
        var key = new PhiloxKey(1, 2, 3);
        Assert.Throws<ArgumentException>(() => kernels.SampleByMagnitudeRank(new float[10], 4, 1, 0.4f, 0.1f, 0.5f, false, key));
        Assert.Throws<ArgumentException>(() => kernels.SampleByMagnitudeRank(new float[12], 4, 0, 0.4f, 0.1f, 0.5f, false, key));
        Assert.Throws<ArgumentException>(() => kernels.SampleByMagnitudeRank(new float[12], 0, 1, 0.4f, 0.1f, 0.5f, false, key));
        kernels.SampleByMagnitudeRank([], 0, 0, 0.4f, 0.1f, 0.5f, false, key); // nothing to do
    }
}

/// <summary>The radix sort of (magnitude, position) pairs gives exactly the comparison sort's order.</summary>
public sealed class RankSamplingSortTests
{
    [Theory]
    [InlineData(255, 0)]
    [InlineData(256, 0)]
    [InlineData(4096, 0)]
    [InlineData(4096, 3)]
    [InlineData(8191, 1)]
    [InlineData(4096, 2)]
    public void Radix_order_equals_Array_Sort(int length, int kind)
    {
        var random = new System.Random(length * 7 + kind);
        var order = new ulong[2 * length];
        for (int r = 0; r < length; r++)
        {
            float v = kind switch
            {
                0 => (float)(random.NextDouble() - 0.5) * 0.02f, // ordinary weights: many exponents
                1 => random.Next(4) * 0.5f,                       // heavy ties
                2 => 1.5f,                                         // every key equal: every pass skipped
                _ => r % 5 == 0 ? float.NaN : (r % 7 == 0 ? float.PositiveInfinity : (float)random.NextDouble()),
            };
            uint magnitude = System.BitConverter.SingleToUInt32Bits(v) & 0x7FFFFFFFu;
            order[r] = ((ulong)magnitude << 32) | (uint)r;
        }
        ulong[] expected = order[..length];
        System.Array.Sort(expected);
        MagnitudeRankSampling.SortByKey(order, length);
        Assert.Equal(expected, order[..length]);
    }
}
