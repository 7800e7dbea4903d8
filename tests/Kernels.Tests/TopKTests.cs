using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

public class TopKTests
{
    public static TheoryData<int> Sizes => new(TestData.Sizes);

    [Theory]
    [MemberData(nameof(Sizes))]
    public void KeepTopK_matches_stable_sort_reference(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var kernels = new CpuKernels();
        foreach ((string kind, float[] values) in TestData.Kinds(random, length))
        {
            int[] descending = ScalarReference.DescendingOrder(values);
            long[] ks = [0, 1, length / 3, length / 2 + 1, length - 1, length, length + 5];
            foreach (long k in ks)
            {
                if (k < 0)
                    continue;
                string context = $"seed {seed}, {kind}, n {length}, k {k}";
                (float[] expected, TopKSelection expectedSelection) = ScalarReference.TopK(values, descending, k);
                float[] actual = (float[])values.Clone();
                TopKSelection selection = kernels.KeepTopK(actual, k);

                BitAssert.Identical(expected, actual, context);
                Assert.True(expectedSelection.KeptAboveThreshold == selection.KeptAboveThreshold
                    && expectedSelection.KeptAtThreshold == selection.KeptAtThreshold
                    && BitAssert.Same(expectedSelection.Threshold, selection.Threshold),
                    $"{context}: selection {selection}, expected {expectedSelection}");
                Assert.True(selection.Kept == Math.Min(k, length), context);
            }
        }
    }

    [Fact]
    public void KeepTopK_ties_keep_lowest_indices_and_negative_zero_ties_positive_zero()
    {
        var kernels = new CpuKernels(1);
        float[] values = [-0f, 1f, -1f, 0f, 1f, 2f, -0f];
        TopKSelection selection = kernels.KeepTopK(values, 3);
        // 2 is above the threshold 1; of the three ±1s the two lowest indices (1, 2) stay.
        Assert.Equal(new[] { 0u, 0x3F800000u, 0xBF800000u, 0u, 0u, 0x40000000u, 0u }, values.Select(BitAssert.Bits));
        Assert.Equal(new TopKSelection(1f, 1, 2), selection);

        float[] zeros = [-0f, 0f, -0f, 0f];
        Assert.Equal(new TopKSelection(0f, 0, 2), kernels.KeepTopK(zeros, 2));
        Assert.Equal(new[] { 0x80000000u, 0u, 0u, 0u }, zeros.Select(BitAssert.Bits));
    }

    [Fact]
    public void KeepTopK_counts_NaN_above_infinity()
    {
        var kernels = new CpuKernels(1);
        float[] values = [float.PositiveInfinity, 3f, -float.NaN, float.NegativeInfinity];
        TopKSelection selection = kernels.KeepTopK(values, 1);
        Assert.True(float.IsNaN(values[2]));
        Assert.Equal(new[] { 0u, 0u, 0u }, new[] { values[0], values[1], values[3] }.Select(BitAssert.Bits));
        Assert.True(float.IsNaN(selection.Threshold));
        Assert.Equal(1, selection.KeptAtThreshold);
    }

    [Fact]
    public void KeepTopK_rejects_negative_k() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new CpuKernels().KeepTopK(new float[3], -1));
}
