using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>
/// The combine kernels onto a base with per-row pre-scales (DARE's and DELLA's L1 rescale folded into the combine):
/// against the scalar references, and bit for bit against the calls they replace — a Scale pass per row, then the
/// combine (TIES), or WeightedSum, Divide, Scale and Axpby (the linear family).
/// </summary>
/// <remarks>
/// Which NaN payload survives when both operands of an addition are NaN is not part of the contract
/// (<see cref="BitAssert.Equal"/>): the JIT commutes float additions as register allocation suits it, so even Axpby's
/// vector lanes keep y's NaN where its scalar tail keeps x's. Every other bit, ±0 and ±∞ included, is compared exactly.
/// </remarks>
public class PreScaledCombineTests
{
    /// <summary>Pre-scale sets for three rows: none, ordinary factors, 1 (a row left unscaled), and specials.</summary>
    private static readonly float[][] s_preScaleSets =
    [
        [],
        [1.4285715f, 2.0000002f, 0.93f],
        [1f, 3.3333333f, 1f],
        [float.NaN, float.PositiveInfinity, 0f],
        [-0.5f, 1e-30f, 1e30f],
    ];

    private static readonly float[][] s_weightSets = [[0.5f, 0.3f, 0.4f], [1f, -0.5f, 0f], [float.PositiveInfinity, 1f, 1f]];

    public static TheoryData<int> Sizes()
    {
        var data = new TheoryData<int>();
        foreach (int length in TestData.Sizes)
            data.Add(length);
        data.Add(13);   // below one vector plus a tail
        data.Add(4103); // vectors and an odd tail
        return data;
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void SignConsensusMergeOntoBase_with_pre_scales_is_a_Scale_per_row_then_the_merge(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var kernels = new CpuKernels();
        foreach (float[] weights in s_weightSets)
        {
            float[] stacked = Rows(random, weights.Length, length);
            float[] baseline = TestData.WithSpecials(random, TestData.Plain(random, length));
            foreach (float[] preScales in s_preScaleSets)
                foreach (SignElection election in new[] { SignElection.Sum, SignElection.Count })
                    foreach (bool normalize in new[] { false, true })
                        foreach (float lambda in new[] { 1f, 0.7f })
                        {
                            string context = $"seed {seed}, n {length}, weights [{string.Join(", ", weights)}], pre-scales [{string.Join(", ", preScales)}], {election}, normalize {normalize}, λ {lambda}";
                            float[] scaled = preScales.Length == 0 ? stacked : ScalarReference.PreScaled(stacked, preScales, length);
                            float[] expected = ScalarReference.SignConsensusOntoBase(scaled, weights, election, normalize, lambda, baseline, length);
                            var fused = new float[length];
                            kernels.SignConsensusMergeOntoBase(stacked, weights, election, normalize, lambda, baseline, fused, preScales);
                            BitAssert.Equal(expected, fused, context);

                            float[] rows = ScaledByPasses(kernels, stacked, preScales, length);
                            var calls = new float[length];
                            kernels.SignConsensusMergeOntoBase(rows, weights, election, normalize, lambda, baseline, calls);
                            BitAssert.Equal(calls, fused, context + " (Scale passes, then the merge)");
                        }
        }
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void WeightedSumOntoBase_is_the_sum_divide_scale_and_Axpby_calls(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var kernels = new CpuKernels();
        foreach (float[] weights in s_weightSets)
        {
            float[] stacked = Rows(random, weights.Length, length);
            float[] baseline = TestData.WithSpecials(random, TestData.Plain(random, length));
            foreach (float[] preScales in s_preScaleSets)
                foreach (float divisor in new[] { 1f, 1.2f, -0.5f, 0f })
                    foreach (float lambda in new[] { 1f, 0.7f, -2.5f })
                    {
                        string context = $"seed {seed}, n {length}, weights [{string.Join(", ", weights)}], pre-scales [{string.Join(", ", preScales)}], divisor {divisor}, λ {lambda}";
                        float[] scaled = preScales.Length == 0 ? stacked : ScalarReference.PreScaled(stacked, preScales, length);
                        float[] expected = ScalarReference.WeightedSumOntoBase(scaled, weights, divisor, lambda, baseline, length);
                        var fused = new float[length];
                        kernels.WeightedSumOntoBase(stacked, weights, divisor, lambda, baseline, fused, preScales);
                        BitAssert.Equal(expected, fused, context);

                        // The passes it replaces, as TaskVectorMerge made them before.
                        float[] rows = ScaledByPasses(kernels, stacked, preScales, length);
                        var calls = new float[length];
                        kernels.WeightedSum(rows, weights, calls);
                        if (divisor != 1f) kernels.Divide(calls, divisor);
                        if (lambda != 1f) kernels.Scale(calls, lambda);
                        kernels.Axpby(1f, baseline, 1f, calls, calls);
                        BitAssert.Equal(calls, fused, context + " (the four calls)");
                    }
        }
    }

    [Fact]
    public void WeightedSumOntoBase_of_no_rows_is_the_base_plus_zero()
    {
        var output = new float[3];
        new CpuKernels(1).WeightedSumOntoBase([], [], 1f, 1f, [1f, -0f, float.NegativeInfinity], output);
        // +0 + (−0) = +0: the empty sum starts at +0, as WeightedSum's does.
        Assert.Equal(new[] { 0x3F800000u, 0u, 0xFF800000u }, output.Select(BitAssert.Bits));
    }

    [Fact]
    public void Pre_scales_must_be_none_or_one_per_row()
    {
        var kernels = new CpuKernels(1);
        Assert.Throws<ArgumentException>(() =>
            kernels.WeightedSumOntoBase(new float[4], [1f, 1f], 1f, 1f, new float[2], new float[2], [2f]));
        Assert.Throws<ArgumentException>(() =>
            kernels.SignConsensusMergeOntoBase(new float[4], [1f, 1f], SignElection.Sum, false, 1f, new float[2], new float[2], [2f, 1f, 1f]));
        Assert.Throws<ArgumentException>(() =>
            kernels.WeightedSumOntoBase(new float[4], [1f, 1f], 1f, 1f, new float[3], new float[2]));
    }

    /// <summary>Tie-heavy rows with NaN, ±∞ and extremes sprinkled in.</summary>
    internal static float[] Rows(System.Random random, int rows, int length)
    {
        var stacked = new float[rows * length];
        for (int k = 0; k < rows; k++)
        {
            float[] row = k % 2 == 0
                ? TestData.WithSpecials(random, TestData.TieHeavy(random, length))
                : TestData.WithSpecials(random, TestData.Plain(random, length));
            row.CopyTo(stacked, k * length);
        }
        return stacked;
    }

    /// <summary>A copy of the rows with the Scale kernel run over each (none when there are no pre-scales).</summary>
    private static float[] ScaledByPasses(IMergeKernels kernels, float[] stacked, float[] preScales, int length)
    {
        float[] rows = (float[])stacked.Clone();
        for (int k = 0; k < preScales.Length; k++)
            kernels.Scale(rows.AsSpan(k * length, length), preScales[k]);
        return rows;
    }
}
