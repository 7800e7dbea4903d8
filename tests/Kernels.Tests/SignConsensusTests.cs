using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

public class SignConsensusTests
{
    public static TheoryData<int, SignElection, bool> Cases()
    {
        var data = new TheoryData<int, SignElection, bool>();
        foreach (int length in TestData.Sizes)
            foreach (SignElection election in new[] { SignElection.Sum, SignElection.Count })
                foreach (bool normalize in new[] { true, false })
                    data.Add(length, election, normalize);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SignConsensusMerge_matches_scalar_reference(int length, SignElection election, bool normalize)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var kernels = new CpuKernels();
        float[][] weightSets =
        [
            [1f, 1f, 1f],
            [0.3f, 0.5f, 0.2f],
            [1f, -0.5f, 0f],
            [0.7f],
            [2f, 1f, -1f, 0.5f, 0.25f],
            [float.PositiveInfinity, 1f, 1f],
            [],
        ];
        foreach (float[] weights in weightSets)
        {
            foreach ((string kind, _) in new[] { ("plain", 0), ("ties+specials", 1) })
            {
                var stacked = new float[weights.Length * length];
                for (int k = 0; k < weights.Length; k++)
                {
                    float[] row = kind == "plain"
                        ? TestData.Plain(random, length)
                        : TestData.WithSpecials(random, TestData.TieHeavy(random, length));
                    row.CopyTo(stacked, k * length);
                }

                string context = $"seed {seed}, {kind}, n {length}, weights [{string.Join(", ", weights)}], {election}, normalize {normalize}";
                float[] expected = ScalarReference.SignConsensus(stacked, weights, election, normalize, length);
                var actual = new float[length];
                kernels.SignConsensusMerge(stacked, weights, election, normalize, actual);
                BitAssert.Equal(expected, actual, context);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SignConsensusMergeOntoBase_matches_scalar_reference_and_the_three_calls(int length, SignElection election, bool normalize)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var kernels = new CpuKernels();
        foreach (float[] weights in new[] { new[] { 0.5f, 0.5f }, new[] { 0.3f, -0.5f, 1f }, new[] { 1f } })
        {
            var stacked = new float[weights.Length * length];
            for (int k = 0; k < weights.Length; k++)
                TestData.WithSpecials(random, TestData.TieHeavy(random, length)).CopyTo(stacked, k * length);
            float[] baseline = TestData.WithSpecials(random, TestData.Plain(random, length));
            foreach (float lambda in new[] { 1f, 0.7f, -2.5f })
            {
                string context = $"seed {seed}, n {length}, weights [{string.Join(", ", weights)}], {election}, normalize {normalize}, λ {lambda}";
                float[] expected = ScalarReference.SignConsensusOntoBase(stacked, weights, election, normalize, lambda, baseline, length);
                var fused = new float[length];
                kernels.SignConsensusMergeOntoBase(stacked, weights, election, normalize, lambda, baseline, fused);
                BitAssert.Equal(expected, fused, context);

                // The path it replaces: merge, scale, Axpby onto the base — the same bits, NaN payloads included.
                var threeCalls = new float[length];
                kernels.SignConsensusMerge(stacked, weights, election, normalize, threeCalls);
                if (lambda != 1f) kernels.Scale(threeCalls, lambda);
                kernels.Axpby(1f, baseline, 1f, threeCalls, threeCalls);
                BitAssert.Identical(threeCalls, fused, context + " (three calls)");
            }
        }
    }

    [Fact]
    public void SignConsensusMergeOntoBase_refuses_a_baseline_of_another_length() =>
        Assert.Throws<ArgumentException>(() =>
            new CpuKernels(1).SignConsensusMergeOntoBase(new float[4], [1f, 1f], SignElection.Sum, false, 1f, new float[3], new float[2]));

    [Fact]
    public void NaN_never_agrees_and_a_NaN_sum_elects_negative()
    {
        var kernels = new CpuKernels(1);
        float[] weights = [1f, 1f, 1f];
        // Rows of two elements: element 0 has deltas NaN, 3, −2; element 1 has 1, 4, NaN.
        float[] stacked = [float.NaN, 1f, 3f, 4f, -2f, float.NaN];
        var sum = new float[2];
        kernels.SignConsensusMerge(stacked, weights, SignElection.Sum, normalize: false, sum);
        // A NaN makes both sums NaN, which elects −1: element 0 keeps −2, element 1 keeps nothing (+0).
        Assert.Equal(new[] { -2f, 0f }.Select(BitAssert.Bits), sum.Select(BitAssert.Bits));

        var count = new float[2];
        kernels.SignConsensusMerge(stacked, weights, SignElection.Count, normalize: true, count);
        // Element 0: votes 0 (NaN), +1, −1 → +1 elected, only 3 agrees. Element 1: +1, +1, 0 → (1 + 4) / 2.
        Assert.Equal(new[] { 3f, 2.5f }.Select(BitAssert.Bits), count.Select(BitAssert.Bits));
    }

    [Fact]
    public void Zero_sum_elects_positive_and_zero_divisor_becomes_one()
    {
        var kernels = new CpuKernels(1);
        float[] stacked = [1f, 0f, -1f, 0f]; // two models, two elements
        var output = new float[2];
        kernels.SignConsensusMerge(stacked, [1f, 1f], SignElection.Sum, normalize: true, output);
        // Element 0: sum 0 → +1 elected, only +1 agrees → 1 / 1. Element 1: nothing agrees → 0 / 1 = +0.
        Assert.Equal(new[] { 0x3F800000u, 0u }, output.Select(BitAssert.Bits));
    }

    [Fact]
    public void Mismatched_lengths_are_rejected()
    {
        var kernels = new CpuKernels();
        Assert.Throws<ArgumentException>(() =>
            kernels.SignConsensusMerge(new float[5], [1f, 1f], SignElection.Sum, true, new float[3]));
    }
}
