using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

public class ElementwiseTests
{
    public static TheoryData<int> Sizes => new(TestData.Sizes);

    [Theory]
    [MemberData(nameof(Sizes))]
    public void WeightedSum_matches_unfused_k_ordered_reference(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var kernels = new CpuKernels();
        foreach (float[] weights in new[] { new[] { 0.5f, 0.3f, 0.2f }, [1f], [], [-1f, 2f, 1e-3f, 7f], [0f, -0f] })
        {
            var stacked = new float[weights.Length * length];
            for (int k = 0; k < weights.Length; k++)
                TestData.WithSpecials(random, TestData.Plain(random, length)).CopyTo(stacked, k * length);
            string context = $"seed {seed}, n {length}, weights [{string.Join(", ", weights)}]";
            var actual = new float[length];
            Array.Fill(actual, 123f); // stale output must be overwritten
            kernels.WeightedSum(stacked, weights, actual);
            BitAssert.Equal(ScalarReference.WeightedSum(stacked, weights, length), actual, context);
        }
    }

    [Fact]
    public void WeightedSum_starts_from_positive_zero()
    {
        // 0 + (−0) = +0: the accumulator starts at +0, so a single −0 product does not survive.
        var output = new float[1];
        new CpuKernels().WeightedSum([-0f], [1f], output);
        Assert.Equal(0u, BitAssert.Bits(output[0]));
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Axpby_matches_unfused_reference(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[] x = TestData.WithSpecials(random, TestData.Plain(random, length));
        float[] y = TestData.Plain(random, length);
        var actual = new float[length];
        new CpuKernels().Axpby(0.37f, x, -1.9f, y, actual);
        BitAssert.Equal(ScalarReference.Axpby(0.37f, x, -1.9f, y), actual, $"seed {seed}, n {length}");
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void SubtractRows_and_Scale_match_reference(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        const int rows = 3;
        float[] baseline = TestData.Plain(random, length);
        var stacked = new float[rows * length];
        for (int k = 0; k < rows; k++)
            TestData.WithSpecials(random, TestData.Plain(random, length)).CopyTo(stacked, k * length);

        var expected = new float[stacked.Length];
        for (int j = 0; j < stacked.Length; j++)
            expected[j] = (float)((double)stacked[j] - baseline[j % Math.Max(length, 1)]);
        var kernels = new CpuKernels();
        kernels.SubtractRows(stacked, baseline);
        BitAssert.Equal(expected, stacked, $"seed {seed}, n {length}, subtract");

        for (int j = 0; j < stacked.Length; j++)
            expected[j] = ScalarReference.Mul(expected[j], -0.125f);
        kernels.Scale(stacked, -0.125f);
        BitAssert.Equal(expected, stacked, $"seed {seed}, n {length}, scale");
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Divide_matches_one_IEEE_division_per_element(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[] values = TestData.WithSpecials(random, TestData.Plain(random, length));
        foreach (float divisor in new[] { 3f, 0.7f, -1.3f })
        {
            // (float)((double)a / b) is the correctly rounded float quotient; a multiply by 1/b is not.
            float[] expected = values.Select(v => (float)((double)v / divisor)).ToArray();
            float[] actual = (float[])values.Clone();
            new CpuKernels().Divide(actual, divisor);
            BitAssert.Equal(expected, actual, $"seed {seed}, n {length}, divide by {divisor}");
        }
    }

    [Fact]
    public void SubtractRows_rejects_a_partial_row() =>
        Assert.Throws<ArgumentException>(() => new CpuKernels().SubtractRows(new float[7], new float[3]));

    [Fact]
    public void Constructor_rejects_zero_threads() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new CpuKernels(0));
}
